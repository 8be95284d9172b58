"""The persistent store: the only package that touches SQL.

``Store`` opens the database and hands out one repository per area; each repository
is a module here (``observations``, ``alerts``, ``outbox``, …) working on the shared
engine. Callers never see a session or a table.
"""

from __future__ import annotations

import fcntl
import os
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError, StoreLockedError
from monitor.store import db
from monitor.store.db import describe_error

__all__ = ["Store", "describe_error", "open_store"]

if TYPE_CHECKING:
    from monitor.store.alerts import AlertStore
    from monitor.store.cluster import ClusterStore
    from monitor.store.history import HistoryStore
    from monitor.store.notify import NotifyStore
    from monitor.store.observations import ObservationStore
    from monitor.store.sourcestate import SourceStateStore


class Store:
    """An open store. Repositories are created on first use and share one engine."""

    def __init__(self, url: str, *, busy_timeout: float = 5.0, pool_size: int = 5) -> None:
        self.url = url
        self.engine = db.make_engine(url, busy_timeout=busy_timeout, pool_size=pool_size)
        self.dialect = self.engine.dialect.name
        self._lock_file: IO[str] | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @cached_property
    def observations(self) -> ObservationStore:
        """Observations, series, revisions and milestones."""
        from monitor.store.observations import ObservationStore

        return ObservationStore(self.engine)

    @cached_property
    def history(self) -> HistoryStore:
        """The alert history: transitions, notifications sent, messages muted."""
        from monitor.store.history import HistoryStore

        return HistoryStore(self.engine)

    @cached_property
    def source_state(self) -> SourceStateStore:
        """Source validators, health and poll history."""
        from monitor.store.sourcestate import SourceStateStore

        return SourceStateStore(self.engine)

    @cached_property
    def notify(self) -> NotifyStore:
        """Notifier: claimed transitions, notification log, outbox, silences."""
        from monitor.store.notify import NotifyStore

        return NotifyStore(self.engine)

    @cached_property
    def alerts(self) -> AlertStore:
        """Alert state and the transitions the notifier claims."""
        from monitor.store.alerts import AlertStore

        return AlertStore(self.engine)

    @cached_property
    def cluster(self) -> ClusterStore:
        """Replica heartbeats and shard leases (PostgreSQL only; raises ClusterError on
        SQLite)."""
        from monitor.store.cluster import ClusterStore

        return ClusterStore(self.engine)

    def upgrade(self) -> tuple[str | None, str | None]:
        """Apply pending migrations; return (revision before, revision after)."""
        return db.upgrade(self.engine)

    def revision(self) -> str | None:
        return db.current_revision(self.engine)

    def ping(self) -> bool:
        """Return True when the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def lock_single_process(self) -> None:
        """Take the exclusive lock that keeps a SQLite store to one daemon process.

        Raises StoreLockedError naming the holder's PID when another process has it.
        PostgreSQL stores need no lock: replicas coordinate through the database.
        """
        if not self.is_sqlite:
            return
        database = make_url(self.url).database or ""
        if not database or database == ":memory:":
            return
        lock_path = Path(database + ".lock")
        handle = lock_path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreLockedError(
                f"the SQLite store {database} is already used by PID {holder}; a SQLite "
                "store serves one daemon only — stop the other one, or move to PostgreSQL "
                "(store.url = \"postgresql://…\") to run several replicas"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def close(self) -> None:
        self.engine.dispose()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None


def open_store(url: str, *, busy_timeout: float = 5.0, pool_size: int = 5,
               migrate: bool = True) -> Store:
    """Return an open store, migrated to the newest schema when ``migrate``.

    Raises StoreError when the database cannot be reached or migrated.
    """
    store = Store(url, busy_timeout=busy_timeout, pool_size=pool_size)
    if migrate:
        try:
            store.upgrade()
        except StoreError:
            store.close()
            raise
        except SQLAlchemyError as exc:
            store.close()
            raise StoreError(f"cannot open the store: {exc}") from exc
    return store
