"""The running daemon as the HTTP layer sees it: an implementation of ``http.Observed``.

Each method delegates to the subsystem that owns the answer — the rule service for the
snapshot and each series' published detail (values with their scale, SPC per point,
provisional flags and revisions), the store for what each source wrote and milestones,
the poller for source health and schedules, the notifier for silences — so the HTTP
layer depends on none of them. Nothing here computes: a figure the pages show is one
some subsystem published.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.http.observed import (
    HistoryQuery,
    Silence,
    SilenceSpec,
    SourcedMilestone,
    SourceHealth,
    Suppressed,
)
from monitor.model import AlertState, Episode, episodes
from monitor.notify import silences as notify_silences
from monitor.notify.notification import FIRING, RESOLVED, NotifyAlert
from monitor.report import html
from monitor.rules.snapshot import ReloadStatus, SeriesDetail, Snapshot

if TYPE_CHECKING:
    from monitor.app import App


class DaemonView:
    """Reads the running daemon's subsystems on behalf of the API, pages and metrics."""

    def __init__(self, app: App) -> None:
        self.app = app

    def snapshot(self) -> Snapshot:
        rules = self.app.rules
        return rules.snapshot() if rules is not None else Snapshot(None, {}, [], [])

    def rule_reload(self) -> ReloadStatus:
        rules = self.app.rules
        return rules.reload_status() if rules is not None else ReloadStatus()

    def scorecard(self) -> Sequence[SeriesDetail]:
        rules = self.app.rules
        return rules.scorecard() if rules is not None else []

    def detail(self, indicator: str, labels: Mapping[str, str]) -> SeriesDetail | None:
        rules = self.app.rules
        return rules.detail(indicator, dict(labels)) if rules is not None else None

    def details(self, indicator: str, labels: Sequence[Mapping[str, str]]
                ) -> Sequence[SeriesDetail | None]:
        rules = self.app.rules
        return rules.details(indicator, labels) if rules is not None else [None] * len(labels)

    def sources(self) -> Sequence[SourceHealth]:
        """Each configured source's health as the store keeps it, what the store holds from
        it, the rows its last reading poll rejected, and when the poller runs it next."""
        poller, store = self.app.poller, self.app.store
        if poller is None or store is None:
            return []
        configs = {s.name: s for s in self.app.settings.sources}
        stored = store.observations.count_by_source()
        out = []
        for health in poller.health():
            config = configs.get(health.source)
            state = "unknown" if health.last_attempt_at is None else \
                "ok" if health.healthy else "bad"
            last_read = store.source_state.last_read(health.source)
            out.append(SourceHealth(
                name=health.source, kind=config.kind if config else "", health=state,
                last_error=health.last_error, last_attempt=health.last_attempt_at,
                last_success=health.last_success_at,
                consecutive_failures=health.consecutive_failures,
                observations=stored.get(health.source, 0),
                rejected=last_read.rejected if last_read is not None else 0,
                next_poll=poller.next_poll(health.source),
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
            recurrence=notify_silences.recurrence_from(spec.recurrence),
            until_period=spec.until_period))
        return _silence(created, self.app.clock.now())

    def expire_silence(self, silence_id: str) -> Silence | None:
        notifier = self.app.notifier
        if notifier is None:
            return None
        expired = notifier.expire_silence(silence_id)
        return _silence(expired, self.app.clock.now()) if expired is not None else None

    def pack_html(self, period: int) -> str | None:
        reports = self.app.reports
        pack = reports.pack(period) if reports is not None else None
        return html.render(pack) if pack is not None else None


    def extend_silence(self, silence_id: str, ends_at: datetime) -> Silence | None:
        notifier = self.app.notifier
        if notifier is None:
            return None
        longer = notifier.extend_silence(silence_id, ends_at)
        return _silence(longer, self.app.clock.now()) if longer is not None else None

    def suppressed(self) -> Mapping[str, Suppressed]:
        """The notifier's silence and inhibit stages over the published alerts (pending
        ones too: a silence made now mutes them when they fire)."""
        notifier = self.app.notifier
        if notifier is None:
            return {}
        alerts = [NotifyAlert(
            alert_id=a.fingerprint, rule=a.rule, labels=a.labels, annotations=a.annotations,
            status=FIRING if a.state is AlertState.FIRING else RESOLVED, value=a.value,
            explanation=a.explanation,
            starts_at=a.fired_at or a.active_since or a.last_evaluated or self.app.clock.now())
            for a in self.snapshot().alerts
            if a.state in (AlertState.FIRING, AlertState.PENDING)]
        return {k: Suppressed(v.silenced_by, v.inhibited_by)
                for k, v in notifier.suppressed(alerts).items()}

    def history(self, query: HistoryQuery) -> Sequence[Episode]:
        store = self.app.store
        if store is None:
            return []
        return episodes(store.history.events(
            rules=query.rules, alert_ids=query.alert_ids, matchers=query.matchers,
            since=query.since,
            until=query.until, limit=query.limit))


def _silence(s: notify_silences.Silence, now: datetime) -> Silence:
    return Silence(id=s.id, matchers=s.matchers,
                   starts_at=s.starts_at, ends_at=s.effective_end(), created_by=s.created_by,
                   comment=s.comment, state=s.state(now), updated_at=s.updated_at,
                   recurrence=notify_silences.recurrence_dict(s), until_period=s.until_period)
