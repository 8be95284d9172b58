"""Opening the store: engines for SQLite and PostgreSQL, and schema migrations.

SQLite is opened in WAL mode with foreign keys on and a busy timeout; PostgreSQL with
a small connection pool and ``pool_pre_ping`` so a restarted server is noticed.
"""

from __future__ import annotations

import json
import json.encoder
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    any_,
    bindparam,
    column,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from monitor import memory
from monitor.errors import StoreError
from monitor.jsontext import encoder
from monitor.logs import get_logger
from monitor.model import utc

log = get_logger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, busy_timeout: float = 5.0, pool_size: int = 5) -> Engine:
    """Return an engine for ``url``; creates the SQLite file's folder if missing.

    Raises StoreError when the URL is not one SQLAlchemy understands.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"store.url {url!r} is not a database URL: {exc}") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if is_sqlite(parsed.drivername):
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            # Python's sqlite3 keeps the last 128 statements prepared per connection;
            # statements whose text varies (IN lists of varying length, a poll's time
            # written into a bulk insert) filled it over weeks, and each holds its
            # compiled program: SQLite's own memory grew 1.4 MiB a day at 100,000 series
            # (benchmarks/soak.py). The statements a cycle repeats are few.
            connect_args={"timeout": busy_timeout, "check_same_thread": False,
                          "cached_statements": STATEMENT_CACHE},
        )
        _sqlite_pragmas(engine, busy_timeout)
        return engine
    return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size,
                         pool_pre_ping=True, pool_recycle=1800)


# A connection whose pool record's info holds this key was given a larger page cache
# for one transaction; it is set back to SQLite's default when the pool takes it back.
SHRINK_CACHE = "shrink_cache"
DEFAULT_CACHE_SIZE = -2000  # SQLite's default: about 2 MB
# 32 MB, for the transaction of one bulk write of a cycle (alerts, their history, the
# notifier's alerts). At 100k series (bench_daemon's run() with this constant set, the
# freed pages handed back at check-in, 2026-12-08, alternated) 64 MB peaked at
# 1,003-1,006 MB in the first cycle, 32 MB at 977-979 MB and no slower (first cycle
# 14.5 s against 15.1-16.9), 16 MB at 974 MB but slower (17.8 s).
BULK_CACHE_SIZE = -32768
BULK_ROWS = 1000  # rows from which a write takes the larger page cache
STATEMENT_CACHE = 8  # prepared statements kept per connection (Python's default: 128)


def copy_upsert(cur: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
                ) -> None:
    """PostgreSQL, through the driver's cursor: insert or replace ``rows`` (``columns``, the
    first the table's key; no key twice) by one ``COPY`` into a temporary table like
    ``table`` and one ``INSERT … SELECT … ON CONFLICT`` from it. Faster than an
    ``executemany`` of the upsert from a few thousand rows (157,361 notifier alerts:
    the upsert alone spent 2.7 s waiting on the server)."""
    stage = f"{table}_stage"
    names = ", ".join(columns)
    cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    with cur.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} "  # noqa: S608
                f"ON CONFLICT ({columns[0]}) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in columns[1:]))
    cur.execute(f"TRUNCATE {stage}")


def bulk_cache(conn: Connection) -> None:
    """Give a SQLite connection a 32 MB page cache until the pool takes it back (see
    SHRINK_CACHE); nothing on PostgreSQL. Rows written all over a table larger than
    SQLite's default 2 MB cache (alerts by hashed id, their history's indexes) read the
    same pages again and again otherwise."""
    if conn.dialect.name != "sqlite" or conn.connection.info.get(SHRINK_CACHE):
        return
    conn.connection.info[SHRINK_CACHE] = True
    conn.exec_driver_sql(f"PRAGMA cache_size = {BULK_CACHE_SIZE}")


def one_of(col: ColumnElement[Any], values: Iterable[Any], dialect: str) -> ColumnElement[bool]:
    """Return ``col IN values`` with the values as one bound parameter, however many:
    an array on PostgreSQL, a JSON list (``json_each``) on SQLite. Neither driver takes
    more than a few ten thousand parameters in a statement."""
    items = list(values)
    if dialect == "postgresql":
        return col == any_(bindparam(None, items, type_=ARRAY(col.type)))
    return col.in_(select(column("value")).select_from(func.json_each(json.dumps(items))))


class JsonCodec:
    """Mappings as stored (sorted-key JSON), for one bulk read-and-write: each dict object
    is encoded once, and a dict this codec decoded gives back the text it was read from.

    The rows of a cycle share their dicts — an alert's record, its transition and its
    history event; a claimed transition and the notifier's alert — and encoding them is
    most of a bulk write at 100,000 alerts. The dicts must not be changed after they are
    encoded or decoded (none is: an alert's labels and annotations are made once).
    """

    def __init__(self) -> None:
        # id → text, with every mapping kept alive here (so no id is reused while its
        # text is remembered). No tuple per entry: 100,000 new container objects would
        # set the garbage collector scanning the whole heap again and again.
        self._text: dict[int, str] = {}
        self._kept: list[Mapping[str, Any]] = []
        self._encode = encoder(sort_keys=True)

    def encode(self, mapping: Mapping[str, Any]) -> str:
        """Return ``mapping`` as sorted-key JSON (``json.dumps(…, sort_keys=True)``)."""
        text = self._text.get(id(mapping))
        if text is None:
            text = self._text[id(mapping)] = self._encode(
                mapping if isinstance(mapping, dict) else dict(mapping))
            self._kept.append(mapping)
        return text

    def decode(self, text: str) -> dict[str, Any]:
        """Return the mapping ``text`` holds (a JSON object); encoding it gives ``text``."""
        value: dict[str, Any] = json.loads(text)
        self._text[id(value)] = text
        self._kept.append(value)
        return value


SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite


def stamper(postgres: bool, *, copy: bool = False) -> Callable[[datetime | None], Any]:
    """Return a function giving a datetime as the driver stores a DateTime column (UTC;
    None stays None), for writes through the cursor. The rows of one bulk write share a
    few instants, so each is converted once.

    ``copy``: for rows only a PostgreSQL ``COPY`` takes, the instant as the text the
    column reads (``2017-01-05 06:00:00+00:00``): the driver would format a datetime
    again in every row, about a microsecond each (a cycle at 100,000 series writes over
    a million). Not for a bound parameter, which must keep its type."""
    memo: dict[datetime | None, Any] = {None: None}

    def stamp(at: datetime | None) -> Any:
        found = memo.get(at, memo)
        if found is memo:
            assert at is not None
            if postgres:
                found = utc(at).isoformat(sep=" ") if copy else utc(at)
            else:
                found = utc(at).replace(tzinfo=None).strftime(SQLITE_TS)
            memo[at] = found
        return found
    return stamp


def reader() -> Callable[[Any], datetime | None]:
    """Return a function reading a DateTime column as fetched through the cursor (an
    aware UTC datetime; None stays None), memoised like :func:`stamper`."""
    memo: dict[Any, datetime | None] = {None: None}

    def read(value: Any) -> datetime | None:
        found = memo.get(value, memo)
        if found is memo:
            found = memo[value] = utc(value if isinstance(value, datetime)
                                      else datetime.fromisoformat(str(value)))
        return found  # type: ignore[return-value]
    return read


def _sqlite_pragmas(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's transaction handling issue BEGIN itself (pysqlite's
        # implicit transactions would otherwise defer it past the first SELECT).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: sqlite3.Connection | None, record: Any) -> None:
        # A bulk insert raised this connection's page cache (see SHRINK_CACHE); once it
        # has committed, set it back rather than keep it until the next one, and give
        # the pages SQLite frees back to the operating system: left in the C heap, where
        # Python's own allocator (its arenas are mapped apart) does not reuse them, they
        # stayed resident through what follows the write (a poll's ingest, then the
        # cycle; a cycle's save, then its notifications: docs/rules.md, "Memory at the
        # peak of a first cycle", measured with benchmarks/rss_stages.py).
        if record.info.pop(SHRINK_CACHE, False) and dbapi_connection is not None:
            dbapi_connection.execute(f"PRAGMA cache_size = {DEFAULT_CACHE_SIZE}")
            memory.trim()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers wait on the busy
        # timeout instead of failing with "database is locked" half-way through.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


_STORE_TROUBLE = (
    (("database is locked", "database table is locked", "lock timeout",
      "could not obtain lock", "deadlock detected"),
     "the store is busy: another process or connection held its write lock for longer "
     "than store.busy_timeout; nothing was written, and the work is retried"),
    (("database or disk is full", "no space left on device", "could not extend file",
      "disk full"),
     "the store's disk is full: nothing was written, the previous data is kept, and the "
     "work is retried; free space on the disk that holds the store"),
    (("disk i/o error", "unable to open database file", "readonly database",
      "read-only"),
     "the store's file cannot be written (I/O error, permissions or a read-only disk); "
     "nothing was written, and the work is retried"),
    (("connection refused", "server closed the connection", "could not connect",
      "connection is closed", "terminating connection"),
     "the store does not answer (the database server is down or restarting); nothing "
     "was written, and the work is retried"),
)


def describe_error(exc: BaseException) -> str | None:
    """Return what a store failure means and what happens next, in one sentence with the
    driver's message; None when ``exc`` is not a database error."""
    if not isinstance(exc, (SQLAlchemyError, sqlite3.Error, StoreError)):
        return None
    cause = getattr(exc, "orig", None) or exc
    detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    lowered = detail.lower()
    for needles, meaning in _STORE_TROUBLE:
        if any(n in lowered for n in needles):
            return f"{meaning} ({detail})"
    return f"the store failed: {detail}; nothing was written, and the work is retried"


# Alembic is imported by the migration functions below, not with this module: a process
# that only reads the store (a distributed engine's worker) never loads it.
if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig


def _alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str | None:
    """Return the newest migration revision shipped with this version."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(create_engine("sqlite://")))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Apply every pending migration; return (revision before, revision after).

    Raises StoreError when the database cannot be reached or a migration fails.
    """
    from alembic import command

    try:
        before = current_revision(engine)
        command.upgrade(_alembic_config(engine), "head")
        after = current_revision(engine)
    except (SQLAlchemyError, OSError) as exc:
        raise StoreError(f"cannot migrate the store: {exc}") from exc
    if before != after:
        log.info("store migrated", before=before or "empty", after=after)
    return before, after
