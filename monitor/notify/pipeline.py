"""The notification pipeline: small pure stages from alerts to outbox messages.

    silence → inhibit → route & group → time intervals → dedup/repeat → messages → retention

Each stage is a pure function of the flow so far and ``now``; :func:`build_pipeline`
lists them, and reading it explains the product. The flow records why each alert or
group was held back (``trace``), so "why was nobody told?" has an answer.

The dedup decision is Alertmanager's, against the persisted notification log: a group
is sent when it has firing alerts the receiver has not been told about (after
``group_wait`` for a new group, ``group_interval`` after the last message otherwise),
when every alert resolved, when alerts resolved and the receiver wants resolutions, or
when ``repeat_interval`` has passed since the last message.

Muting (silences, inhibition) happens after grouping in effect: a muted alert still
belongs to its group, it is only left out of the message, and a group whose alerts are
all muted sends nothing (it does not announce a false resolution).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import attrgetter

from monitor.notify.config import NotifyConfig
from monitor.notify.inhibit import InhibitRule, inhibitors, rules_from_config
from monitor.notify.notification import Notification, NotifyAlert
from monitor.notify.routing import Route, build_tree, group_key, group_labels
from monitor.notify.silences import Silence, muting_all
from monitor.notify.timeintervals import TimeIntervalConfig, any_active


@dataclass(frozen=True)
class LogEntry:
    """What was last committed for a group to a receiver (the notification log)."""

    receiver: str
    group_key: str
    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: datetime
    thread_id: str = ""


@dataclass(frozen=True)
class Group:
    """Alerts that reached one route node with the same group labels, for one receiver."""

    receiver: str
    key: str
    route: Route
    labels: Mapping[str, str]
    alerts: tuple[NotifyAlert, ...]

    @property
    def ident(self) -> tuple[str, str]:
        return self.receiver, self.key


@dataclass(frozen=True)
class Decision:
    """Whether a group is sent now, why, and when to look at it again."""

    group: Group
    send: bool
    reason: str
    due_at: datetime | None = None
    visible: tuple[NotifyAlert, ...] = ()


@dataclass(frozen=True)
class Outgoing:
    """One message to commit to the outbox, and the log entry that records it.

    ``notification`` is None when nothing is left to send after ``send_resolved`` is
    applied; the log entry is still written, as Alertmanager does.
    """

    notification: Notification | None
    entry: LogEntry
    first_fired_at: datetime | None = None  # earliest newly notified firing alert


@dataclass(frozen=True)
class Flow:
    """Everything the stages know, passed from one to the next."""

    alerts: tuple[NotifyAlert, ...]
    muted: Mapping[str, str] = field(default_factory=dict)
    # Alertmanager's status.silencedBy / inhibitedBy: silence ids, inhibiting alert ids
    silenced_by: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    inhibited_by: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    groups: tuple[Group, ...] = ()
    held: Mapping[tuple[str, str], str] = field(default_factory=dict)
    decisions: tuple[Decision, ...] = ()
    outgoing: tuple[Outgoing, ...] = ()
    removable: tuple[str, ...] = ()
    trace: tuple[str, ...] = ()

    @property
    def next_due(self) -> datetime | None:
        """Return the earliest time a held-back group becomes due (None: nothing waits)."""
        times = [d.due_at for d in self.decisions if not d.send and d.due_at is not None]
        return min(times) if times else None


Stage = Callable[[Flow, datetime], Flow]


@dataclass(frozen=True)
class Pipeline:
    """Named stages applied in order."""

    stages: tuple[tuple[str, Stage], ...]

    def run(self, alerts: Sequence[NotifyAlert], now: datetime) -> Flow:
        """Return the flow after every stage has run on ``alerts`` at ``now``."""
        flow = Flow(alerts=tuple(alerts))
        for _name, stage in self.stages:
            flow = stage(flow, now)
        return flow

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.stages]


@dataclass(frozen=True)
class PipelineState:
    """The persisted facts the stages read: silences and the notification log."""

    silences: Sequence[Silence] = ()
    log: Mapping[tuple[str, str], LogEntry] = field(default_factory=dict)
    # The groups this run decides (None: every group). A run over some groups also
    # reads alerts of others (inhibiting sources); their groups are left alone.
    scope: frozenset[tuple[str, str]] | None = None


def new_message_id() -> str:
    return uuid.uuid4().hex


def build_pipeline(config: NotifyConfig, state: PipelineState, *, external_url: str = "",
                   new_id: Callable[[], str] = new_message_id) -> Pipeline:
    """Return the pipeline for ``config`` reading ``state``; see the module docstring."""
    receivers = {r.name: r for r in config.receivers}
    intervals = {t.name: t for t in config.time_intervals}
    send_resolved = {name: r.send_resolved for name, r in receivers.items()}
    return Pipeline((
        ("silence", silence_stage(state.silences)),
        ("inhibit", inhibit_stage(rules_from_config(config))),
        ("group", group_stage(build_tree(config.route), set(receivers), state.scope)),
        ("time_intervals", time_interval_stage(intervals)),
        ("dedup", dedup_stage(state.log, send_resolved)),
        ("messages", message_stage(state.log, send_resolved, external_url, new_id)),
        ("retention", retention_stage(state.log, config.resolved_retention)),
    ))


@dataclass(frozen=True)
class Suppression:
    """Why an alert is muted, as Alertmanager's API says it: the silences and the
    inhibiting alerts (both empty: the alert is active, not suppressed)."""

    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()


def suppression(config: NotifyConfig, silences: Sequence[Silence],
                alerts: Sequence[NotifyAlert], now: datetime) -> dict[str, Suppression]:
    """Return ``{alert_id: Suppression}`` for the suppressed ones of ``alerts``: the
    pipeline's own silence and inhibit stages, nothing re-derived."""
    flow = Flow(alerts=tuple(alerts))
    flow = silence_stage(silences)(flow, now)
    flow = inhibit_stage(rules_from_config(config))(flow, now)
    return {alert_id: Suppression(flow.silenced_by.get(alert_id, ()),
                                  flow.inhibited_by.get(alert_id, ()))
            for alert_id in flow.muted}


