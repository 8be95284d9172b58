"""The cluster's tables: replica heartbeats and shard leases (PostgreSQL only).

Every time here is the database's (``clock_timestamp()``), so the replicas' own clocks
may disagree without harm. The guarantees and how each is kept:

- *One owner per shard.* A shard changes hands only by ``UPDATE … WHERE owner IS NULL
  OR expires_at < clock_timestamp()``; two claimers race on the row lock and the loser
  re-checks the condition and gets nothing.
- *No write after a take-over.* Each shard carries an ``epoch`` bumped whenever it
  changes hands. A replica writing results for its shards first calls :meth:`fence` in
  the same transaction: it takes a shared advisory lock per shard and checks that every
  lease is still its own, at the same epoch, unexpired — else :class:`LeaseLostError`
  and the transaction rolls back. A claimer must take the same advisory lock
  exclusively (``pg_try_advisory_xact_lock``, skipping the shard when it cannot), so a
  take-over waits for a fenced write in flight to commit, and the new owner then reads
  that write.
- *Heartbeats never queue behind work.* Renewing one's own leases takes no advisory
  lock, and claims skip locked rows (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, text

from monitor.errors import StoreError
from monitor.model import utc

SHARD_LOCKS = 0x6B706973  # "kpis": (class, shard) advisory locks fencing shard writes
MIGRATION_LOCK = 0x6B706D67  # "kpmg": one replica migrates the schema at a time

RELEASE = text("UPDATE shard_lease SET owner = NULL, expires_at = NULL "
               "WHERE owner = :me AND NOT (shard = ANY(CAST(:wanted AS integer[])))")
RENEW = text("UPDATE shard_lease SET expires_at = clock_timestamp() + "
             "make_interval(secs => :ttl) "
             "WHERE owner = :me AND shard = ANY(CAST(:wanted AS integer[])) "
             "RETURNING shard, epoch")
# Claimable: free or expired, not locked by another claimer (SKIP LOCKED), and not in
# the middle of a fenced write by its previous owner (the advisory try-lock).
CLAIM = text("UPDATE shard_lease SET owner = :me, epoch = epoch + 1, "
             "expires_at = clock_timestamp() + make_interval(secs => :ttl), "
             "acquired_at = clock_timestamp() "
             "WHERE shard IN (SELECT shard FROM shard_lease "
             "WHERE shard = ANY(CAST(:wanted AS integer[])) "
             "AND (owner IS NULL OR expires_at < clock_timestamp()) "
             "ORDER BY shard FOR UPDATE SKIP LOCKED) "
             "AND (owner IS NULL OR expires_at < clock_timestamp()) "
             "AND pg_try_advisory_xact_lock(:cls, shard) "
             "RETURNING shard, epoch")


class ClusterError(StoreError):
    """The cluster state in the database does not let this replica run as configured."""


class NamesakeError(ClusterError):
    """A live replica already uses this replica's name (``daemon.instance``)."""


class LeaseLostError(StoreError):
    """A shard this replica was writing for is no longer its own; nothing was written."""


@dataclass(frozen=True)
class Replica:
    """One row of the ``replica`` table, with whether its heartbeat is within the TTL."""

    id: str
    incarnation: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    live: bool


@dataclass(frozen=True)
class Lease:
    """One shard's lease; ``live`` is False for a free or expired one."""

    shard: int
    owner: str | None
    epoch: int
    expires_at: datetime | None
    live: bool



