"""What each data source remembers between polls, and its poll history.

``source_state`` holds one row per source: the validators that make the next request
conditional (ETag, Last-Modified, a hash of the last body, a cursor such as the last month
published) — valid only for the config they were taken with — and the source's health.
``source_poll`` keeps one row per poll for the API and for operators.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, delete, func, insert, select, update

from monitor.model import utc
from monitor.store.tables import SourcePollRow, SourceStateRow

KEEP_POLLS = 500  # history rows kept per source
_STATE: Table = SourceStateRow.metadata.tables["source_state"]
_POLL: Table = SourcePollRow.metadata.tables["source_poll"]
S = _STATE.c
P = _POLL.c


@dataclass(frozen=True, slots=True)
class Validators:
    """What makes the next fetch conditional. Empty strings mean "not known"."""

    etag: str = ""
    last_modified: str = ""
    content_hash: str = ""
    cursor: str = ""
    config_digest: str = ""

    def for_config(self, digest: str) -> Validators:
        """Return these validators if taken with config ``digest``, else empty ones."""
        return self if self.config_digest == digest else Validators(config_digest=digest)


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """A source's health as the API and metrics show it."""

    source: str
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str
    consecutive_failures: int

    @property
    def healthy(self) -> bool:
        return self.consecutive_failures == 0 and self.last_success_at is not None


@dataclass(frozen=True, slots=True)
class PollRecord:
    """One poll as recorded in the history."""

    source: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str  # success | unchanged | partial | empty | failed
    observations: int
    inserted: int
    revisions: int
    rejected: int
    error: str


def _dt(value: Any) -> datetime | None:
    return None if value is None else utc(value)


class SourceStateStore:
    """Validators, health and poll history of every source."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def validators(self, source: str) -> Validators:
        """Return the stored validators of ``source`` (empty ones when it never succeeded)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(S.etag, S.last_modified, S.content_hash, S.cursor,
                                      S.config_digest).where(S.source == source)).first()
        if row is None:
            return Validators()
        return Validators(*(str(v or "") for v in row))

    def record_success(self, source: str, *, started: datetime, finished: datetime,
                       outcome: str, validators: Validators | None, observations: int = 0,
                       inserted: int = 0, revisions: int = 0, rejected: int = 0,
                       note: str = "") -> None:
        """Record a successful (or unchanged, or partial) poll and its new validators.

        ``validators`` None keeps the stored ones (a backfill from a file changes none).
        """
        values: dict[str, Any] = {
            "last_success_at": utc(finished), "last_attempt_at": utc(started),
            "last_error": "", "consecutive_failures": 0,
        }
        if validators is not None:
            values.update(etag=validators.etag, last_modified=validators.last_modified,
                          content_hash=validators.content_hash, cursor=validators.cursor,
                          config_digest=validators.config_digest)
        with self.engine.begin() as conn:
            self._upsert(conn, source, values)
            self._poll(conn, source, started, finished, outcome, observations, inserted,
                       revisions, rejected, note)

    def record_failure(self, source: str, *, started: datetime, finished: datetime,
                       error: str) -> int:
        """Record a failed poll; return the source's consecutive failures, this one included."""
        with self.engine.begin() as conn:
            current = conn.execute(select(S.consecutive_failures)
                                   .where(S.source == source)).scalar()
            failures = int(current or 0) + 1
            self._upsert(conn, source, {"last_attempt_at": utc(started), "last_error": error,
                                        "consecutive_failures": failures})
            self._poll(conn, source, started, finished, "failed", 0, 0, 0, 0, error)
        return failures

    def record_empty(self, source: str, *, started: datetime, finished: datetime,
                     error: str, fail_after: int) -> tuple[int, int]:
        """Record a poll whose payload had no rows; nothing else changes (the last success
        and the validators stay, so the next poll reads the payload again).

        The ``fail_after``-th empty poll in a row, and each one after it, counts as a
        failed poll. Returns (empty polls in a row, consecutive failures), this one included.
        """
        with self.engine.begin() as conn:
            latest = conn.execute(select(P.outcome).where(P.source == source)
                                  .order_by(P.id.desc()).limit(KEEP_POLLS)).scalars()
            streak = 1
            for outcome in latest:
                if outcome != "empty":
                    break
                streak += 1
            current = conn.execute(select(S.consecutive_failures)
                                   .where(S.source == source)).scalar()
            failures = int(current or 0)
            if streak >= fail_after:
                failures += 1
            self._upsert(conn, source, {"last_attempt_at": utc(started), "last_error": error,
                                        "consecutive_failures": failures})
            self._poll(conn, source, started, finished, "empty", 0, 0, 0, 0, error)
        return streak, failures

    def _upsert(self, conn: Any, source: str, values: dict[str, Any]) -> None:
        changed = conn.execute(update(_STATE).where(S.source == source).values(**values)).rowcount
        if not changed:
            conn.execute(insert(_STATE).values(source=source, **values))

    def _poll(self, conn: Any, source: str, started: datetime, finished: datetime,
              outcome: str, observations: int, inserted: int, revisions: int, rejected: int,
              error: str) -> None:
        conn.execute(insert(_POLL).values(
            source=source, started_at=utc(started), finished_at=utc(finished), outcome=outcome,
            observations=observations, inserted=inserted, revisions=revisions,
            rejected=rejected, error=error))
        cutoff = conn.execute(select(P.id).where(P.source == source).order_by(P.id.desc())
                              .offset(KEEP_POLLS).limit(1)).scalar()
        if cutoff is not None:
            conn.execute(delete(_POLL).where(P.source == source, P.id <= cutoff))

    def health(self) -> list[SourceHealth]:
        """Return the health of every source that was ever polled, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(S.source, S.last_success_at, S.last_attempt_at,
                                       S.last_error, S.consecutive_failures)
                                .order_by(S.source)).all()
        return [SourceHealth(str(s), _dt(ok), _dt(at), str(err or ""), int(n))
                for s, ok, at, err, n in rows]

    def get(self, source: str) -> SourceHealth | None:
        """Return the health of one source (None when it was never polled)."""
        return next((h for h in self.health() if h.source == source), None)

    def polls(self, source: str, limit: int = 50) -> list[PollRecord]:
        """Return the latest polls of ``source``, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_POLL).where(P.source == source).order_by(P.id.desc())
                                .limit(limit)).all()
        return [PollRecord(str(r.source), utc(r.started_at), _dt(r.finished_at), str(r.outcome),
                           int(r.observations), int(r.inserted), int(r.revisions),
                           int(r.rejected), str(r.error)) for r in rows]

    def last_read(self, source: str) -> PollRecord | None:
        """Return the latest poll of ``source`` that read data (outcome ``success`` or
        ``partial``); None when none did."""
        with self.engine.connect() as conn:
            r = conn.execute(select(_POLL).where(P.source == source,
                                                 P.outcome.in_(("success", "partial")))
                             .order_by(P.id.desc()).limit(1)).first()
        if r is None:
            return None
        return PollRecord(str(r.source), utc(r.started_at), _dt(r.finished_at), str(r.outcome),
                          int(r.observations), int(r.inserted), int(r.revisions),
                          int(r.rejected), str(r.error))

    def poll_count(self, source: str) -> int:
        """Return how many polls of ``source`` the history holds."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(_POLL)
                                    .where(P.source == source)).scalar_one())