# --- the stages ------------------------------------------------------------------------


def silence_stage(silences: Sequence[Silence]) -> Stage:
    """Mark alerts an active silence mutes."""
    def stage(flow: Flow, now: datetime) -> Flow:
        live = [s for s in silences if s.mutes_now(now)]
        if not live:
            return flow
        muted = dict(flow.muted)
        silenced_by = dict(flow.silenced_by)
        trace = list(flow.trace)
        for alert in flow.alerts:
            found = muting_all(live, alert.labels, now, alert.annotations.get("period_id"))
            if not found:
                continue
            silenced_by[alert.alert_id] = tuple(s.id for s in found)
            silence = found[0]
            if alert.alert_id not in muted:
                muted[alert.alert_id] = f"silenced by {silence.id}"
                trace.append(f"{alert.alert_id}: silenced by {silence.id} "
                             f"({silence.describe()})")
        return replace(flow, muted=muted, silenced_by=silenced_by, trace=tuple(trace))
    return stage


def inhibit_stage(rules: Sequence[InhibitRule]) -> Stage:
    """Mark alerts a firing source alert inhibits (silenced sources still inhibit)."""
    def stage(flow: Flow, now: datetime) -> Flow:
        found = inhibitors(flow.alerts, rules)
        if not found:
            return flow
        muted = dict(flow.muted)
        inhibited_by = dict(flow.inhibited_by)
        trace = list(flow.trace)
        for alert_id, (reason, source) in found.items():
            inhibited_by[alert_id] = (source,)
            if alert_id not in muted:
                muted[alert_id] = reason
                trace.append(f"{alert_id}: {reason}")
        return replace(flow, muted=muted, inhibited_by=inhibited_by, trace=tuple(trace))
    return stage


def group_stage(tree: Route, receivers: set[str],
                scope: frozenset[tuple[str, str]] | None = None) -> Stage:
    """Route every alert through the tree and collect the groups (those in ``scope``
    when given), in a stable order."""
    def stage(flow: Flow, now: datetime) -> Flow:
        members: dict[tuple[str, str], list[NotifyAlert]] = {}
        meta: dict[tuple[str, str], tuple[Route, dict[str, str]]] = {}
        trace = list(flow.trace)
        router = Router(tree, receivers)
        for alert in flow.alerts:
            for route, ident, labels in router.route(alert.labels):
                if ident is None:
                    trace.append(f"{alert.alert_id}: route {route.key} has no receiver")
                    continue
                if scope is not None and ident not in scope:
                    continue
                members.setdefault(ident, []).append(alert)
                meta.setdefault(ident, (route, labels))
        groups = tuple(
            Group(receiver=ident[0], key=ident[1], route=meta[ident][0],
                  labels=meta[ident][1],
                  alerts=tuple(sorted(alerts, key=_START_ORDER)))
            for ident, alerts in sorted(members.items()))
        return replace(flow, groups=groups, trace=tuple(trace))
    return stage


