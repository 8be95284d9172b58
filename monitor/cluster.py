"""Several ``monitor run`` replicas on one PostgreSQL store: membership and work sharing.

PostgreSQL is the coordination engine; there is no consensus of our own. In steps:

1. Every replica heartbeats into the ``replica`` table. One whose heartbeat is older
   than its lease is dead.
2. The work is cut into ``cluster.shards`` shards: each rule group and each source
   hashes into one (:func:`shard_of`). :func:`assign` — a pure function of the shard
   count and the live replicas, so every replica computes the same answer — says which
   shards each replica should hold: balanced, and stable as replicas come and go.
3. At each heartbeat a replica releases what it should not hold, renews what it holds
   and claims what it should hold and is free or expired (``monitor/store/cluster.py``).
   A dead replica's shards expire and are claimed by the others within
   ``cluster.lease_ttl``.
4. A replica evaluates only the rule groups, and polls only the sources, of the
   shards it holds (:class:`Ownership`), and writes the results in a transaction that
   first checks, and keeps, its leases (:meth:`ClusterMember.guard`): a replica that
   lost a shard mid-cycle writes nothing, so no shard is ever evaluated by two.

Notifications need no shards: transitions and outbox rows are claimed row by row
(``monitor/store/notify.py``). A SQLite store has no cluster: one process does it all.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import Field, model_validator
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__, logs
from monitor.configtypes import Duration, Section
from monitor.errors import MonitorError
from monitor.logs import get_logger
from monitor.retry import backoff
from monitor.store import describe_error
from monitor.store.cluster import (
    ClusterError,
    ClusterStore,
    LeaseLostError,
    NamesakeError,
)

__all__ = ["ClusterError", "ClusterMember", "ClusterSettings", "LeaseLostError",
           "NamesakeError", "Ownership", "Partition", "assign", "digest_key", "group_key",
           "retry_delay", "shard_of", "source_key"]

log = get_logger(__name__)
PRUNE_AFTER = 86400.0  # a dead replica's row stays visible this long


# --- pure decisions ---------------------------------------------------------------------

def shard_of(key: str, shards: int) -> int:
    """Return the shard (0 … shards-1) ``key`` belongs to; the same in every process."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def group_key(group: str) -> str:
    """The work key of a rule group."""
    return f"rules:{group}"


def source_key(name: str) -> str:
    """The work key of a source's scheduled polls."""
    return f"source:{name}"


def digest_key(name: str) -> str:
    """The work key of a scheduled digest."""
    return f"digest:{name}"


