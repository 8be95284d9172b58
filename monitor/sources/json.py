"""JSON documents over HTTP(S) or from a file, with dotted field paths into nested records.

``records`` is the path to the list of records (``data.items``; empty for a top-level
list); each ``*_column`` is a path inside one record (``attributes.period``; a number
indexes a list: ``values.0``). Row references in problems are JSON paths
(``data.items[3]``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from monitor.errors import PayloadError
from monitor.memory import gc_paused
from monitor.sources.base import FileOrUrl, Parsed, Payload, Source, SourceBase
from monitor.sources.http import HttpOptions
from monitor.sources.mapping import (
    Collector,
    Getter,
    Mapper,
    MappingOptions,
    decode,
    html_error,
    is_html,
    missing_columns,
)
from monitor.store.sourcestate import Validators


class JsonSource(SourceBase, FileOrUrl, HttpOptions, MappingOptions):
    """A JSON document whose records are found at ``records`` (a dotted path)."""

    kind: Literal["json"]
    records: str = ""

ACCEPT = "application/json, */*;q=0.1"


class JsonKind(Source[JsonSource]):
    """``kind = "json"``."""

    kind = "json"
    config_type = JsonSource

    def fetch(self, previous: Validators) -> Payload:
        return self.fetch_file_or_url(previous, ACCEPT)

    def parse(self, payload: Payload) -> Parsed:
        return parse_json(self.config, payload.body, origin=payload.origin,
                          content_type=payload.content_type)


def field_path(path: str) -> Getter:
    """Return a getter for a dotted path; it raises KeyError/IndexError when a part is absent."""
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".") if p]

    def get(record: Any) -> Any:
        node = record
        for part in parts:
            if isinstance(part, int) and isinstance(node, list):
                node = node[part]
            elif isinstance(node, dict):
                node = node[str(part)]
            else:
                raise KeyError(part)
        return node

    return get


def load_document(source: str, origin: str, body: bytes, content_type: str) -> Any:
    """Return the parsed JSON document.

    Raises PayloadError for an HTML page, text that is not UTF-8 or not JSON (a truncated
    body is the usual cause), naming the line and column.
    """
    if is_html(body, content_type):
        raise html_error(source, origin, body, "JSON")
    text = decode(source, origin, body, "utf-8-sig")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        ending = " (the body ends early: truncated?)" if exc.pos >= len(text.rstrip()) else ""
        raise PayloadError(f"source {source!r}: {origin} is not valid JSON at line {exc.lineno} "
                           f"column {exc.colno}: {exc.msg}{ending}; the previous data is kept"
                           ) from None


@gc_paused()
def parse_json(config: JsonSource, body: bytes, *, origin: str, content_type: str = "") -> Parsed:
    """Return the observations in a JSON body and the records rejected.

    Raises PayloadError when the body is not JSON, ``records`` does not lead to a list,
    or the first record lacks a mapped field (schema drift).
    """
    source = config.name
    document = load_document(source, origin, body, content_type)
    try:
        records = field_path(config.records)(document) if config.records else document
    except (KeyError, IndexError):
        raise PayloadError(f"source {source!r}: {origin}: schema drift: the document has no "
                           f"{config.records!r} (records); the previous data is kept") from None
    if not isinstance(records, list):
        raise PayloadError(f"source {source!r}: {origin}: {config.records or 'the document'!r} "
                           f"is a {type(records).__name__}, not a list of records; set records "
                           "to the path of the list")
    prefix = config.records
    wanted = [(column, key) for column, key in missing_columns(config)
              if key not in ("denominator_column", "provisional_column")]
    if records:
        _check_first(source, origin, prefix, records[0], wanted)
    mapper = Mapper(config, source, config.static_labels, field_path)
    collector = Collector(source, add_up=config.duplicates == "sum")
    for position, record in enumerate(records):
        mapper.convert(collector, f"{prefix}[{position}]", record)
    observations, problems = collector.result()
    return Parsed(observations, problems, rows=collector.rows, skipped=collector.skipped)


def _check_first(source: str, origin: str, prefix: str, record: Any,
                 wanted: Sequence[tuple[str, str]]) -> None:
    gone = []
    for column, key in wanted:
        try:
            field_path(column)(record)
        except (KeyError, IndexError, TypeError):
            gone.append(f"{column!r} ({key})")
    if gone:
        keys = ", ".join(repr(k) for k in list(record)[:12]) if isinstance(record, dict) else \
            type(record).__name__
        raise PayloadError(f"source {source!r}: {origin} {prefix}[0]: schema drift: no field "
                           f"{', '.join(gone)}; the record has {keys}. If the publisher renamed "
                           "a field, update the mapping; the previous data is kept")