Routed = list[tuple[Route, tuple[str, str] | None, dict[str, str]]]
_START_ORDER = attrgetter("starts_at", "alert_id")  # a group's alerts: oldest first


class Router:
    """``routed`` for one tree, remembered per value of the labels the tree reads (its
    matchers' and its ``group_by`` names): 100,000 alerts of a few rules take a few
    distinct paths, and an alert's path and groups are a function of those labels alone.
    A tree grouping by all labels (``...``) reads every label, and is not remembered."""

    def __init__(self, tree: Route, receivers: set[str]) -> None:
        self.tree = tree
        self.receivers = frozenset(receivers)
        nodes = tree.walk()
        self.names: tuple[str, ...] | None = None if any(
            r.options.group_by_all for r in nodes) else tuple(sorted(
                {m.name for r in nodes for m in r.matchers.matchers}
                | {name for r in nodes for name in r.options.group_by}))
        self.memo: dict[tuple[str | None, ...], Routed] = {}

    def route(self, labels: Mapping[str, str]) -> Routed:
        """Return ``routed(tree, receivers, labels)`` (shared: not to be changed)."""
        if self.names is None:
            return _routed(self.tree, self.receivers, labels)
        key = tuple(map(labels.get, self.names))
        found = self.memo.get(key)
        if found is None:
            if len(self.memo) >= 100_000:  # label values without end: start again
                self.memo.clear()
            found = self.memo[key] = _routed(self.tree, self.receivers, labels)
        return found


def routed(tree: Route, receivers: Set[str], labels: Mapping[str, str]) -> Routed:
    """Return each route ``labels`` match with the group they join there — (receiver,
    group key), None when the route's receiver is unknown — and the group's labels."""
    return _routed(tree, receivers, labels)


def _routed(tree: Route, receivers: Set[str], labels: Mapping[str, str]) -> Routed:
    out: Routed = []
    for route in tree.match(labels):
        receiver = route.options.receiver
        if receiver not in receivers:
            out.append((route, None, {}))
            continue
        grouped = group_labels(route.options, labels)
        out.append((route, (receiver, group_key(route, grouped)), grouped))
    return out


def time_interval_stage(intervals: Mapping[str, TimeIntervalConfig]) -> Stage:
    """Hold back groups whose route is inside a mute interval or outside its active ones."""
    def stage(flow: Flow, now: datetime) -> Flow:
        held = dict(flow.held)
        for group in flow.groups:
            options = group.route.options
            mute = any_active(options.mute_time_intervals, intervals, now)
            if mute is not None:
                held[group.ident] = f"muted by time interval {mute}"
            elif options.active_time_intervals and \
                    any_active(options.active_time_intervals, intervals, now) is None:
                held[group.ident] = ("outside active time intervals "
                                     + ", ".join(options.active_time_intervals))
        return replace(flow, held=held)
    return stage


def decide(visible: Sequence[NotifyAlert], entry: LogEntry | None, group_wait: float,
           group_interval: float, repeat_interval: float, send_resolved: bool,
           now: datetime) -> tuple[bool, str, datetime | None]:
    """Return (send now?, why, when due) for a group's unmuted alerts against its log entry.

    Steps: 1. a group the receiver has no firing alerts on record for is new: it is due
    ``group_wait`` after its first firing alert; 2. otherwise it is due
    ``group_interval`` after the last message when it changed (new firing alerts, all
    resolved, or resolutions the receiver wants); 3. otherwise ``repeat_interval`` after
    the last message.
    """
    firing = frozenset(a.alert_id for a in visible if a.firing)
    resolved = frozenset(a.alert_id for a in visible if not a.firing)
    if entry is None or not entry.firing:
        if not firing:
            return False, "no firing alerts the receiver was told about", None
        due = min(a.starts_at for a in visible if a.firing) + timedelta(seconds=group_wait)
        if now >= due:
            return True, "new group; group_wait elapsed", due
        return False, "new group; waiting for group_wait", due
    change = ""
    if not firing <= entry.firing:
        change = "new firing alerts"
    elif not firing:
        change = "all alerts resolved"
    elif send_resolved and not resolved <= entry.resolved:
        change = "alerts resolved"
    if change:
        due = entry.sent_at + timedelta(seconds=group_interval)
        if now >= due:
            return True, f"{change}; group_interval elapsed", due
        return False, f"{change}; waiting for group_interval", due
    due = entry.sent_at + timedelta(seconds=repeat_interval)
    if now >= due:
        return True, "unchanged; repeat_interval elapsed", due
    return False, "unchanged since the last message", due


