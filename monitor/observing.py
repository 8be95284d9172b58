"""The running daemon as the HTTP layer sees it: an implementation of ``http.Observed``.

Each method delegates to the subsystem that owns the answer — the rule service for the
snapshot and series detail, the store's repositories for history and milestones, the
poller for source health, the notifier for silences — so the HTTP layer depends on none
of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.http.observed import (
    HistoryPoint,
    Silence,
    SilenceSpec,
    SourcedMilestone,
    SourceHealth,
)
from monitor.model import Frequency
from monitor.notify import silences as notify_silences
from monitor.rules.snapshot import SeriesDetail, Snapshot

if TYPE_CHECKING:
    from monitor.app import App


class DaemonView:
    """Reads the running daemon's subsystems on behalf of the API, pages and metrics."""

    def __init__(self, app: App) -> None:
        self.app = app

    def snapshot(self) -> Snapshot:
        rules = self.app.rules
        return rules.snapshot() if rules is not None else Snapshot(None, {}, [], [])

    def scorecard(self) -> Sequence[SeriesDetail]:
        rules = self.app.rules
        return rules.scorecard() if rules is not None else []

    def detail(self, indicator: str, labels: Mapping[str, str]) -> SeriesDetail | None:
        rules = self.app.rules
        return rules.detail(indicator, dict(labels)) if rules is not None else None

    def history(self, indicator: str, labels: Mapping[str, str]) -> Sequence[HistoryPoint]:
        store, rules = self.app.store, self.app.rules
        if store is None or rules is None or rules.ruleset is None:
            return []
        definition = rules.ruleset.indicators.get(indicator)
        freq = Frequency(definition.frequency if definition else "monthly")
        scale = 100.0 if definition is not None and definition.unit in ("percent", "pp") else 1.0
        out = []
        for point in store.observations.history(indicator, labels):
            value = point.value
            if point.denominator:
                value = point.value / point.denominator * scale
            out.append(HistoryPoint(freq.label(point.period), value, point.provisional,
                                    point.revisions))
        return out

    def sources(self) -> Sequence[SourceHealth]:
        poller = self.app.poller
        if poller is None:
            return []
        kinds = {s.name: s for s in self.app.settings.sources}
        out = []
        for health in poller.health():
            config = kinds.get(health.source)
            if health.last_attempt_at is None:
                state = "unknown"
            else:
                state = "ok" if health.consecutive_failures == 0 else "bad"
            out.append(SourceHealth(
                name=health.source, kind=config.kind if config else "", health=state,
                last_error=health.last_error, last_attempt=health.last_attempt_at,
                last_success=health.last_success_at,
                consecutive_failures=health.consecutive_failures,
                enabled=config.enabled if config else False))
        return out

    def milestones(self) -> Sequence[SourcedMilestone]:
        store = self.app.store
        if store is None:
            return []
        out: list[SourcedMilestone] = []
        for source in self.app.settings.sources:
            if source.kind == "milestones":
                out.extend(SourcedMilestone(source.name, m)
                           for m in store.observations.milestones(source.name))
        return out

    def silences(self) -> Sequence[Silence]:
        notifier = self.app.notifier
        if notifier is None:
            return []
        now = self.app.clock.now()
        return [_silence(s, now) for s in notifier.silences()]

    def create_silence(self, spec: SilenceSpec) -> Silence:
        notifier = self.app.notifier
        if notifier is None:
            raise ValueError("silences are not available: the notifier is not running")
        created = notifier.create_silence(notify_silences.SilenceSpec(
            matchers=tuple(spec.matchers),
            starts_at=spec.starts_at, ends_at=spec.ends_at, created_by=spec.created_by,
            comment=spec.comment,
            recurrence=notify_silences.recurrence_from(spec.recurrence)))
        return _silence(created, self.app.clock.now())

    def expire_silence(self, silence_id: str) -> Silence | None:
        notifier = self.app.notifier
        if notifier is None:
            return None
        expired = notifier.expire_silence(silence_id)
        return _silence(expired, self.app.clock.now()) if expired is not None else None


def _silence(s: notify_silences.Silence, now: datetime) -> Silence:
    return Silence(id=s.id, matchers=s.matchers,
                   starts_at=s.starts_at, ends_at=s.effective_end(), created_by=s.created_by,
                   comment=s.comment, state=s.state(now), updated_at=s.updated_at,
                   recurrence=notify_silences.recurrence_dict(s))
