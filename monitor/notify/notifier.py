"""The notifier: claims the engine's transitions, runs the pipeline, fills the outbox and
delivers it.

    transitions (store) ──claim──▶ notifier's alerts ──pipeline──▶ outbox + log ──▶ lanes

:meth:`Notifier.process_transitions` claims every unclaimed transition, updates the
notifier's view of each alert, runs the pipeline and commits its messages and
notification-log entries with the last claim. More transitions than one claim holds
(``CLAIM_BATCH``) are claimed in several transactions, each saving its alerts, and the
pipeline runs once, over all of them: the transitions of one cycle reach a new group's
first message together. A crash before a commit leaves those transitions unclaimed for
the next run; a crash after a claim that ran no pipeline leaves its alerts in the
notifier's table, which a new process's first run (over every group) routes; a crash
after the last commit leaves messages in the outbox for the dispatcher. :meth:`flush`
runs the pipeline without claiming (group timers, silences that ended),
:meth:`dispatch` delivers what is due.
"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError

from monitor.clock import Clock
from monitor.errors import DeliveryError
from monitor.logs import get_logger
from monitor.matchers import AnyOf
from monitor.model import AlertEvent
from monitor.notify.channels import CHANNELS, Channel, Message, build_channels, kind_of
from monitor.notify.config import NotifyConfig, ReceiverConfig
from monitor.notify.digest import StatusProvider, build_digest, encode, meta_key
from monitor.notify.dispatcher import Dispatcher, Enqueued, Lane, Outcome
from monitor.notify.inhibit import rules_from_config
from monitor.notify.metrics import NotifyMetrics
from monitor.notify.notification import (
    FIRING,
    Notification,
    NotifyAlert,
    SendResult,
    sample_alerts,
)
from monitor.notify.pipeline import (
    Flow,
    PipelineState,
    Router,
    Suppression,
    build_pipeline,
    new_message_id,
    suppression,
)
from monitor.notify.routing import Route, build_tree
from monitor.notify.scope import GroupIndex
from monitor.notify.silences import (
    Silence,
    SilenceSpec,
    expire,
    extend,
    new_silence,
    outdated,
)
from monitor.notify.timeintervals import any_active
from monitor.store import Store, describe_error
from monitor.store.alerts import Saved
from monitor.store.notify import NewMessage, Notified, NotifyTx, TransitionEvent

log = get_logger(__name__)
MAX_IDLE_FLUSH = 30.0  # look at least this often (silences end, time intervals)
PRUNE_EVERY = 3600.0  # forget history older than notify.history_retention this often
RUN_KEY = "notify:last_run"  # monitor_meta: who ran the pipeline last
CLAIM_BATCH = 100_000  # transitions claimed per transaction: bounds the memory of a claim


@dataclass(frozen=True)
class FlushResult:
    """What one pipeline run did."""

    claimed: int = 0
    groups_sent: int = 0
    messages: int = 0
    removed: int = 0
    next_due: datetime | None = None
    ran: bool = True
    trace: tuple[str, ...] = field(default_factory=tuple)
    # The messages committed, as built: (outbox row id, integration, notification).
    enqueued: tuple[tuple[int, str, Notification], ...] = field(default=(), repr=False,
                                                                 compare=False)


def apply_transitions(starts: Mapping[str, datetime], events: Sequence[TransitionEvent]
                      ) -> dict[str, NotifyAlert]:
    """Return the alerts changed by ``events`` (oldest first), keyed by alert id;
    ``starts`` holds when each alert the notifier tracks started (at least those the
    events resolve: see :func:`resolving`).

    A transition to firing starts the alert; one from firing to anything else resolves
    it, keeping when it started and taking the value *at resolution*. Other
    transitions (pending, inactive) are not notified.
    """
    changed: dict[str, NotifyAlert] = {}
    for event in events:
        if event.to_state == FIRING:
            changed[event.alert_id] = NotifyAlert(
                alert_id=event.alert_id, rule=event.rule, labels=event.labels,
                annotations=event.annotations, status=FIRING, value=event.value,
                explanation=event.explanation, starts_at=event.at, ends_at=None,
                updated_at=event.at)
        elif event.from_state == FIRING:
            known = changed.get(event.alert_id)
            started = known.starts_at if known is not None else \
                starts.get(event.alert_id, event.at)
            changed[event.alert_id] = NotifyAlert(
                alert_id=event.alert_id, rule=event.rule, labels=event.labels,
                annotations=event.annotations, status="resolved", value=event.value,
                explanation=event.explanation, starts_at=started,
                ends_at=event.at, updated_at=event.at)
    return changed


def claimed_rows(events: Sequence[TransitionEvent]) -> dict[str, int]:
    """Return the transition row each alert :func:`apply_transitions` changes was made
    from (the last of ``events`` that fires or resolves it): what the store copies it
    from (``NotifyTx.save_claimed``)."""
    return {e.alert_id: e.id for e in events if e.to_state == FIRING or e.from_state == FIRING}


def resolving(events: Sequence[TransitionEvent]) -> set[str]:
    """Return the alerts ``events`` resolve without firing them first: those whose start
    :func:`apply_transitions` must be told."""
    fired: set[str] = set()
    out: set[str] = set()
    for event in events:
        if event.to_state == FIRING:
            fired.add(event.alert_id)
        elif event.from_state == FIRING and event.alert_id not in fired:
            out.add(event.alert_id)
    return out


def default_instance() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Notifier:
    """The notification subsystem of one process."""

    def __init__(self, store: Store, config: NotifyConfig, clock: Clock,
                 registry: CollectorRegistry, *, instance: str = "", external_url: str = "",
                 status_provider: StatusProvider | None = None,
                 rng: random.Random | None = None,
                 new_id: Callable[[], str] = new_message_id,
                 owns_digest: Callable[[str], bool] | None = None,
                 claim_batch: int = CLAIM_BATCH) -> None:
        self.store = store
        self.claim_batch = claim_batch  # transitions claimed per transaction
        self.notify_store = store.notify
        # On a cluster every replica schedules the digests and one sends each.
        self.owns_digest = owns_digest
        self.clock = clock
        self.metrics = NotifyMetrics(registry)
        self.instance = instance or default_instance()
        self.external_url = external_url
        self.status_provider = status_provider
        self.rng = rng or random.Random()  # noqa: S311 (jitter only)
        self.new_id = new_id
        self._lock = threading.RLock()
        self._next_due: datetime | None = None
        self._last_run: datetime | None = None
        self._force = True
        self._pruned_at: datetime | None = None
        self._scheduler: Any = None
        self._started = False
        self.config = config
        # What this process enqueued, for its dispatchers (kept across reloads).
        self.enqueued = Enqueued()
        self.dispatcher = self._dispatcher(config)
        self._index = GroupIndex()  # which groups the next run must look at
        self._live: frozenset[str] = frozenset()  # silences muting at the last run
        self._in_force: tuple[object, ...] = ()  # time intervals at the last run
        self._run_mark: str | None = None  # this process's last run, as stored
        self._tree: tuple[NotifyConfig, Router] | None = None
        self._sources: tuple[NotifyConfig, AnyOf] | None = None
        # The notifier's alerts (its table) as the last run of this process left them:
        # a run over some groups takes its alerts from here, not from the table. Valid
        # while no other process ran the pipeline since (such a run is whole: ``_whole``).
        self._held: dict[str, NotifyAlert] | None = None
        # Alerts changed by transitions claimed and committed, that no pipeline run has
        # routed yet: the earlier batches of a claim too large for one transaction (or
        # of one whose run failed). The next run routes them with its own.
        self._unrouted: dict[str, NotifyAlert] = {}

    # --- configuration ---------------------------------------------------------------

    def _dispatcher(self, config: NotifyConfig) -> Dispatcher:
        lanes: dict[tuple[str, str], Lane] = {}
        for receiver in config.receivers:
            limiter_cfg = receiver.rate_limit
            for integration, channel in self.channels(receiver).items():
                limiter = limiter_cfg.bucket() if limiter_cfg is not None else None
                lanes[(receiver.name, integration)] = Lane(receiver.name, integration,
                                                           channel, limiter)
        self.metrics.known_lanes(lanes)
        return Dispatcher(self.notify_store, lanes, config.retry, self.clock, self.metrics,
                          self.instance, rng=self.rng, enqueued=self.enqueued)

    def channels(self, receiver: ReceiverConfig) -> dict[str, Channel]:
        """Return new channels for every integration of ``receiver``."""
        return build_channels(receiver, clock=self.clock, timeout=self.config.retry.timeout,
                              on_template_error=self._template_error)

    def _template_error(self, receiver: str, integration: str, error: str) -> None:
        self.metrics.template_errors.labels(receiver, integration.partition(":")[0]).inc()

    def reload(self, config: NotifyConfig) -> None:
        """Switch to ``config``: new routes and receivers apply to the next pipeline run;
        in-flight sends finish on the old channels."""
        with self._lock:
            old = self.dispatcher
            self.config = config
            self.dispatcher = self._dispatcher(config)
            self._force = True
            if self._started:
                old.stop(config.retry.timeout)
                self.dispatcher.start()
                if self._scheduler is not None:
                    self._schedule_digests(self._scheduler)
        log.info("notifier reloaded", receivers=len(config.receivers))

    # --- the pipeline ----------------------------------------------------------------

    def _now(self, now: datetime | None) -> datetime:
        return now if now is not None else self.clock.now()

    def process_transitions(self, now: datetime | None = None, saved: Saved | None = None
                            ) -> FlushResult:
        """Claim new transitions and, when any arrived or a group timer is due, run the
        pipeline once over all of them. Returns what it did.

        The claim takes one transaction per ``claim_batch`` transitions (bounding the
        memory of each); a full batch commits its claim and the notifier's alerts, and
        the next one claims on. The last batch runs the pipeline over the alerts of every
        batch, so the transitions of one cycle are routed together: a group gets them in
        one message, not its first batch's now and the rest a ``group_interval`` later.

        ``saved``: what this process's rule service just wrote. The claim is made in the
        store as always (replicas stay exactly-once), but a claimed row among those is
        taken from memory instead of being decoded again."""
        now = self._now(now)
        claimed = 0
        while True:
            result = self._process_batch(now, saved)
            claimed += result.claimed
            if result.claimed < self.claim_batch:
                return replace(result, claimed=claimed)

    def _process_batch(self, now: datetime, saved: Saved | None = None) -> FlushResult:
        """Claim one batch; run the pipeline unless the batch was full (see
        :meth:`process_transitions`)."""
        with self._lock:
            claimed, changed, result = self._claim_and_run(now, saved)
            if claimed >= self.claim_batch:  # committed: the next batch routes them
                self._unrouted.update(changed)
            elif result is not None:
                self._unrouted = {}  # routed by this run, which committed
        if result is None:
            return FlushResult(claimed=claimed, next_due=self._next_due, ran=False)
        result = replace(result, claimed=claimed)
        self._after(result)
        return result

    def _claim_and_run(self, now: datetime, saved: Saved | None
                       ) -> tuple[int, dict[str, NotifyAlert], FlushResult | None]:
        """One transaction: claim a batch, save the alerts it changes and, unless the
        batch was full, run the pipeline over them and the unrouted ones when any
        changed or a timer is due. Return how many transitions it claimed, the alerts
        they changed and what the run did (None: no run)."""
        with self.notify_store.transaction() as tx:
            events = tx.claim_transitions(self.instance, now, self.claim_batch,
                                          saved.transitions if saved is not None else None)
            notifiable = [e for e in events if e.notifiable]
            changed: dict[str, NotifyAlert] = {}
            if notifiable:
                changed = apply_transitions(tx.alert_starts(resolving(notifiable)),
                                            notifiable)
                tx.save_claimed(changed, claimed_rows(notifiable))
            claimed, any_notifiable = len(events), bool(notifiable)
            # The claimed rows are in ``changed`` now: not held through the run (at 100k
            # series, 157,000 transition events, 24 MB at the cycle's peak).
            del events, notifiable
            if claimed:
                self.metrics.transitions.inc(claimed)
            if claimed >= self.claim_batch or \
                    (not any_notifiable and not self._unrouted and not self._due(now)):
                return claimed, changed, None
            return claimed, changed, self._run(tx, now, {**self._unrouted, **changed})

    def flush(self, now: datetime | None = None) -> FlushResult:
        """Run the pipeline now (group timers, repeats, ended silences); commit its output."""
        now = self._now(now)
        with self._lock, self.notify_store.transaction() as tx:
            result = self._run(tx, now)
        self._after(result)
        return result

    def _due(self, now: datetime) -> bool:
        if self._force or self._last_run is None:
            return True
        if self._next_due is not None and now >= self._next_due:
            return True
        return (now - self._last_run).total_seconds() >= MAX_IDLE_FLUSH

    def _run(self, tx: NotifyTx, now: datetime,
             changed: Mapping[str, NotifyAlert] | None = None) -> FlushResult:
        """Run the pipeline over every group (``changed`` None, or whenever
        :meth:`_whole` says so), else over the groups ``changed`` alerts belong to and
        those due (see ``notify/scope.py``); commit its output."""
        # A KPI silence whose next period arrived ends first (the alerts that changed and
        # the engine's records say which periods arrived); the run then sees it ended.
        silences = self._end_outdated(tx, tx.silences(), list((changed or {}).values()), now)
        whole = self._whole(tx, silences, now, changed or {}) or changed is None
        # What the table holds, as this process left it: kept only from the end of a run
        # to the start of the next (a run that fails part-way reads the table again).
        held, self._held = self._held, None
        if whole:
            # The alerts saved a moment ago in this transaction are not read back.
            fresh = changed or {}
            alerts = [*tx.load_alerts(skip=fresh), *fresh.values()]
            entries = tx.log_entries()
            ids: set[str] = set()
            groups: set[tuple[str, str]] = set()
            held = {a.alert_id: a for a in alerts}
        else:
            assert changed is not None
            if held is not None:
                held.update(changed)
            router = self._router()
            ids, groups = self._index.scope(
                {a.alert_id: [ident for _r, ident, _l in router.route(a.labels)
                              if ident is not None] for a in changed.values()}, now)
            if not ids and not groups:
                self._mark_run(tx, now)
                self._held = held
                return FlushResult(next_due=self._next_due, ran=False)
            # The inhibiting alerts are read too: they may mute alerts of these groups.
            wanted = ids | self._index.sources
            alerts = [held[i] for i in wanted if i in held] if held is not None \
                else tx.load_alerts(wanted)
            entries = tx.log_entries(groups)
        state = PipelineState(silences=silences, log=entries,
                              scope=None if whole else frozenset(groups))
        pipeline = build_pipeline(self.config, state, external_url=self.external_url,
                                  new_id=self.new_id)
        flow = pipeline.run(alerts, now)
        if not whole:  # an alert outside the scope may be needed by a group outside it
            flow = replace(flow, removable=tuple(a for a in flow.removable if a in ids))
        built = self._messages(flow)
        messages = [message for message, _notification in built]
        tx.write_log([o.entry for o in flow.outgoing])
        rows = tx.enqueue(messages, now)
        tx.record_history(self._history(flow, built, changed or {}, now))
        tx.delete_alerts(flow.removable)
        retention = self.config.resolved_retention
        if whole:
            self._index.rebuild(flow, now, retention)
        else:
            self._index.update(flow, ids, groups, now, retention)
        self._index.note_sources(flow, self._inhibit_sources())
        self._force = False
        self._mark_run(tx, now)
        if held is not None:
            for alert_id in flow.removable:
                held.pop(alert_id, None)
        self._held = held
        self.metrics.flushes.inc()
        return FlushResult(groups_sent=sum(1 for o in flow.outgoing if o.notification),
                           messages=len(messages), removed=len(flow.removable),
                           next_due=flow.next_due, trace=flow.trace,
                           enqueued=tuple((i, m.integration, n) for i, (m, n)
                                          in zip(rows, built, strict=True)))

    def _end_outdated(self, tx: NotifyTx, silences: list[Silence],
                      alerts: Sequence[NotifyAlert], now: datetime) -> list[Silence]:
        """End the KPI silences whose next period's data arrived — as the notifier's alerts
        or the engine's latest evaluation say it — and return the silences."""
        if not any(s.until_period for s in silences):
            return silences
        seen: list[tuple[Mapping[str, str], str]] = [
            (a.labels, a.annotations.get("period_id", "")) for a in alerts]
        ended = [expire(s, now) for s in outdated(silences, [*seen, *tx.alert_periods()], now)]
        if not ended:
            return silences
        tx.save_silences(ended)
        for silence in ended:
            log.info("silence ended: a newer period's data arrived", id=silence.id,
                     until_period=silence.until_period)
        by_id = {s.id: s for s in ended}
        return [by_id.get(s.id, s) for s in silences]

    def _history(self, flow: Flow, built: Sequence[tuple[NewMessage, Notification]],
                 fresh: Mapping[str, NotifyAlert], now: datetime
                 ) -> list[AlertEvent | Notified]:
        """Return the history of this run: every alert that a message sent carries (a
        ``Notified`` per notification, which the store writes from its copy of the
        alerts), and every new transition a silence or an inhibition kept from its
        receivers (each logged).

        An alert is notified when one of its receiver's integrations sends it: a group
        whose every integration sends only its first alerts (a webhook's ``max_alerts``)
        notifies those, and the others, counted in the payload's ``truncatedAlerts``,
        get no "notified" event — no message named them."""
        carried: dict[str, int] = {}  # message id: the most alerts an integration sends
        for _message, kept in built:
            carried[kept.message_id] = max(carried.get(kept.message_id, 0), len(kept.alerts))
        events: list[AlertEvent | Notified] = []
        for outgoing in flow.outgoing:
            notification = outgoing.notification
            if notification is None:
                continue
            sent = carried.get(notification.message_id, len(notification.alerts))
            if sent < len(notification.alerts):
                notification = notification.first(sent)
            details = {status: {"receiver": notification.receiver, "status": status,
                                "message_id": notification.message_id}
                       for status in {alert.status for alert in notification.alerts}}
            events.append(Notified(notification.alerts, details, now))
        for alert_id, alert in fresh.items():
            reason = flow.muted.get(alert_id)
            if reason is None:
                continue
            detail = {"status": alert.status, "reason": reason,
                      "silenced_by": list(flow.silenced_by.get(alert_id, ())),
                      "inhibited_by": list(flow.inhibited_by.get(alert_id, ()))}
            self.metrics.muted.labels("silenced" if detail["silenced_by"] else "inhibited").inc()
            log.info("notification muted", alert=alert.name, alert_id=alert_id,
                     status=alert.status, reason=reason,
                     silenced_by=",".join(detail["silenced_by"]),
                     inhibited_by=",".join(detail["inhibited_by"]))
            events.append(alert.event("muted", now, detail))
        return events

    def prune_history(self, now: datetime | None = None) -> int:
        """Forget what is older than ``notify.history_retention``: history events,
        messages delivered or superseded, claimed transitions (``NotifyStore.prune``);
        return how many events."""
        now = self._now(now)
        before = now - timedelta(seconds=self.config.history_retention)
        removed = self.store.history.prune(before)
        messages, transitions = self.notify_store.prune(before)
        self._pruned_at = now
        if removed or messages or transitions:
            log.info("alert history pruned", events=removed, messages=messages,
                     transitions=transitions, retention=self.config.history_retention)
        return removed

    def suppressed(self, alerts: Sequence[NotifyAlert]) -> dict[str, Suppression]:
        """Return which of ``alerts`` a silence or an inhibition mutes now, and by what."""
        return suppression(self.config, self.notify_store.silences(), alerts,
                           self.clock.now())
    def _whole(self, tx: NotifyTx, silences: Sequence[Silence], now: datetime,
               changed: Mapping[str, NotifyAlert]) -> bool:
        """True when the next run must cover every group: nothing is known yet, a
        silence, reload or clock jump asked for it, an alert that may inhibit others
        changed (inhibition looks across groups), the silences muting now or the time
        intervals in force changed, or another process ran the pipeline since this one
        did."""
        live = frozenset(s.id for s in silences if s.mutes_now(now))
        tree, _receivers = self._routes()
        intervals = {t.name: t for t in self.config.time_intervals}
        in_force = tuple(
            (any_active(r.options.mute_time_intervals, intervals, now),
             any_active(r.options.active_time_intervals, intervals, now))
            for r in tree.walk())
        sources = self._inhibit_sources()
        inhibiting = any(sources(a.labels) for a in changed.values()) \
            if changed and sources else False
        whole = (self._force or not self._index.valid or inhibiting
                 or live != self._live or in_force != self._in_force
                 or tx.get_meta(RUN_KEY) != self._run_mark)
        self._live, self._in_force = live, in_force
        return whole

    def _mark_run(self, tx: NotifyTx, now: datetime) -> None:
        """Record this run, so another process's notifier knows its memory is stale."""
        self._run_mark = f"{self.instance} {now.isoformat()} {uuid.uuid4().hex}"
        tx.set_meta(RUN_KEY, self._run_mark, now)
        self._last_run = now
        dues = list(self._index.due.values()) + list(self._index.expiry.values())
        self._next_due = min(dues) if dues else None

    def _inhibit_sources(self) -> AnyOf:
        """Whether an alert's labels match an inhibit rule's source matchers (of the
        config in force, remembered per value of the labels they read)."""
        if self._sources is None or self._sources[0] is not self.config:
            self._sources = (self.config,
                             AnyOf([rule.source for rule in rules_from_config(self.config)]))
        return self._sources[1]

    def _routes(self) -> tuple[Route, set[str]]:
        router = self._router()
        return router.tree, set(router.receivers)

    def _router(self) -> Router:
        """The routing tree of the config in force, remembering where labels go."""
        if self._tree is None or self._tree[0] is not self.config:
            self._tree = (self.config, Router(build_tree(self.config.route),
                                              {r.name for r in self.config.receivers}))
        return self._tree[1]

    def _messages(self, flow: Flow) -> list[tuple[NewMessage, Notification]]:
        """Return the outbox rows of the run's notifications, each with its notification."""
        receivers = {r.name: r for r in self.config.receivers}
        out: list[tuple[NewMessage, Notification]] = []
        for outgoing in flow.outgoing:
            notification = outgoing.notification
            if notification is None:
                continue
            receiver = receivers[notification.receiver]
            # Each integration's message holds the alerts it can send (a webhook's
            # max_alerts); integrations sending as many share one payload.
            payloads: dict[int, tuple[str, Notification]] = {}
            for integration, config in receiver.integrations():
                limit = CHANNELS[kind_of(integration)].alerts_sent(config)
                made = payloads.get(limit)
                if made is None:
                    kept = notification.first(limit)
                    made = payloads[limit] = (kept.to_json(), kept)
                out.append((NewMessage(receiver.name, integration, notification.group_key,
                                       made[0], outgoing.first_fired_at), made[1]))
        return out

    def _after(self, result: FlushResult) -> None:
        """After a run's commit: hold what it enqueued for delivery, wake the lanes."""
        for item_id, integration, notification in result.enqueued:
            self.enqueued.add(item_id, integration, notification)
        if result.messages:
            log.info("notifications queued", groups=result.groups_sent,
                     messages=result.messages)
            self.dispatcher.wake()
        self.refresh_gauges()

    def refresh_gauges(self) -> None:
        """Update the outbox-depth and dead-letter gauges from the store (left as they
        were, with one log line, when the store cannot be read)."""
        try:
            counts = self.notify_store.counts()
        except SQLAlchemyError as exc:
            self.metrics.errors.labels("outbox").inc()
            log.warning("cannot read the outbox depth; the gauges keep their last values",
                        error=describe_error(exc) or str(exc))
            return
        self.metrics.set_counts(counts)

    # --- delivery --------------------------------------------------------------------

    def dispatch(self, now: datetime | None = None) -> list[Outcome]:
        """Deliver every message due at ``now`` (default: the clock), lanes in parallel;
        return the outcomes."""
        outcomes = self.dispatcher.run_once(now)
        self.refresh_gauges()
        return outcomes

    def resend(self, item_id: int) -> bool:
        """Queue a dead letter again; return False when no message has that id."""
        item = self.notify_store.resend(item_id, self.clock.now())
        if item is not None:
            self.dispatcher.wake()
            self.refresh_gauges()
        return item is not None

    # --- digests ---------------------------------------------------------------------

    def run_digest(self, name: str, now: datetime | None = None) -> int:
        """Queue the digest ``name`` for its receivers; return how many messages.

        Nothing is queued when nothing changed (unless ``send_empty``), when no status
        provider was given, or on a replica that does not own the digest. The new
        snapshot is stored in the same transaction.
        """
        now = self._now(now)
        digest_config = next((d for d in self.config.digests if d.name == name), None)
        if digest_config is None or self.status_provider is None:
            return 0
        if self.owns_digest is not None and not self.owns_digest(name):
            return 0
        current = self.status_provider()
        with self._lock, self.notify_store.transaction() as tx:
            key = meta_key(name)
            digest = build_digest(name, digest_config.title, tx.get_meta(key), current)
            tx.set_meta(key, encode(current, now), now)
            if not digest.items and not digest_config.send_empty:
                return 0
            messages: list[NewMessage] = []
            for receiver_name in digest_config.receivers:
                receiver = self.config.receiver(receiver_name)
                if receiver is None:
                    continue
                message_id = self.new_id()
                notification = Notification(
                    kind="digest", receiver=receiver.name,
                    group_key=f"digest:{name}:{message_id}", group_labels={}, alerts=(),
                    created_at=now, message_id=message_id, thread_id=message_id,
                    external_url=self.external_url, digest=digest)
                payload = notification.to_json()
                messages.extend(NewMessage(receiver.name, integration, notification.group_key,
                                           payload)
                                for integration, _ in receiver.integrations())
            tx.enqueue(messages, now)
        log.info("digest queued", digest=name, changes=len(digest.items),
                 messages=len(messages))
        self.dispatcher.wake()
        return len(messages)

    # --- silences --------------------------------------------------------------------

    def silences(self) -> list[Silence]:
        """Return every silence, newest first (expired ones kept for audit)."""
        return self.notify_store.silences()

    def create_silence(self, spec: SilenceSpec) -> Silence:
        """Store a new silence and return it. Raises ValueError naming the bad field."""
        silence = new_silence(spec, self.clock.now())
        self.notify_store.save_silence(silence)
        self._force = True
        log.info("silence created", id=silence.id, by=silence.created_by,
                 matchers=",".join(str(m) for m in silence.matchers))
        return silence

    def extend_silence(self, silence_id: str, ends_at: datetime) -> Silence | None:
        """Make a silence last until ``ends_at``; return it, or None when no silence has
        that id. Raises ValueError when it has ended or the end is past."""
        silence = self.notify_store.silence(silence_id)
        if silence is None:
            return None
        longer = extend(silence, ends_at, self.clock.now())
        self.notify_store.save_silence(longer)
        self._force = True
        log.info("silence extended", id=silence_id, ends_at=longer.ends_at.isoformat())
        return longer

    def expire_silence(self, silence_id: str) -> Silence | None:
        """Expire a silence now; return it, or None when no silence has that id."""
        silence = self.notify_store.silence(silence_id)
        if silence is None:
            return None
        expired = expire(silence, self.clock.now())
        if expired is not silence:
            self.notify_store.save_silence(expired)
            log.info("silence expired", id=silence_id)
        self._force = True
        return expired

    # --- previews and tests ----------------------------------------------------------

    def preview(self, receiver_name: str, alerts: Sequence[NotifyAlert] | None = None,
                kind: str = "alerts") -> list[tuple[str, Message]]:
        """Return each integration's rendered message for ``alerts`` (sample ones if None).

        Raises KeyError when no receiver has that name.
        """
        receiver = self._receiver(receiver_name)
        notification = self.sample_notification(receiver, alerts, kind)
        return [(integration, channel.render(notification))
                for integration, channel in self.channels(receiver).items()]

    def test_receiver(self, receiver_name: str) -> list[tuple[str, SendResult | DeliveryError]]:
        """Send a test notification through every integration of a receiver, directly.

        Returns each integration's result or error. Raises KeyError for an unknown name.
        """
        receiver = self._receiver(receiver_name)
        notification = self.sample_notification(receiver, None, "test")
        results: list[tuple[str, SendResult | DeliveryError]] = []
        for integration, channel in self.channels(receiver).items():
            try:
                results.append((integration, channel.send(notification)))
            except DeliveryError as exc:
                results.append((integration, exc))
            finally:
                channel.close()
        return results

    def sample_notification(self, receiver: ReceiverConfig,
                            alerts: Sequence[NotifyAlert] | None, kind: str = "alerts"
                            ) -> Notification:
        """Return the notification a receiver would get for ``alerts`` (samples if None)."""
        now = self.clock.now()
        chosen = tuple(alerts) if alerts else tuple(sample_alerts(now))
        labels = {"alertname": chosen[0].name} if chosen else {}
        message_id = self.new_id()
        return Notification(kind=kind, receiver=receiver.name,
                            group_key=f'{{}}:{{alertname="{labels.get("alertname", "")}"}}',
                            group_labels=labels, alerts=chosen, created_at=now,
                            message_id=message_id, thread_id=message_id,
                            external_url=self.external_url)

    def _receiver(self, name: str) -> ReceiverConfig:
        receiver = self.config.receiver(name)
        if receiver is None:
            known = ", ".join(r.name for r in self.config.receivers) or "none configured"
            raise KeyError(f"no receiver named {name!r} (known: {known})")
        return receiver

    # --- lifecycle -------------------------------------------------------------------

    def recover(self) -> int:
        """On a SQLite store (one process), end leases a killed process left; return how
        many. On PostgreSQL, leases of other replicas are left to run out."""
        if not self.store.is_sqlite:
            return 0
        try:
            released = self.notify_store.release_leases(self.clock.now())
        except SQLAlchemyError as exc:  # busy or full store: the leases run out on their own
            self.metrics.errors.labels("outbox").inc()
            log.error("cannot take back the messages a previous process was sending; they "
                      "are sent once their lease (notify.retry.lease) runs out",
                      error=describe_error(exc) or str(exc))
            return 0
        if released:
            log.warning("took back messages a previous process was sending",
                        messages=released)
        return released

    def start(self) -> None:
        """Recover leases and start the delivery workers (idempotent)."""
        with self._lock:
            if self._started:
                return
            self.recover()
            self.dispatcher.start()
            self._started = True
            self.refresh_gauges()

    def schedule(self, scheduler: Any) -> None:
        """Add the notifier's jobs to an APScheduler scheduler and start delivering.

        Jobs: ``notify`` every ``poll_interval`` (claim transitions, run the pipeline
        when due) and one cron job per digest.
        """
        self._scheduler = scheduler
        scheduler.add_job(self.tick, "interval", seconds=self.config.poll_interval,
                          id="notify", replace_existing=True, max_instances=1,
                          coalesce=True, next_run_time=self.clock.now())
        self._schedule_digests(scheduler)
        self.start()

    def _schedule_digests(self, scheduler: Any) -> None:
        from apscheduler.triggers.cron import CronTrigger

        for job in list(scheduler.get_jobs()):
            if job.id.startswith("notify-digest:"):
                job.remove()
        for digest in self.config.digests:
            scheduler.add_job(self.run_digest, CronTrigger.from_crontab(
                digest.schedule, timezone=digest.timezone), args=[digest.name],
                id=f"notify-digest:{digest.name}", replace_existing=True)

    def tick(self) -> None:
        """The scheduled job: process transitions; never raises (one log line instead)."""
        try:
            self.process_transitions()
            now = self.clock.now()
            if self._pruned_at is None or (now - self._pruned_at).total_seconds() >= PRUNE_EVERY:
                self.prune_history(now)
        except Exception as exc:  # the loop must go on
            self.metrics.errors.labels("pipeline").inc()
            trouble = describe_error(exc)
            if trouble is not None:
                log.error("notifier run failed; will retry", error=trouble)
            else:
                log.exception("notifier run failed; will retry", error=str(exc))

    def clock_jumped(self, offset: float) -> None:
        """After the wall clock jumped by ``offset`` seconds: retries scheduled before a
        jump back would wait as long as the jump, so they become due now, and groups
        last notified "in the future" count as notified now (their timers then wait as
        configured). The pipeline runs at its next tick either way."""
        if offset < 0:
            moved, groups = self.notify_store.after_clock_jump_back(self.clock.now())
            if moved or groups:
                log.warning("timers set before the clock jumped back are due now",
                            messages=moved, groups=groups)
        self._force = True
        self.dispatcher.wake()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the delivery workers, letting sends in flight finish within ``timeout``."""
        with self._lock:
            self.dispatcher.stop(timeout)
            self._started = False

    def state(self) -> dict[str, Any]:
        """Return a small summary for status pages: queue depths and the next timer."""
        counts = self.notify_store.counts()
        return {
            "pending": sum(v for (_, _, s), v in counts.items() if s == "pending"),
            "dead": sum(v for (_, _, s), v in counts.items() if s == "dead"),
            "next_due": self._next_due.isoformat() if self._next_due else None,
        }


def load_alerts_file(text: str, now: datetime) -> list[NotifyAlert]:
    """Return alerts from JSON: one object or a list, each with ``labels`` and optionally
    ``annotations``, ``status``, ``value``, ``explanation``, ``starts_at``, ``ends_at``.

    Raises ValueError naming the item and field when the JSON does not describe alerts.
    """
    data = json.loads(text)
    items = data if isinstance(data, list) else [data]
    alerts = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
            raise ValueError(f"alert {i}: expected an object with a \"labels\" object")
        status = str(item.get("status", FIRING))
        if status not in (FIRING, "resolved"):
            raise ValueError(f"alert {i}: status must be firing or resolved, not {status!r}")
        labels = {str(k): str(v) for k, v in item["labels"].items()}
        starts = item.get("starts_at")
        ends = item.get("ends_at")
        alerts.append(NotifyAlert.from_dict({
            "alert_id": item.get("alert_id") or f"file-{i}",
            "rule": labels.get("alertname", "alert"), "labels": labels,
            "annotations": item.get("annotations", {}), "status": status,
            "value": item.get("value"), "explanation": item.get("explanation", ""),
            "starts_at": starts or (now - timedelta(hours=1)).isoformat(),
            "ends_at": ends or (now.isoformat() if status == "resolved" else None),
        }))
    return alerts