def dedup_stage(log: Mapping[tuple[str, str], LogEntry],
                send_resolved: Mapping[str, bool]) -> Stage:
    """Decide, for every group not held back, whether it is sent now."""
    def stage(flow: Flow, now: datetime) -> Flow:
        decisions = []
        for group in flow.groups:
            if group.ident in flow.held:
                decisions.append(Decision(group, False, flow.held[group.ident]))
                continue
            visible = tuple(a for a in group.alerts if a.alert_id not in flow.muted)
            if not visible:
                decisions.append(Decision(group, False, "every alert is muted"))
                continue
            options = group.route.options
            send, reason, due = decide(visible, log.get(group.ident), options.group_wait,
                                       options.group_interval, options.repeat_interval,
                                       send_resolved.get(group.receiver, True), now)
            decisions.append(Decision(group, send, reason, due, visible))
        return replace(flow, decisions=tuple(decisions))
    return stage


def message_stage(log: Mapping[tuple[str, str], LogEntry], send_resolved: Mapping[str, bool],
                  external_url: str, new_id: Callable[[], str]) -> Stage:
    """Turn each group to send into a notification and the log entry that records it."""
    def stage(flow: Flow, now: datetime) -> Flow:
        outgoing = []
        for decision in flow.decisions:
            if not decision.send:
                continue
            group = decision.group
            previous = log.get(group.ident)
            firing = frozenset(a.alert_id for a in decision.visible if a.firing)
            resolved = frozenset(a.alert_id for a in decision.visible if not a.firing)
            message_id = new_id()
            continues_thread = previous is not None and previous.firing and previous.thread_id
            thread_id = previous.thread_id if continues_thread and previous else message_id
            entry = LogEntry(group.receiver, group.key, firing, resolved, now, thread_id)
            alerts = decision.visible
            if not send_resolved.get(group.receiver, True):
                alerts = tuple(a for a in alerts if a.firing)
            told = previous.firing if previous is not None else frozenset()
            new_firing = [a.starts_at for a in alerts if a.firing and a.alert_id not in told]
            notification = Notification(
                kind="alerts", receiver=group.receiver, group_key=group.key,
                group_labels=dict(group.labels), alerts=alerts, created_at=now,
                message_id=message_id, thread_id=thread_id, external_url=external_url,
            ) if alerts else None
            outgoing.append(Outgoing(notification, entry,
                                     min(new_firing) if new_firing else None))
        return replace(flow, outgoing=tuple(outgoing))
    return stage


def retention_stage(log: Mapping[tuple[str, str], LogEntry], retention: float) -> Stage:
    """List resolved alerts no group needs any more, so the store can drop them.

    A resolved alert is needed by a group whose last message told its receiver it was
    firing (and that is not sending a message now); past ``retention`` it is dropped
    regardless.
    """
    def stage(flow: Flow, now: datetime) -> Flow:
        written = {o.entry.receiver + "\0" + o.entry.group_key for o in flow.outgoing}
        needed: set[str] = set()
        for group in flow.groups:
            if group.receiver + "\0" + group.key in written:
                continue
            entry = log.get(group.ident)
            if entry is None or not entry.firing:
                continue
            for alert in group.alerts:
                # The receiver's last message said it fires: keep it to announce the end.
                if not alert.firing and alert.alert_id not in flow.muted \
                        and alert.alert_id in entry.firing:
                    needed.add(alert.alert_id)
        cutoff = now - timedelta(seconds=retention)
        removable = tuple(
            a.alert_id for a in flow.alerts
            if not a.firing and (a.alert_id not in needed or (a.ends_at or a.starts_at) < cutoff))
        return replace(flow, removable=removable)
    return stage