class ClusterStore:
    """Membership and shard leases on the shared engine. PostgreSQL only."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        if engine.dialect.name != "postgresql":
            raise ClusterError("replicas coordinate through PostgreSQL; a SQLite store serves "
                               "one process (store.url = \"postgresql://…\" to run several)")

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        """Hold the schema-migration lock: replicas starting together migrate one at a time."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                conn.commit()

    # --- membership ------------------------------------------------------------------

    def join(self, replica: str, incarnation: str, *, host: str, pid: int, version: str,
             ttl: float, shards: int) -> None:
        """Register this process as ``replica`` and make sure ``shards`` shard rows exist.

        Leases a previous process of the same name left are ended (their epochs move
        on at the next claim), so a late write of that process is refused.

        Raises NamesakeError while another process with this name heartbeats within
        ``ttl``, and ClusterError when live replicas use another number of shards (the
        shard rows are re-made only when no other replica is live).
        """
        params = {"id": replica, "ttl": float(ttl)}
        with self.engine.begin() as conn:
            # One joiner at a time; heartbeats (row updates) are not blocked for long.
            conn.execute(text("LOCK TABLE shard_lease IN SHARE ROW EXCLUSIVE MODE"))
            row = conn.execute(text(
                "SELECT incarnation, heartbeat_at > clock_timestamp() - "
                "make_interval(secs => :ttl) FROM replica WHERE id = :id"), params).first()
            if row is not None and row[0] != incarnation and row[1]:
                raise NamesakeError(
                    f"another live replica is named {replica!r} (its last heartbeat is "
                    f"less than {ttl:g}s old): give every replica its own daemon.instance, "
                    "or leave it empty (hostname:pid)")
            others = conn.execute(text(
                "SELECT count(*) FROM replica WHERE id <> :id AND heartbeat_at > "
                "clock_timestamp() - make_interval(secs => :ttl)"), params).scalar_one()
            existing = conn.execute(text("SELECT count(*) FROM shard_lease")).scalar_one()
            if existing != shards:
                if existing and others:
                    raise ClusterError(
                        f"cluster.shards = {shards}, but the {others} live replica(s) on "
                        f"this database use {existing}: every replica needs the same "
                        f"value; set cluster.shards = {existing}, or stop every replica "
                        "and start them all with the new value")
                # Epochs only grow, even across a resize: a fencing token is never reused.
                base = conn.execute(text("SELECT coalesce(max(epoch), 0) FROM shard_lease")
                                    ).scalar_one()
                conn.execute(text("DELETE FROM shard_lease"))
                conn.execute(text("INSERT INTO shard_lease (shard, owner, epoch) "
                                  "SELECT s, NULL, :base FROM generate_series(0, :n - 1) AS s"),
                             {"n": shards, "base": base})
            conn.execute(text("UPDATE shard_lease SET owner = NULL, expires_at = NULL "
                              "WHERE owner = :id"), {"id": replica})
            conn.execute(text(
                "INSERT INTO replica (id, incarnation, host, pid, version, started_at, "
                "heartbeat_at) VALUES (:id, :inc, :host, :pid, :version, clock_timestamp(), "
                "clock_timestamp()) ON CONFLICT (id) DO UPDATE SET incarnation = :inc, "
                "host = :host, pid = :pid, version = :version, started_at = clock_timestamp(), "
                "heartbeat_at = clock_timestamp()"),
                {"id": replica, "inc": incarnation, "host": host, "pid": pid,
                 "version": version})

    def heartbeat(self, replica: str, incarnation: str, ttl: float) -> list[str]:
        """Record that ``replica`` is alive; return the ids of every live replica, sorted.

        Raises NamesakeError when another process of the same name took the row over.
        """
        with self.engine.begin() as conn:
            ours = conn.execute(text(
                "UPDATE replica SET heartbeat_at = clock_timestamp() "
                "WHERE id = :id AND incarnation = :inc RETURNING id"),
                {"id": replica, "inc": incarnation}).first()
            if ours is None:
                taken = conn.execute(text("SELECT incarnation FROM replica WHERE id = :id"),
                                     {"id": replica}).first()
                if taken is not None:
                    raise NamesakeError(
                        f"another process took over the replica name {replica!r}: give "
                        "every replica its own daemon.instance")
                raise ClusterError(f"replica {replica!r} is not registered (its row was "
                                   "removed); it joins again")
            rows = conn.execute(text(
                "SELECT id FROM replica WHERE heartbeat_at > clock_timestamp() - "
                "make_interval(secs => :ttl) ORDER BY id"), {"ttl": float(ttl)})
            return [r[0] for r in rows]

    def leave(self, replica: str, incarnation: str) -> None:
        """Give up every lease of ``replica`` and remove its row (a clean stop)."""
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE shard_lease SET owner = NULL, expires_at = NULL "
                              "WHERE owner = :id"), {"id": replica})
            conn.execute(text("DELETE FROM replica WHERE id = :id AND incarnation = :inc"),
                         {"id": replica, "inc": incarnation})

    def prune(self, older_than: float) -> int:
        """Delete replicas whose last heartbeat is older than ``older_than`` seconds;
        return how many."""
        with self.engine.begin() as conn:
            result = conn.execute(text(
                "DELETE FROM replica WHERE heartbeat_at < clock_timestamp() - "
                "make_interval(secs => :age)"), {"age": float(older_than)})
            return int(result.rowcount)

    # --- leases ----------------------------------------------------------------------

    def sync(self, replica: str, wanted: Iterable[int], ttl: float) -> dict[int, int]:
        """Hold exactly ``wanted`` as far as possible; return ``{shard: epoch}`` now held.

        In one transaction: release the shards held but not wanted; renew the wanted
        ones already held; claim the wanted ones that are free or expired (bumping their
        epoch), skipping any locked by another transaction or by a fenced write of
        their previous owner. A wanted shard another replica still holds is left to it:
        it releases the shard at its own next heartbeat.
        """
        params = {"me": replica, "wanted": sorted(set(wanted)), "cls": SHARD_LOCKS,
                  "ttl": float(ttl)}
        held: dict[int, int] = {}
        with self.engine.begin() as conn:
            conn.execute(RELEASE, params)
            for shard, epoch in conn.execute(RENEW, params):
                held[shard] = epoch
            for shard, epoch in conn.execute(CLAIM, params):
                held[shard] = epoch
        return held

    def fence(self, conn: Connection, replica: str, held: Mapping[int, int]) -> None:
        """Inside a writing transaction: make sure every shard in ``held`` is still
        ``replica``'s at the same epoch, and keep it so until the transaction ends.

        Raises LeaseLostError naming the shards lost; the caller's transaction must roll
        back (leaving the ``with engine.begin()`` block by the exception does that).
        """
        if not held:
            return
        shards = sorted(held)
        conn.execute(text("SELECT pg_advisory_xact_lock_shared(:cls, s) "
                          "FROM unnest(CAST(:shards AS integer[])) AS s ORDER BY s"),
                     {"cls": SHARD_LOCKS, "shards": shards})
        rows = conn.execute(text(
            "SELECT shard, epoch FROM shard_lease WHERE shard = ANY(CAST(:shards AS integer[])) "
            "AND owner = :me AND expires_at > clock_timestamp()"),
            {"shards": shards, "me": replica})
        now_held = {r[0]: r[1] for r in rows}
        lost = sorted(s for s, epoch in held.items() if now_held.get(s) != epoch)
        if lost:
            shown = ", ".join(str(s) for s in lost[:10]) + (" …" if len(lost) > 10 else "")
            raise LeaseLostError(
                f"replica {replica!r} no longer holds shard(s) {shown} (lease expired or "
                "taken over); the results of this cycle were discarded and the shards' "
                "new owner evaluates them")

    # --- reading ---------------------------------------------------------------------

    def replicas(self, ttl: float) -> list[Replica]:
        """Return every registered replica, live or not, by id."""
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT id, incarnation, host, pid, version, started_at, heartbeat_at, "
                "heartbeat_at > clock_timestamp() - make_interval(secs => :ttl) "
                "FROM replica ORDER BY id"), {"ttl": float(ttl)})
            return [Replica(r[0], r[1], r[2], r[3], r[4], utc(r[5]), utc(r[6]), bool(r[7]))
                    for r in rows]

    def leases(self) -> list[Lease]:
        """Return every shard's lease, by shard."""
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT shard, owner, epoch, expires_at, "
                "coalesce(expires_at > clock_timestamp(), false) FROM shard_lease "
                "ORDER BY shard"))
            return [Lease(r[0], r[1], r[2], utc(r[3]) if r[3] is not None else None,
                          bool(r[4]) and r[1] is not None) for r in rows]
