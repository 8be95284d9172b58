"""Polling: each source on its own schedule, one transaction per poll, health kept.

A poll is a pipeline of small stages::

    fetch      I/O; a payload, or "unchanged" (304, same body hash, no new month)
    parse      pure; observations (or milestones) and row problems
    finish     pure; the provisional rule (the last N periods)
    report     each rejected value logged with source, row and field; counted by reason
    empty      pure; a payload with no rows is its own outcome, stored as nothing
    judge      pure; too many rows rejected fails the poll as a whole
    store      one transaction: it lands whole or not at all
    record     validators, health and the poll's history row

An empty payload (a header and no rows, ``[]``, every row filtered out) is a warning
and changes nothing stored: the source's last success does not move (so SourceStale
can fire) and its validators stay (so the next poll reads the payload again). From
the ``empty_payloads``-th in a row, each one counts as a failed poll, and a source
that keeps publishing empty files turns unhealthy and raises SourceFailing.

One bad source never stops the others: every failure is caught, logged once, counted,
kept as the source's last error, and the previous data stays. Scheduled polls of a
source that keeps failing back off (see :func:`failure_backoff`).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry

from monitor.clock import Clock
from monitor.errors import ConfigError, PayloadError, Problem, SourceError
from monitor.logs import get_logger
from monitor.model import RowProblem
from monitor.retry import backoff
from monitor.sources.base import Parsed, Payload, Source, SourceDeps
from monitor.sources.config import SourceBase, check_unique_names, cron_trigger
from monitor.sources.mapping import mark_provisional
from monitor.sources.metrics import SourceMetrics
from monitor.sources.registry import KINDS, build
from monitor.store import Store, describe_error
from monitor.store.observations import IngestResult, MilestoneResult
from monitor.store.sourcestate import SourceHealth

log = get_logger(__name__)

JOB_PREFIX = "source:"
MAX_BACKOFF = 6 * 3600.0
KEPT_PROBLEMS = 20  # row problems a PollResult carries (all are logged up to the cap below)


@dataclass(frozen=True)
class PollResult:
    """What one poll (or one backfill from a file) did."""

    source: str
    outcome: str  # success | partial | unchanged | empty | failed | skipped
    started_at: datetime
    finished_at: datetime
    rows: int = 0
    rejected: int = 0  # rows with at least one rejected value
    skipped: int = 0
    stored: IngestResult = field(default_factory=IngestResult)
    milestones: MilestoneResult | None = None
    problems: tuple[RowProblem, ...] = ()
    rejected_values: int = 0  # every problem found, several per row possibly
    error: str = ""

    @property
    def ok(self) -> bool:
        """Whether the poll read something usable (an empty payload is not)."""
        return self.outcome in ("success", "partial", "unchanged")

    def summary(self) -> str:
        """Return one line for people: what was read, stored and rejected."""
        if self.outcome in ("failed", "empty"):
            return f"{self.source}: {self.outcome}: {self.error}"
        if self.outcome in ("unchanged", "skipped"):
            return f"{self.source}: {self.outcome}"
        parts = [f"{self.rows:,} rows"]
        if self.milestones is not None:
            m = self.milestones
            parts.append(f"milestones {m.inserted} new, {m.updated} changed, "
                         f"{m.unchanged} unchanged, {m.removed} removed")
        else:
            s = self.stored
            parts.append(f"{s.observations:,} observations: {s.inserted:,} new, "
                         f"{s.revised:,} revised, {s.updated:,} updated, "
                         f"{s.unchanged:,} unchanged")
            if s.series_created:
                parts.append(f"{s.series_created:,} new series")
        values = (f" ({self.rejected_values:,} values)"
                  if self.rejected_values > self.rejected else "")
        parts.append(f"{self.rejected:,} row{'s' if self.rejected != 1 else ''} rejected"
                     f"{values}")
        if self.skipped:
            parts.append(f"{self.skipped:,} skipped")
        return f"{self.source}: {self.outcome}: " + ", ".join(parts)


@dataclass(frozen=True)
class Settling:
    """Sources whose data is not settled yet (see ``Poller.unsettled``)."""

    awaiting: frozenset[str] = frozenset()  # the first poll since start has not finished
    polling: frozenset[str] = frozenset()  # a poll is in flight

    def __bool__(self) -> bool:
        return bool(self.awaiting or self.polling)


def rejected_rows(problems: Sequence[RowProblem]) -> int:
    """Return how many input rows ``problems`` reject (a row may have several)."""
    return len({p.row for p in problems})


def judge(config: SourceBase, parsed: Parsed) -> None:
    """Raise PayloadError when more than ``max_reject_ratio`` of the rows were rejected."""
    rejected = rejected_rows(parsed.problems)
    if not parsed.rows or not rejected:
        return
    share = rejected / max(parsed.rows, rejected)
    if share > config.max_reject_ratio:
        first = parsed.problems[0]
        raise PayloadError(
            f"source {config.name!r}: {rejected:,} of {parsed.rows:,} rows rejected "
            f"({share:.0%}, more than max_reject_ratio {config.max_reject_ratio:.0%}); the "
            f"payload looks broken, so nothing is stored and the previous data is kept; the "
            f"first: {first}")


def empty_reason(parsed: Parsed) -> str | None:
    """Return why a parsed payload is empty — no rows, or every row left out — or None
    when it has something to store (or rows rejected, which :func:`judge` weighs)."""
    if parsed.count() or parsed.milestones or parsed.problems:
        return None
    if not parsed.rows:
        return "no rows (a header alone, an empty list or an empty result)"
    return (f"every row ({parsed.rows:,}) was left out by the source's filters (unmapped = "
            '"skip", null markers)')


def failure_backoff(failures: int, every: float) -> float:
    """Return how long after a failed attempt scheduled polls wait (0: the next one runs).

    The first failure changes nothing; each further one doubles the wait, from one
    schedule period up to six hours (or the period, when longer).
    """
    if failures <= 1:
        return 0.0
    return backoff(failures, every, max(MAX_BACKOFF, every))


def first_run(config: SourceBase, health: SourceHealth | None, now: datetime,
              rng: random.Random) -> datetime | None:
    """Return when a source's first scheduled poll runs (None: as its cron says).

    A source that never succeeded, or whose last success is older than its interval,
    polls right away (within its jitter); otherwise when the interval since its last
    success ends.
    """
    delay = timedelta(seconds=rng.uniform(0, config.jitter)) if config.jitter else timedelta()
    last = health.last_success_at if health else None
    if config.cron is not None:
        return now + delay if last is None else None
    if last is None:
        return now + delay
    return max(now, last + timedelta(seconds=config.every)) + delay


def _check_names(configs: Sequence[SourceBase]) -> None:
    duplicates = check_unique_names(list(configs))
    if duplicates:
        raise ConfigError([Problem("", None, None, "sources", m) for m in duplicates])


class Poller:
    """Polls the configured sources into the store and keeps their health and metrics."""

    def __init__(self, store: Store, configs: Sequence[SourceBase], clock: Clock,
                 registry: CollectorRegistry, *,
                 kinds: Mapping[str, type[Source[Any]]] = KINDS,
                 deps: SourceDeps | None = None, max_logged_problems: int = 100,
                 owns: Callable[[str], bool] | None = None) -> None:
        _check_names(configs)
        self.store = store
        self.owns = owns  # on a cluster: whether this replica polls the source now
        self.clock = clock
        self.kinds = kinds
        self.deps = deps or SourceDeps(clock=clock)
        self.metrics = SourceMetrics(registry)
        self.max_logged_problems = max_logged_problems
        self._sources: dict[str, Source[Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._retry_at: dict[str, datetime] = {}
        self._scheduler: Any = None
        self._polling: set[str] = set()  # polls in flight
        self._awaiting: set[str] = set()  # scheduled to poll at once, not yet polled
        self.update(configs)
        for health in self.store.source_state.health():
            if health.source in self._sources:
                self._show_health(health)

    # --- configuration -------------------------------------------------------------

    def update(self, configs: Sequence[SourceBase]) -> None:
        """Replace the configured sources (a reload); reschedule when scheduled.

        Raises ConfigError when two sources share a name.
        """
        _check_names(configs)
        old = self._sources
        self._sources = {c.name: build(c, self.deps, self.kinds) for c in configs}
        for name in self._sources:
            self._locks.setdefault(name, threading.Lock())
        self.metrics.known(self._sources)
        for source in old.values():
            source.close()
        if self._scheduler is not None:
            self.schedule(self._scheduler)

    def unsettled(self) -> Settling:
        """Return the sources whose data is not settled: those awaiting their first poll
        since the schedule started (due at once), and those being polled. Rules reading
        them wait (``RuleService``), so nothing is judged on half-polled data. On a
        cluster only the sources this replica polls count."""
        def mine(names: set[str]) -> frozenset[str]:
            return frozenset(n for n in names if self.owns is None or self.owns(n))

        return Settling(mine(set(self._awaiting)), mine(set(self._polling)))

    @property
    def names(self) -> list[str]:
        return list(self._sources)

    def source(self, name: str) -> Source[Any]:
        """Return the source named ``name``. Raises SourceError listing the known names."""
        try:
            return self._sources[name]
        except KeyError:
            known = ", ".join(self._sources) or "none configured"
            raise SourceError(f"no source named {name!r} (configured: {known})") from None

    def health(self) -> list[SourceHealth]:
        """Return the health of every configured source (never-polled ones included)."""
        stored = {h.source: h for h in self.store.source_state.health()}
        return [stored.get(name) or SourceHealth(name, None, None, "", 0)
                for name in self._sources]

    def next_poll(self, name: str) -> datetime | None:
        """Return when the scheduler next polls ``name``, skipping the runs a failure
        backoff drops; None when it is not scheduled here (disabled, not scheduled, or
        another replica's to poll)."""
        if self._scheduler is None or (self.owns is not None and not self.owns(name)):
            return None
        job = self._scheduler.get_job(JOB_PREFIX + name)
        at: datetime | None = job.next_run_time if job is not None else None
        retry_at = self._retry_at.get(name)
        for _ in range(10_000):  # a backoff lasts hours at most: a few fire times
            if at is None or retry_at is None or at >= retry_at:
                break
            at = job.trigger.get_next_fire_time(at, at)
        return at

    def close(self) -> None:
        for source in self._sources.values():
            source.close()

    def clock_jumped(self) -> None:
        """Forget failure backoffs: after the wall clock jumped back they would last as
        long as the jump; the next scheduled poll of every source runs."""
        self._retry_at.clear()

    # --- scheduling -----------------------------------------------------------------

    def schedule(self, scheduler: Any) -> list[str]:
        """Add one job per enabled source to an APScheduler scheduler; return the job ids.

        Interval or cron triggers with the source's jitter; a missed run is run once,
        however late (coalesce, no grace limit). Jobs added by an earlier call (sources
        since removed, changed or disabled) are replaced.
        """
        self._scheduler = scheduler
        for job in scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX):
                scheduler.remove_job(job.id)
        now = self.clock.now()
        health = {h.source: h for h in self.store.source_state.health()}
        wanted: list[str] = []
        self._awaiting = set()
        for name, source in self._sources.items():
            config = source.config
            if not config.enabled:
                continue
            jitter = round(config.jitter) or None
            trigger: Any
            if config.cron is not None:
                trigger = cron_trigger(config.cron, config.jitter)
            else:
                trigger = IntervalTrigger(seconds=config.every, timezone="UTC", jitter=jitter)
            job_id = JOB_PREFIX + name
            options: dict[str, Any] = {}
            start = first_run(config, health.get(name), now, self.deps.rng)
            if start is not None:
                options["next_run_time"] = start
            last = health[name].last_success_at if name in health else None
            if last is None or (config.cron is None
                                and last + timedelta(seconds=config.every) <= now):
                self._awaiting.add(name)  # polls at once: its data is not settled yet
            scheduler.add_job(self.scheduled_poll, trigger, args=[name], id=job_id,
                              name=f"poll {name}", coalesce=True,
                              max_instances=1, misfire_grace_time=None, **options)
            wanted.append(job_id)
        return wanted

    def scheduled_poll(self, name: str) -> PollResult | None:
        """Poll ``name`` unless it is backing off, already being polled or (on a cluster)
        another replica's to poll; never raises."""
        if self.owns is not None and not self.owns(name):
            return None
        now = self.clock.now()
        retry_at = self._retry_at.get(name)
        if retry_at is not None and now < retry_at:
            log.debug("poll skipped: backing off after failures", source=name,
                      until=retry_at.isoformat())
            return None
        lock = self._locks.get(name)
        if lock is None or not lock.acquire(blocking=False):
            return None
        try:
            return self._poll_locked(name)
        finally:
            lock.release()

    # --- polling ----------------------------------------------------------------------

    def poll(self, name: str) -> PollResult:
        """Poll one source now and return what happened (failures are results, not raised).

        Raises SourceError only when no source has that name.
        """
        self.source(name)
        with self._locks[name]:
            return self._poll_locked(name)

    def poll_all(self) -> list[PollResult]:
        """Poll every enabled source once, one after another."""
        return [self.poll(name) for name, s in list(self._sources.items()) if s.config.enabled]

    def ingest_file(self, name: str, path: Path) -> PollResult:
        """Backfill ``name`` from a local file read with that source's mapping.

        The source's validators are left alone. Raises SourceError for an unknown name.
        """
        source = self.source(name)
        with self._locks[name]:
            return self._run(source, lambda: source.load_file(path), record_validators=False)

    def _poll_locked(self, name: str) -> PollResult:
        source = self.source(name)

        def fetch() -> Payload:
            return source.fetch(self.store.source_state.validators(name))

        return self._run(source, fetch, record_validators=True)

    def _run(self, source: Source[Any], fetch: Callable[[], Payload], *,
             record_validators: bool) -> PollResult:
        name = source.name
        self._polling.add(name)
        try:
            return self._attempt(source, fetch, record_validators=record_validators)
        finally:
            self._polling.discard(name)
            self._awaiting.discard(name)

    def _attempt(self, source: Source[Any], fetch: Callable[[], Payload], *,
                 record_validators: bool) -> PollResult:
        name = source.name
        started = self.clock.now()
        clock_start = time.monotonic()
        try:
            payload = fetch()
            if payload.unchanged:
                result = PollResult(name, "unchanged", started, self.clock.now())
                self.store.source_state.record_success(
                    name, started=started, finished=result.finished_at, outcome="unchanged",
                    validators=payload.validators if record_validators else None)
            else:
                parsed = source.parse(payload)
                parsed.batch = mark_provisional(source.config, parsed.batch)
                self._report(name, parsed.problems)
                empty = empty_reason(parsed) if source.config.empty_payloads else None
                if empty is not None:
                    return self._empty(source, payload, parsed, empty, started, clock_start)
                judge(source.config, parsed)
                result = self._store(source, parsed, started)
                self.store.source_state.record_success(
                    name, started=started, finished=result.finished_at, outcome=result.outcome,
                    validators=payload.validators if record_validators else None,
                    observations=result.stored.observations, inserted=result.stored.inserted,
                    revisions=result.stored.revised, rejected=result.rejected)
        except Exception as exc:  # one bad source never stops the others
            return self._failed(source, started, clock_start, exc)
        self._retry_at.pop(name, None)
        self._count(result, time.monotonic() - clock_start)
        log.info("source polled", source=name, outcome=result.outcome, rows=result.rows,
                 inserted=result.stored.inserted, revised=result.stored.revised,
                 rejected=result.rejected, seconds=round(time.monotonic() - clock_start, 3))
        return result

    def _store(self, source: Source[Any], parsed: Parsed, started: datetime) -> PollResult:
        name = source.name
        now = self.clock.now()
        outcome = "partial" if parsed.problems else "success"
        common: dict[str, Any] = {"rows": parsed.rows,
                                  "rejected": rejected_rows(parsed.problems),
                                  "rejected_values": len(parsed.problems),
                                  "skipped": parsed.skipped,
                                  "problems": tuple(parsed.problems[:KEPT_PROBLEMS])}
        if parsed.milestones is not None:
            milestones = self.store.observations.upsert_milestones(
                name, parsed.milestones, now=now, remove_missing=not parsed.problems)
            return PollResult(name, outcome, started, self.clock.now(), milestones=milestones,
                              **common)
        frequency = getattr(source.config, "frequency", None)
        stored = self.store.observations.ingest(name, parsed.batch, now=now,
                                                indicator_frequency=frequency)
        return PollResult(name, outcome, started, self.clock.now(), stored=stored, **common)

    def _report(self, name: str, problems: Sequence[RowProblem]) -> None:
        """Log each rejected row (up to the cap, then a summary) and count it by reason."""
        if not problems:
            return
        reasons = Counter(p.reason for p in problems)
        for reason, count in reasons.items():
            self.metrics.rejected.labels(name, reason).inc(count)
        for problem in problems[:self.max_logged_problems]:
            log.warning("row rejected", source=name, row=problem.row, field=problem.field,
                        reason=problem.reason, error=problem.message)
        hidden = len(problems) - self.max_logged_problems
        if hidden > 0:
            log.warning("more rows rejected than logged", source=name, not_logged=hidden,
                        by_reason=dict(reasons))

    def _empty(self, source: Source[Any], payload: Payload, parsed: Parsed, reason: str,
               started: datetime, clock_start: float) -> PollResult:
        """Record an empty payload: a warning, or from ``empty_payloads`` in a row on a
        failed poll; nothing is stored and the validators are not, so it is read again."""
        name = source.name
        limit = source.config.empty_payloads
        error = (f"source {name!r}: {payload.origin}: empty payload: {reason}; nothing is "
                 "stored and the previous data is kept")
        try:
            streak, failures = self.store.source_state.record_empty(
                name, started=started, finished=self.clock.now(), error=error,
                fail_after=limit)
        except Exception as exc:  # the store may be what failed
            return self._failed(source, started, clock_start, exc)
        counted = streak >= limit
        error += (f" ({streak:,} empty payload{'s' if streak != 1 else ''} in a row; from "
                  f"{limit:,} in a row (empty_payloads) each counts as a failed poll)")
        finished = self.clock.now()
        if counted:
            log.error("poll failed: empty payload; previous data kept", source=name,
                      error=error, empty_in_a_row=streak)
            wait = failure_backoff(failures, source.config.every)
            if wait:
                self._retry_at[name] = finished + timedelta(seconds=wait)
            self.metrics.last_failure.labels(name).set(finished.timestamp())
        else:
            log.warning("empty payload; previous data kept", source=name, error=error,
                        empty_in_a_row=streak)
        self.metrics.polls.labels(name, "empty").inc()
        self.metrics.duration.labels(name).observe(time.monotonic() - clock_start)
        self.metrics.failures.labels(name).set(failures)
        return PollResult(name, "empty", started, finished, rows=parsed.rows,
                          skipped=parsed.skipped, error=error)

    def _failed(self, source: Source[Any], started: datetime, clock_start: float,
                exc: Exception) -> PollResult:
        name = source.name
        finished = self.clock.now()
        store_trouble = describe_error(exc)
        if isinstance(exc, SourceError):
            error = str(exc)
            log.error("poll failed; previous data kept", source=name, error=error)
        elif store_trouble is not None:
            error = f"source {name!r}: {store_trouble}"
            log.error("poll failed: the store refused the write; previous data kept",
                      source=name, error=error)
        else:
            error = f"source {name!r}: {type(exc).__name__}: {exc}"
            log.exception("poll failed unexpectedly; previous data kept", source=name)
        failures = 0
        try:
            failures = self.store.source_state.record_failure(name, started=started,
                                                              finished=finished, error=error)
        except Exception as record_exc:  # the store may be what failed
            trouble = describe_error(record_exc)
            if trouble is not None:
                log.error("cannot record the failed poll", source=name, error=trouble)
            else:
                log.exception("cannot record the failed poll", source=name)
        wait = failure_backoff(failures, source.config.every)
        if wait:
            self._retry_at[name] = finished + timedelta(seconds=wait)
        self.metrics.polls.labels(name, "failed").inc()
        self.metrics.duration.labels(name).observe(time.monotonic() - clock_start)
        self.metrics.failures.labels(name).set(failures)
        self.metrics.last_failure.labels(name).set(finished.timestamp())
        return PollResult(name, "failed", started, finished, error=error)

    def _count(self, result: PollResult, seconds: float) -> None:
        name = result.source
        metrics = self.metrics
        metrics.polls.labels(name, result.outcome).inc()
        metrics.duration.labels(name).observe(seconds)
        metrics.last_success.labels(name).set(result.finished_at.timestamp())
        metrics.failures.labels(name).set(0)
        stored = result.stored
        for label, count in (("inserted", stored.inserted), ("revised", stored.revised),
                             ("updated", stored.updated), ("unchanged", stored.unchanged)):
            if count:
                metrics.observations.labels(name, label).inc(count)
        if stored.revised:
            metrics.revisions.labels(name).inc(stored.revised)

    def _show_health(self, health: SourceHealth) -> None:
        if health.last_success_at is not None:
            self.metrics.last_success.labels(health.source).set(
                health.last_success_at.timestamp())
        self.metrics.failures.labels(health.source).set(health.consecutive_failures)