def _weight(shard: int, replica: str) -> int:
    digest = hashlib.blake2b(f"{shard}\x00{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign(shards: int, replicas: Sequence[str]) -> dict[str, frozenset[int]]:
    """Return the shards each replica should hold.

    Every shard goes to exactly one replica; no replica gets more than
    ``ceil(shards / replicas)``. Each shard goes to the replica that ranks it highest
    (rendezvous hashing on ``(shard, replica)``) among those with room left, shards
    taken in order — so the answer depends only on the set of names, and a replica
    joining or leaving moves few shards besides its own.
    """
    names = sorted(set(replicas))
    if not names:
        return {}
    room = -(-shards // len(names))
    out: dict[str, set[int]] = {name: set() for name in names}
    for shard in range(shards):
        for name in sorted(names, key=lambda n: _weight(shard, n), reverse=True):
            if len(out[name]) < room:
                out[name].add(shard)
                break
    return {name: frozenset(held) for name, held in out.items()}


def retry_delay(failures: int, interval: float, cap: float, rng: random.Random) -> float:
    """Return how long to wait after ``failures`` failed heartbeats in a row: the
    interval, doubled per further failure, capped, with ±10% jitter (never above the cap)
    so replicas that lost the database together do not return in step."""
    return backoff(failures, interval, cap, jitter=0.1, rng=rng)


@dataclass(frozen=True)
class Ownership:
    """The shards a replica holds at one moment, with their epochs (fencing tokens)."""

    shards: int
    epochs: Mapping[int, int] = field(default_factory=dict)

    def owns(self, key: str) -> bool:
        """Return True when the shard of ``key`` is held."""
        return shard_of(key, self.shards) in self.epochs


class Partition(Protocol):
    """What the rule service needs from the cluster: the shards held now, and a check to
    run inside the transaction that writes their results."""

    def ownership(self) -> Ownership: ...

    def guard(self, ownership: Ownership) -> Callable[[Connection], None]: ...


class ClusterSettings(Section):
    """Replicas on one PostgreSQL store: membership heartbeats and shard leases.

    A replica that stops heartbeating has its shards taken over within ``lease_ttl``:
    leases last ``lease_ttl - heartbeat_interval`` and the others look every interval.
    """

    heartbeat_interval: Duration = 5.0
    lease_ttl: Duration = 30.0
    shards: int = Field(default=64, ge=1, le=4096)

    @model_validator(mode="after")
    def _ttl_covers_heartbeats(self) -> ClusterSettings:
        if self.heartbeat_interval <= 0:
            raise ValueError("cluster.heartbeat_interval must be more than 0")
        if self.lease_ttl < 2 * self.heartbeat_interval:
            raise ValueError("cluster.lease_ttl must be at least twice "
                             "cluster.heartbeat_interval, or a replica loses its shards "
                             "between two heartbeats")
        return self


# --- metrics ------------------------------------------------------------------------------

class ClusterMetrics:
    """``monitor_cluster_*``: membership, shards held, heartbeats, take-overs, fencing."""

    def __init__(self, registry: CollectorRegistry, shards: int) -> None:
        self.replicas = Gauge("monitor_cluster_replicas",
                              "Live replicas seen at the last heartbeat.", registry=registry)
        self.shards = Gauge("monitor_cluster_shards", "Shards the work is cut into.",
                            registry=registry)
        self.shards.set(shards)
        self.held = Gauge("monitor_cluster_shards_held", "Shards this replica holds.",
                          registry=registry)
        self.member = Gauge("monitor_cluster_member",
                            "1 while this replica's heartbeats reach the database.",
                            registry=registry)
        self.last_heartbeat = Gauge("monitor_cluster_last_heartbeat_timestamp_seconds",
                                    "Unix time of the last successful heartbeat.",
                                    registry=registry)
        self.heartbeat_failures = Counter("monitor_cluster_heartbeat_failures_total",
                                          "Heartbeats that failed.", registry=registry)
        self.acquired = Counter("monitor_cluster_shards_acquired_total",
                                "Shards this replica claimed (start, take-over, rebalance).",
                                registry=registry)
        self.lost = Counter("monitor_cluster_lease_lost_total",
                            "Writes refused because a shard was no longer this replica's.",
                            registry=registry)


# --- the member ---------------------------------------------------------------------------

class ClusterMember:
    """This process as a replica: joins, heartbeats in its own thread, holds shards."""

    def __init__(self, store: ClusterStore, settings: ClusterSettings, instance: str,
                 registry: CollectorRegistry, *, host: str = "", pid: int = 0,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None,
                 on_change: Callable[[Ownership], None] | None = None,
                 on_health: Callable[[bool], None] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.instance = instance
        self.incarnation = uuid.uuid4().hex
        self.host = host
        self.pid = pid
        self.monotonic = monotonic
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not security)
        self.on_change = on_change
        self.on_health = on_health
        self.metrics = ClusterMetrics(registry, settings.shards)
        self.replicas: list[str] = []
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}
        self._valid_until = 0.0
        self._healthy = False
        self._error = "not joined yet"
        self._joined = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._beats = 0

    @property
    def lease(self) -> float:
        """How long a lease (and a heartbeat) counts: a dead replica's shards are free
        this long after its last heartbeat, and claimed by the next heartbeat after."""
        return self.settings.lease_ttl - self.settings.heartbeat_interval

    # --- joining and heartbeats ------------------------------------------------------

    def join(self) -> Ownership:
        """Register this replica and claim its first shards; return what it holds.

        A process of the same name that was just killed still looks alive: joining
        waits up to one lease for its heartbeat to run out. Raises NamesakeError after
        that, ClusterError for a shard count other replicas disagree with, and
        SQLAlchemyError when the database does not answer.
        """
        deadline = self.monotonic() + self.lease + self.settings.heartbeat_interval
        while True:
            try:
                self._register()
                break
            except NamesakeError:
                if self.monotonic() >= deadline or self._stop.is_set():
                    raise
                self._stop.wait(self.settings.heartbeat_interval)
        return self.beat()

    def _register(self) -> None:
        self.store.join(self.instance, self.incarnation, host=self.host, pid=self.pid,
                        version=__version__, ttl=self.lease, shards=self.settings.shards)
        self._joined = True
        log.info("joined the cluster", replica=self.instance, shards=self.settings.shards,
                 lease_ttl=self.settings.lease_ttl)

    def beat(self) -> Ownership:
        """Heartbeat once: record liveness, compute the wanted shards from the live
        replicas, release, renew and claim. Returns what is held now.

        Raises SQLAlchemyError when the database does not answer and ClusterError when
        the replica's row was taken by a namesake; what is held is then unchanged (and
        runs out with its lease).
        """
        started = self.monotonic()
        if not self._joined:
            self._register()
        try:
            live = self.store.heartbeat(self.instance, self.incarnation, self.lease)
        except NamesakeError:
            raise
        except ClusterError:
            self._joined = False  # our row was removed (a very long outage): join again
            raise
        if self.instance not in live:
            live = sorted([*live, self.instance])
        wanted = assign(self.settings.shards, live).get(self.instance, frozenset())
        held = self.store.sync(self.instance, wanted, self.lease)
        with self._lock:
            before = self._held if started < self._valid_until else {}
            changed = held != before
            self._held = held
            self._valid_until = started + self.lease
            self.replicas = live
            recovered = not self._healthy
            self._healthy = True
            self._error = ""
        gained = [s for s, e in held.items() if before.get(s) != e]
        self.metrics.acquired.inc(len(gained))
        self.metrics.replicas.set(len(live))
        self.metrics.held.set(len(held))
        self.metrics.member.set(1)
        self.metrics.last_heartbeat.set(time.time())
        ownership = Ownership(self.settings.shards, dict(held))
        if changed:
            log.info("shards changed", replica=self.instance, held=len(held),
                     gained=len(gained), released=len(set(before) - set(held)),
                     waiting=len(wanted - set(held)), replicas=len(live))
            if self.on_change is not None:
                self.on_change(ownership)
        if recovered and self.on_health is not None:
            self.on_health(True)
        return ownership

    def _failed(self, exc: Exception, failures: int, delay: float) -> None:
        if isinstance(exc, MonitorError):
            message = str(exc)
        else:
            message = describe_error(exc) or f"{type(exc).__name__}: {exc}"
        message = logs.redact(message)
        with self._lock:
            was_healthy = self._healthy
            self._healthy = False
            self._error = message
        self.metrics.heartbeat_failures.inc()
        self.metrics.member.set(0)
        log.warning("cluster heartbeat failed; retrying", replica=self.instance,
                    failures=failures, retry_in=round(delay, 2), error=message)
        if was_healthy and self.on_health is not None:
            self.on_health(False)

    def _run(self) -> None:
        failures = 0
        delay = self.settings.heartbeat_interval
        cap = max(self.settings.heartbeat_interval, self.settings.lease_ttl / 2)
        while not self._stop.wait(delay):
            try:
                self.beat()
            except Exception as exc:  # the loop must go on: the database comes back
                if not isinstance(exc, SQLAlchemyError | MonitorError | OSError):
                    log.exception("cluster heartbeat crashed", replica=self.instance)
                failures += 1
                delay = retry_delay(failures, self.settings.heartbeat_interval, cap, self.rng)
                self._failed(exc, failures, delay)
                continue
            if failures:
                log.info("cluster heartbeat recovered", replica=self.instance,
                         after_failures=failures)
            failures = 0
            delay = self.settings.heartbeat_interval
            self._beats += 1
            if self._beats % 100 == 1:
                self._prune()

    def _prune(self) -> None:
        try:
            pruned = self.store.prune(PRUNE_AFTER)
        except Exception as exc:  # housekeeping only
            log.warning("cannot prune dead replicas", error=logs.redact(str(exc)))
            return
        if pruned:
            log.info("forgot dead replicas", replicas=pruned)

    def start(self) -> None:
        """Heartbeat every ``heartbeat_interval`` in a thread of its own (idempotent): a
        busy scheduler never delays it."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="cluster-heartbeat",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop heartbeating and leave: the shards are free for the others at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self._held = {}
            self._valid_until = 0.0
            self._healthy = False
        self.metrics.held.set(0)
        self.metrics.member.set(0)
        if not self._joined:
            return
        try:
            self.store.leave(self.instance, self.incarnation)
            log.info("left the cluster", replica=self.instance)
        except Exception as exc:  # the leases run out by themselves
            log.warning("cannot leave the cluster; its shards free up when the lease ends",
                        replica=self.instance, error=logs.redact(str(exc)))

    # --- what the others ask -----------------------------------------------------------

    def ownership(self) -> Ownership:
        """Return the shards held now: none once the last good heartbeat is a lease old."""
        with self._lock:
            valid = self.monotonic() < self._valid_until
            return Ownership(self.settings.shards, dict(self._held) if valid else {})

    def owns(self, key: str) -> bool:
        """Return True when this replica holds the shard of ``key`` now."""
        return self.ownership().owns(key)

    def guard(self, ownership: Ownership) -> Callable[[Connection], None]:
        """Return the check a writing transaction runs first: every shard of
        ``ownership`` still held at the same epoch, and kept until commit. It raises
        LeaseLostError (and forgets the shards until the next heartbeat) otherwise."""

        def check(conn: Connection) -> None:
            try:
                self.store.fence(conn, self.instance, ownership.epochs)
            except LeaseLostError:
                self.metrics.lost.inc()
                with self._lock:
                    self._valid_until = 0.0
                raise

        return check

    def health(self) -> tuple[bool, str]:
        """Return (True, "") while heartbeats succeed, else (False, why)."""
        with self._lock:
            if self._healthy and self.monotonic() < self._valid_until:
                return True, ""
            return False, self._error or "heartbeat overdue"

    def status(self) -> dict[str, object]:
        """Return a summary for status pages and logs."""
        ownership = self.ownership()
        healthy, error = self.health()
        return {"replica": self.instance, "healthy": healthy, "error": error,
                "replicas": list(self.replicas), "shards": self.settings.shards,
                "held": sorted(ownership.epochs)}
