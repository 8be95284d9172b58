"""Delivering the outbox: one lane per receiver integration, leases, retries, dead letters.

Every message was committed to the outbox before anything tries to send it. A lane
(one integration of one receiver, e.g. ``ops``/``slack:0``) has its own worker, so a
slow or failing receiver never delays the others. A worker:

1. leases the lane's oldest due messages (``claimed_until`` = now + ``retry.lease``; as
   many as can each use the whole ``retry.timeout`` within the lease) — a replica or a
   restarted process takes them again only after the lease runs out, so a crash between
   commit and send means a late delivery, never a lost one, and at most one duplicate;
2. waits for the receiver's rate limit, if it has one;
3. renders and sends it — the notification as this process built it when it enqueued
   the message (:class:`Enqueued`), else decoded from the stored payload; on success
   marks it delivered;
4. on a retryable failure (connection, timeout, 5xx, 429) schedules the next attempt
   with exponential backoff and jitter, or exactly after ``Retry-After`` (at most
   ``give_up_after``); on a permanent failure (other 4xx, authentication), after
   ``max_attempts`` or after ``give_up_after``, makes it a dead letter with the reason.
   Dead letters can be re-sent (``monitor notifications resend ID``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from monitor import logs
from monitor.clock import Clock
from monitor.errors import DeliveryError
from monitor.logs import get_logger
from monitor.notify.channels import Channel, kind_of
from monitor.notify.config import RetryPolicy
from monitor.notify.metrics import NotifyMetrics
from monitor.notify.notification import Notification
from monitor.retry import TokenBucket, backoff
from monitor.store import describe_error
from monitor.store.notify import NotifyStore, OutboxItem

log = get_logger(__name__)
IDLE_POLL = 1.0  # seconds a worker sleeps when its lane has nothing due


class Enqueued:
    """The notifications this process committed to the outbox, by row id, as it built
    them: the dispatcher sends one of these rather than decoding its payload again (a
    message of a whole group's alerts is most of a delivery's time at 100,000 alerts).

    Bounded: an entry goes when its message is delivered or dead, when a newer message
    for the same lane and group is added (the older one is superseded, or already being
    sent), and the oldest go beyond ``capacity``. A message not held here (another
    replica's, one from before a restart, one evicted) is decoded from the store. The
    notifications are shared, never changed (frozen, and channels render copies).
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._by_id: OrderedDict[int, Notification] = OrderedDict()
        self._latest: dict[tuple[str, str, str], int] = {}  # (lane, group) → newest id

    def add(self, item_id: int, integration: str, notification: Notification) -> None:
        """Hold ``notification`` as outbox row ``item_id`` (committed) of ``integration``."""
        key = (notification.receiver, integration, notification.group_key)
        with self._lock:
            older = self._latest.get(key)
            if older is not None:
                self._by_id.pop(older, None)
            self._latest[key] = item_id
            self._by_id[item_id] = notification
            while len(self._by_id) > self.capacity:
                self._by_id.popitem(last=False)

    def get(self, item_id: int) -> Notification | None:
        """Return the notification of outbox row ``item_id`` if held, else None."""
        with self._lock:
            return self._by_id.get(item_id)

    def drop(self, item_id: int) -> None:
        """Forget outbox row ``item_id`` (delivered or dead)."""
        with self._lock:
            self._by_id.pop(item_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)


@dataclass(frozen=True)
class Lane:
    """One integration of one receiver, with its channel and rate limiter."""

    receiver: str
    integration: str
    channel: Channel
    limiter: TokenBucket | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.receiver, self.integration


@dataclass(frozen=True)
class Outcome:
    """What happened to one outbox message in one attempt."""

    item_id: int
    receiver: str
    integration: str
    outcome: str  # delivered | failed | dead | skipped
    detail: str = ""
    next_attempt_at: datetime | None = None


class Dispatcher:
    """Sends due outbox messages, lane by lane."""

    def __init__(self, store: NotifyStore, lanes: Mapping[tuple[str, str], Lane],
                 policy: RetryPolicy, clock: Clock, metrics: NotifyMetrics, owner: str, *,
                 rng: random.Random | None = None, enqueued: Enqueued | None = None) -> None:
        self.store = store
        self.enqueued = enqueued if enqueued is not None else Enqueued()
        self.lanes = dict(lanes)
        self.policy = policy
        self.clock = clock
        self.metrics = metrics
        self.owner = owner
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not security)
        self._stop = threading.Event()
        self._wake: dict[tuple[str, str], threading.Event] = {k: threading.Event()
                                                               for k in self.lanes}
        self._threads: list[threading.Thread] = []

    # --- one message -----------------------------------------------------------------

    def send(self, item: OutboxItem, now: datetime | None = None) -> Outcome:
        """Attempt ``item`` (already leased to this process); record and return the outcome.

        ``now`` fixes the time used for the records (default: the clock after the send).
        """
        lane = self.lanes.get(item.lane)
        kind = kind_of(item.integration)
        if lane is None:
            return self._dead(item, kind, f"receiver {item.receiver!r} has no integration "
                              f"{item.integration!r} any more; fix the config, then resend")
        notification = self.enqueued.get(item.id)
        if notification is None:
            try:
                notification = Notification.from_json(item.payload)
            except (ValueError, KeyError, TypeError) as exc:
                return self._dead(item, kind, f"the stored message cannot be read: {exc}")
        if lane.limiter is not None and self._wait_for(lane.limiter) and \
                not self.store.extend_lease(item.id, self.owner, now or self.clock.now(),
                                            self.policy.lease):
            # The wait outlasted the lease: another replica may be sending it already.
            log.warning("notification left to another replica: its lease ran out while "
                        "rate-limited", receiver=item.receiver, integration=item.integration,
                        id=item.id)
            return Outcome(item.id, item.receiver, item.integration, "skipped",
                           "lease ran out while rate-limited")
        try:
            result = lane.channel.send(notification)
        except DeliveryError as exc:
            return self._failed(item, kind, str(exc), exc.retryable, exc.retry_after, now)
        except Exception as exc:  # a bug in a channel must not stop the lane
            log.exception("channel crashed; will retry", receiver=item.receiver,
                          integration=item.integration)
            return self._failed(item, kind, logs.redact(f"{type(exc).__name__}: {exc}"),
                                True, None, now)
        done = now or self.clock.now()
        self.store.mark_delivered(item.id, done, result.detail)
        self.enqueued.drop(item.id)
        self.metrics.notifications.labels(item.receiver, kind, result.outcome).inc()
        if result.outcome == "delivered" and item.earliest_fired_at is not None:
            self.metrics.latency.labels(item.receiver, kind).observe(
                max(0.0, (done - item.earliest_fired_at).total_seconds()))
        log.info("notification sent" if result.outcome == "delivered"
                 else "notification skipped", receiver=item.receiver,
                 integration=item.integration, id=item.id, attempt=item.attempts,
                 detail=result.detail)
        return Outcome(item.id, item.receiver, item.integration, result.outcome, result.detail)

    def _wait_for(self, limiter: TokenBucket) -> bool:
        """Wait for a token; return True when that took any time."""
        waited = False
        while not self._stop.is_set():
            delay = limiter.take()
            if delay <= 0:
                return waited
            waited = True
            self._stop.wait(delay)
        return waited

    def _failed(self, item: OutboxItem, kind: str, error: str, retryable: bool,
                retry_after: float | None, now: datetime | None) -> Outcome:
        now = now or self.clock.now()
        if not retryable:
            return self._dead(item, kind, f"permanent failure: {error}")
        if item.attempts >= self.policy.max_attempts:
            return self._dead(item, kind, f"gave up after {item.attempts} attempts: {error}")
        if (now - item.created_at).total_seconds() >= self.policy.give_up_after:
            return self._dead(item, kind, f"gave up after {item.attempts} attempts over "
                              f"{self.policy.give_up_after:g}s: {error}")
        policy = self.policy
        # A Retry-After is honoured exactly, but never past give_up_after: a receiver
        # asking for years would otherwise hold the message (or overflow the date).
        delay = min(retry_after, policy.give_up_after) if retry_after is not None else \
            backoff(item.attempts, policy.initial_backoff, policy.max_backoff,
                    multiplier=policy.multiplier, jitter=policy.jitter, rng=self.rng)
        next_at = now + timedelta(seconds=delay)
        self.store.mark_retry(item.id, next_at, error)
        self.metrics.notifications.labels(item.receiver, kind, "failed").inc()
        log.warning("notification failed; will retry", receiver=item.receiver,
                    integration=item.integration, id=item.id, attempt=item.attempts,
                    retry_in=round(delay, 3), error=error)
        return Outcome(item.id, item.receiver, item.integration, "failed", error, next_at)

    def _dead(self, item: OutboxItem, kind: str, reason: str) -> Outcome:
        self.store.mark_dead(item.id, reason)
        self.enqueued.drop(item.id)
        self.metrics.notifications.labels(item.receiver, kind, "dead").inc()
        log.error("notification is a dead letter", receiver=item.receiver,
                  integration=item.integration, id=item.id, reason=reason)
        return Outcome(item.id, item.receiver, item.integration, "dead", reason)

    # --- a lane ----------------------------------------------------------------------

    @property
    def batch(self) -> int:
        """How many messages one lease may cover: all of them must be sent, each within
        ``timeout``, before the lease runs out."""
        return max(1, int(self.policy.lease // self.policy.timeout) - 1)

    def drain(self, key: tuple[str, str], now: datetime | None = None,
              limit: int = 100_000) -> list[Outcome]:
        """Send the lane's due messages, oldest first, until none is due; return outcomes.

        ``now`` fixes the time (tests, replays); by default the clock is read each time.
        """
        outcomes: list[Outcome] = []
        while len(outcomes) < limit and not self._stop.is_set():
            items = self.store.claim_due(key[0], key[1], self.owner, now or self.clock.now(),
                                         self.policy.lease, limit=self.batch)
            if not items:
                break
            for item in items:
                if self._stop.is_set():
                    break  # the rest of the batch is taken again when its lease ends
                outcomes.append(self.send(item, now))
        return outcomes

    def run_once(self, now: datetime | None = None) -> list[Outcome]:
        """Drain every lane with due messages, lanes in parallel; return all outcomes.

        Messages for receivers that are no longer configured become dead letters.
        """
        due = self.store.due_lanes(now or self.clock.now())
        unknown = [k for k in due if k not in self.lanes]
        outcomes: list[Outcome] = []
        for key in unknown:
            outcomes.extend(self._drain_unknown(key, now))
        known = [k for k in due if k in self.lanes]
        if len(known) <= 1:
            for key in known:
                outcomes.extend(self.drain(key, now))
            return outcomes
        with ThreadPoolExecutor(max_workers=min(16, len(known)),
                                thread_name_prefix="notify-lane") as pool:
            for result in pool.map(lambda k: self.drain(k, now), known):
                outcomes.extend(result)
        return outcomes

    def _drain_unknown(self, key: tuple[str, str], now: datetime | None) -> list[Outcome]:
        outcomes = []
        for item in self.store.claim_due(key[0], key[1], self.owner, now or self.clock.now(),
                                         self.policy.lease, limit=1000):
            outcomes.append(self.send(item, now))
        return outcomes

    # --- background workers ----------------------------------------------------------

    def start(self) -> None:
        """Start one worker thread per lane (idempotent)."""
        if self._threads:
            return
        for key in self.lanes:
            thread = threading.Thread(target=self._work, args=(key,), daemon=True,
                                      name=f"notify:{key[0]}/{key[1]}")
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """Tell every worker to look for due messages now."""
        for event in self._wake.values():
            event.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers; a send in flight finishes (or its lease runs out)."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for lane in self.lanes.values():
            lane.channel.close()

    def _work(self, key: tuple[str, str]) -> None:
        wake = self._wake[key]
        while not self._stop.is_set():
            wait = IDLE_POLL
            try:
                self.drain(key)
                next_at = self.store.next_attempt_at(*key)
                if next_at is not None:
                    wait = min(IDLE_POLL, max(0.0, (next_at - self.clock.now())
                                              .total_seconds()))
            except SQLAlchemyError as exc:
                self.metrics.errors.labels("outbox").inc()
                log.error("outbox unreachable; retrying", receiver=key[0],
                          integration=key[1],
                          error=logs.redact(describe_error(exc) or str(exc)))
                wait = 5.0
            except Exception:  # a bug must not end the lane's worker for good
                self.metrics.errors.labels("outbox").inc()
                log.exception("lane worker failed; retrying", receiver=key[0],
                              integration=key[1])
                wait = 5.0
            wake.wait(max(0.1, wait))
            wake.clear()
