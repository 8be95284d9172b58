"""A query against any SQLAlchemy database URL (a warehouse view, a reporting database).

The query returns one row per observation, with the columns the mapping names (period,
value, labels, and optionally indicator, denominator and provisional). Row references in
problems are 1-based result row numbers. ``monitor ingest --source NAME FILE`` reads a
CSV export with the same column names.
"""

from __future__ import annotations

import csv
import hashlib
import io
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from monitor.configtypes import Duration
from monitor.errors import FetchError, PayloadError
from monitor.memory import gc_paused
from monitor.sources.base import (
    Parsed,
    Payload,
    Source,
    SourceBase,
    SourceDeps,
    read_file_payload,
)
from monitor.sources.mapping import (
    Collector,
    Getter,
    Mapper,
    MappingOptions,
    check_header,
    missing_columns,
)
from monitor.store.sourcestate import Validators


class SqlSource(SourceBase, MappingOptions):
    """A query against any SQLAlchemy database URL, returning one row per observation."""

    kind: Literal["sql"]
    url: SecretStr
    query: str
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    timeout: Duration = 60.0


class SqlKind(Source[SqlSource]):
    """``kind = "sql"``."""

    kind = "sql"
    config_type = SqlSource

    def __init__(self, config: SqlSource, deps: SourceDeps | None = None) -> None:
        super().__init__(config, deps)
        self._engine: Engine | None = None

    def _connect(self) -> Engine:
        if self._engine is None:
            url = self.config.url.get_secret_value()
            try:
                parsed = make_url(url)
                if parsed.drivername == "postgresql":
                    parsed = parsed.set(drivername="postgresql+psycopg")
                args: dict[str, Any] = {}
                if parsed.drivername.startswith("postgresql"):
                    args["connect_args"] = {
                        "options": f"-c statement_timeout={int(self.config.timeout * 1000)}",
                        "connect_timeout": max(1, int(self.config.timeout))}
                elif parsed.drivername.startswith("sqlite"):
                    args["connect_args"] = {"timeout": self.config.timeout}
                self._engine = create_engine(parsed, pool_pre_ping=True, **args)
            except (ArgumentError, NoSuchModuleError) as exc:
                raise FetchError(f"source {self.name!r}: url is not a usable SQLAlchemy URL: "
                                 f"{exc}", retryable=False) from None
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def fetch(self, previous: Validators) -> Payload:
        previous = previous.for_config(self.digest)
        engine = self._connect()
        try:
            with engine.connect() as conn:
                result = conn.execute(text(self.config.query), dict(self.config.params))
                names = result.keys()
                columns = [str(c) for c in names]
                rows = [tuple(r) for r in result.fetchall()]
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise FetchError(f"source {self.name!r}: the query failed: {reason}; check the "
                             "query and the database", retryable=True) from None
        hashed = hashlib.sha256(self.digest.encode() + repr((columns, rows)).encode()
                                ).hexdigest()
        return Payload(origin=f"query of source {self.name!r}",
                       data={"columns": columns, "rows": rows},
                       validators=Validators(content_hash=hashed, config_digest=self.digest),
                       unchanged=previous.content_hash == hashed)

    def parse(self, payload: Payload) -> Parsed:
        data = payload.data or {}
        return parse_rows(self.config, list(data.get("columns", [])), data.get("rows", []),
                          origin=payload.origin)

    def load_file(self, path: Path) -> Payload:
        """Return the rows of a CSV export (header = the query's column names)."""
        raw = read_file_payload(self.name, path)
        try:
            reader = csv.reader(io.StringIO(raw.body.decode("utf-8-sig"), newline=""))
            table = list(reader)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise PayloadError(f"source {self.name!r}: {path} is not a UTF-8 CSV export: {exc}"
                               ) from None
        if not table:
            raise PayloadError(f"source {self.name!r}: {path} is empty; expected a header")
        return Payload(origin=str(path), data={"columns": [c.strip() for c in table[0]],
                                               "rows": [tuple(r) for r in table[1:] if r]})


@gc_paused()
def parse_rows(config: SqlSource, columns: list[str], rows: list[tuple[Any, ...]], *,
               origin: str) -> Parsed:
    """Return the observations in a query result and the rows rejected.

    Raises PayloadError when the result lacks a mapped column (schema drift).
    """
    source = config.name
    check_header(source, f"{origin} columns", columns, missing_columns(config))
    index = {name: position for position, name in reversed(list(enumerate(columns)))}

    def locate(column: str) -> Getter:
        return itemgetter(index[column])

    mapper = Mapper(config, source, config.static_labels, locate)
    collector = Collector(source, add_up=config.duplicates == "sum")
    for number, row in enumerate(rows, start=1):
        mapper.convert(collector, number, row)
    observations, problems = collector.result()
    return Parsed(observations, problems, rows=collector.rows, skipped=collector.skipped)
