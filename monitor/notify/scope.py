"""Which groups a pipeline run must look at: the notifier's memory between runs.

A full run of the pipeline reads every alert the notifier tracks and decides every
group; at 100,000 firing alerts that is seconds, repeated every tick although nothing
changed. The decisions of a group depend only on its own alerts, its log entry, the
live silences and time intervals, and ``now`` (inhibition, which looks across groups,
is the exception: with inhibit rules every run is full). So after one full run it is
enough to run the pipeline over the groups that may decide differently:

1. groups an alert that changed (a claimed transition) belongs to;
2. groups whose timer is due (group_wait, group_interval, repeat_interval);
3. groups holding a resolved alert whose retention ran out;

closed over shared alerts (an alert routed to several groups brings all of them, and
each group brings all its alerts), so each group is decided on all its alerts and each
alert is dropped only when no group still needs it. Anything else — silences starting
or ending, a time interval opening or closing, a reload, another replica's run — makes
the next run full. :class:`GroupIndex` is pure bookkeeping; the notifier does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from monitor.matchers import AnyOf
from monitor.notify.notification import NotifyAlert
from monitor.notify.pipeline import Flow

Ident = tuple[str, str]  # (receiver, group key)


class GroupIndex:
    """Each tracked alert's groups, each group's alerts, and the times groups fall due.

    Valid only after :meth:`rebuild` from a full run; :meth:`update` folds in the
    result of a run over a closed scope.
    """

    def __init__(self) -> None:
        self.valid = False
        self.members: dict[Ident, set[str]] = {}
        # An alert's groups: the one group's ident itself (shared with ``members``' key),
        # a set only for an alert routed to several — a set of one per alert was 250
        # bytes each, 39 MB at 157,000 alerts, kept from run to run.
        self.groups_of: dict[str, Ident | set[Ident]] = {}
        self.due: dict[Ident, datetime] = {}
        self.expiry: dict[str, datetime] = {}  # resolved alerts kept for a group
        self.sources: set[str] = set()  # alerts that may inhibit others: read every run

    def invalidate(self) -> None:
        self.valid = False

    def scope(self, changed: Mapping[str, Iterable[Ident]], now: datetime
              ) -> tuple[set[str], set[Ident]]:
        """Return (alert ids, group idents) a run must cover at ``now``, given the
        alerts that changed and the groups each of them is routed to; both empty when
        nothing is due."""
        groups: set[Ident] = {g for idents in changed.values() for g in idents}
        groups.update(g for g, at in self.due.items() if at <= now)
        alerts: set[str] = set(changed)
        for alert_id, at in self.expiry.items():
            if at <= now:
                alerts.add(alert_id)
        pending_groups = list(groups)
        pending_alerts = list(alerts)
        while pending_groups or pending_alerts:
            while pending_alerts:
                for g in _each(self.groups_of.get(pending_alerts.pop())):
                    if g not in groups:
                        groups.add(g)
                        pending_groups.append(g)
            while pending_groups:
                for a in self.members.get(pending_groups.pop(), ()):
                    if a not in alerts:
                        alerts.add(a)
                        pending_alerts.append(a)
        return alerts, groups

    def note_sources(self, flow: Flow, source: AnyOf) -> None:
        """Remember which of ``flow``'s alerts ``source`` says may inhibit others (they
        match an inhibit rule's source matchers), and forget those it removed."""
        for alert_id in flow.removable:
            self.sources.discard(alert_id)
        if not source:  # no inhibit rule: no alert is a source
            return
        removed = set(flow.removable)
        for alert in flow.alerts:
            if alert.alert_id not in removed and source(alert.labels):
                self.sources.add(alert.alert_id)

    def rebuild(self, flow: Flow, now: datetime, retention: float) -> None:
        """Forget everything and learn it again from a full run's ``flow``."""
        self.members.clear()
        self.groups_of.clear()
        self.due.clear()
        self.expiry.clear()
        self.sources.clear()
        self.update(flow, (), set(), now, retention)
        self.valid = True

    def update(self, flow: Flow, covered_alerts: Iterable[str], covered_groups: set[Ident],
               now: datetime, retention: float) -> None:
        """Replace what is known of the covered alerts and groups with ``flow``'s."""
        for alert_id in covered_alerts:
            for g in _each(self.groups_of.pop(alert_id, None)):
                self.members.get(g, set()).discard(alert_id)
            self.expiry.pop(alert_id, None)
        for g in covered_groups:
            self.due.pop(g, None)
            if not self.members.get(g):
                self.members.pop(g, None)
        removed = set(flow.removable)
        for group in flow.groups:
            ident = group.ident
            kept = [a.alert_id for a in group.alerts if a.alert_id not in removed]
            if not kept:
                continue
            self.members.setdefault(ident, set()).update(kept)
            for alert_id in kept:
                known = self.groups_of.get(alert_id)
                if known is None or known == ident:
                    self.groups_of[alert_id] = ident
                elif isinstance(known, set):
                    known.add(ident)
                else:
                    self.groups_of[alert_id] = {known, ident}
        for alert in flow.alerts:
            if alert.alert_id not in removed and not alert.firing:
                self.expiry[alert.alert_id] = _expiry(alert, retention)
        sent = {o.entry.receiver + "\0" + o.entry.group_key: o for o in flow.outgoing}
        for decision in flow.decisions:
            group = decision.group
            if group.receiver + "\0" + group.key in sent:
                # Sent now: unchanged, it is due again after repeat_interval (a change
                # arrives as a changed alert and brings the group into scope anyway).
                self.due[group.ident] = now + timedelta(
                    seconds=group.route.options.repeat_interval)
            elif decision.due_at is not None:
                self.due[group.ident] = decision.due_at
        for g in covered_groups:
            if not self.members.get(g):
                self.members.pop(g, None)
                self.due.pop(g, None)


def _each(groups: Ident | set[Ident] | None) -> Iterable[Ident]:
    """The idents ``groups_of`` holds for an alert (none, one, or a set)."""
    if groups is None:
        return ()
    return groups if isinstance(groups, set) else (groups,)


def _expiry(alert: NotifyAlert, retention: float) -> datetime:
    return (alert.ends_at or alert.starts_at) + timedelta(seconds=retention)
