"""The monthly performance pack as a view model: cover, exceptions, scorecard, SPC charts.

:func:`build_pack` is pure: it takes what two evaluations published — the month's
scorecard rows and alerts, and each series' status and SPC variation the month before
(:func:`previous_of`: the previous month's snapshot frames) — and decides only what goes
on which page. Every value, status, icon and comment is a published one
(:class:`~monitor.rules.snapshot.SeriesDetail`); nothing is recomputed here.

Pages, in order (the NHS "Making Data Count" integrated performance report is the
model):

1. the cover: organisation, title, the period the data is about, when generated;
2. the exceptions: every series whose status changed since the previous month, or whose
   latest point is a special cause, with the comment and the alerts that explain it;
3. the scorecard in the seed's layout, groups as headings; an indicator with more than
   :data:`COMPACT_FROM` series (33 boroughs) gets a heading row and one compact line per
   series (no sparkline or icons), so the scorecard reads like the seed's and lays out
   fast;
4. one XmR chart page for each indicator with a series that is red, amber or shows a
   special cause: its worst series charted (:func:`worst_first`), its other such series
   listed on the same page with status, value, SPC and comment — the page count grows
   with indicators, not with series.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.model import STATUS_CODES, Alert, AlertState, Status
from monitor.rules.snapshot import IndicatorFrame, SeriesDetail, SeriesPoint

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
ATTENTION = (Status.RED, Status.AMBER)
ASSURANCE_WORDS = {
    # nosec below: "pass" is an SPC assurance verdict (stats.assurance), not a password
    "pass": "The target is consistently met: it lies beyond the process limits on the "  # nosec B105
            "good side",
    "fail": "The target is consistently missed: it lies beyond the process limits on the "
            "bad side",
    "hit_and_miss": "The target lies within the process limits: it will be met and "
                    "missed at random",
    "none": "No assurance: no target, no process limits, or no better direction",
}
COMPACT_FROM = 4  # an indicator with more series than this gets the compact scorecard rows
SPECIAL_RULES = {1: "a point outside the process limits", 2: "a trend of six points",
                 3: "two of three points near a limit", 4: "a shift of eight points"}


def key_of(detail: SeriesDetail) -> SeriesKey:
    return detail.indicator.id, tuple(sorted(detail.labels.items()))


def special(detail: SeriesDetail) -> bool:
    """True when the headline period's point is a special cause."""
    return detail.spc_icon != "common_cause"


@dataclass(frozen=True)
class Before:
    """A series as the previous month's evaluation published it: all the exceptions
    page compares with."""

    status: Status
    spc_icon: str


def previous_of(frames: Mapping[str, IndicatorFrame]) -> dict[SeriesKey, Before]:
    """Return each series' status and SPC variation from a month's snapshot frames (the
    values its scorecard rows carry: ``IndicatorFrame.status`` and ``.spc`` are what
    ``SeriesDetail.status`` and ``.spc_icon`` are made from), by series key.

    The frames are published with every evaluation; building the previous month's full
    scorecard rows (history, limits, comments) only to read two fields of each would
    double the pack's evaluation time.
    """
    statuses = {code: Status(name) for name, code in STATUS_CODES.items()}
    out: dict[SeriesKey, Before] = {}
    for indicator, frame in frames.items():
        for i, labels in enumerate(frame.labels):
            spc = str(frame.spc[i]) if frame.spc is not None else "common_cause"
            out[indicator, tuple(sorted(labels.items()))] = Before(
                statuses[int(frame.status[i])], spc)
    return out


@dataclass(frozen=True)
class Signal:
    """The special-cause points of a chart that one rule flagged, one way."""

    rule: str
    variation: str
    periods: tuple[str, ...]


@dataclass(frozen=True)
class Attention:
    """A series that needs attention: why, and the alerts about it."""

    detail: SeriesDetail
    reasons: tuple[str, ...]  # "red", "special cause concern: low values", …
    alerts: tuple[Alert, ...]


@dataclass(frozen=True)
class ChartPage:
    """An indicator's XmR chart page: its worst series charted, why it is in the pack,
    what fired; the indicator's other series needing attention listed beneath."""

    detail: SeriesDetail
    reasons: tuple[str, ...]  # "red", "special cause concern: low values", …
    alerts: tuple[Alert, ...]
    signals: tuple[Signal, ...]
    rebased: tuple[str, ...]  # periods where a new segment's limits start
    others: tuple[Attention, ...] = ()  # worst first


@dataclass(frozen=True)
class Change:
    """A series that changed status or shows a special cause this month."""

    detail: SeriesDetail
    previous: Status | None  # None: not on the previous month's scorecard
    changed: bool
    new_special: bool  # a special cause now that the previous month did not show
    alerts: tuple[Alert, ...]

    @property
    def headline(self) -> str:
        """``Red, was green``; ``Special cause concern: low values``; both joined."""
        parts = []
        if self.changed:
            was = self.previous.word if self.previous is not None else "not reported"
            parts.append(f"{self.detail.status.word.capitalize()}, was {was}")
        if special(self.detail):
            parts.append(f"special cause ({self.detail.spc_icon.replace('_', ' ')})"
                         + ("" if self.new_special else ", as last month"))
        text = "; ".join(parts)
        return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Pack:
    """Everything the pack's pages show, in page order."""

    title: str
    organisation: str
    period: str  # the month evaluated: "2008-07"
    previous_period: str  # "2008-06"
    data_to: str  # the latest period with data: "Jul-08"
    generated_at: datetime
    rows: tuple[SeriesDetail, ...]
    exceptions: tuple[Change, ...]
    charts: tuple[ChartPage, ...]
    alerts: tuple[Alert, ...]  # every active alert of the month, outside source health

    @property
    def groups(self) -> list[tuple[str, list[SeriesDetail]]]:
        """The scorecard rows under their group headings, in order."""
        out: list[tuple[str, list[SeriesDetail]]] = []
        for row in self.rows:
            if not out or out[-1][0] != row.indicator.group:
                out.append((row.indicator.group, []))
            out[-1][1].append(row)
        return out

    @property
    def scorecard(self) -> list[tuple[str, list[list[SeriesDetail]]]]:
        """The scorecard rows under their group headings, each group's rows split by
        indicator (consecutive rows of one indicator), in order."""
        out: list[tuple[str, list[list[SeriesDetail]]]] = []
        for group, rows in self.groups:
            indicators: list[list[SeriesDetail]] = []
            for row in rows:
                if not indicators or indicators[-1][0].indicator.id != row.indicator.id:
                    indicators.append([])
                indicators[-1].append(row)
            out.append((group, indicators))
        return out

    @property
    def exceptions_by_indicator(self) -> list[list[Change]]:
        """The exceptions split by indicator (consecutive changes of one indicator)."""
        out: list[list[Change]] = []
        for change in self.exceptions:
            if not out or out[-1][0].detail.indicator.id != change.detail.indicator.id:
                out.append([])
            out[-1].append(change)
        return out

    @property
    def attention_series(self) -> int:
        """How many series are red, amber or show a special cause (on the chart pages)."""
        return sum(1 + len(page.others) for page in self.charts)

    @property
    def several_series(self) -> bool:
        """True when an indicator has more than one row (label values are shown)."""
        ids = [r.indicator.id for r in self.rows]
        return len(ids) != len(set(ids))


def series_alerts(detail: SeriesDetail, alerts: Sequence[Alert]) -> tuple[Alert, ...]:
    """The active alerts about ``detail``'s series: its indicator's, on its labels."""
    return tuple(a for a in alerts if a.labels.get("indicator") == detail.indicator.id
                 and all(a.labels.get(k) == v for k, v in detail.labels.items()))


def _alerts_by_series(alerts: Sequence[Alert]) -> Callable[[SeriesDetail], tuple[Alert, ...]]:
    """Return :func:`series_alerts` over ``alerts`` grouped by indicator first (3,300 rows
    against every alert of the month, one indicator's at a time)."""
    by_indicator: dict[str, list[Alert]] = {}
    for alert in alerts:
        by_indicator.setdefault(alert.labels.get("indicator", ""), []).append(alert)
    return lambda detail: series_alerts(detail, by_indicator.get(detail.indicator.id, ()))


def signals(points: Sequence[SeriesPoint]) -> tuple[Signal, ...]:
    """The special-cause points as published, grouped by rule and variation in the order
    each first appears; periods oldest first."""
    grouped: dict[tuple[int, str], list[str]] = {}
    for p in points:
        if p.special:
            grouped.setdefault((p.special, p.variation), []).append(p.period_text)
    return tuple(Signal(SPECIAL_RULES.get(rule, "a special cause"), variation, tuple(periods))
                 for (rule, variation), periods in grouped.items())


def rebase_points(points: Sequence[SeriesPoint]) -> tuple[str, ...]:
    """The periods where the published limits step (a re-based chart's new segment)."""
    out = []
    previous: SeriesPoint | None = None
    for p in points:
        if p.mean is None:
            continue
        if previous is not None and previous.mean is not None and p.mean != previous.mean:
            out.append(p.period_text)
        previous = p
    return tuple(out)


def worst_first(series: Sequence[Attention]) -> list[Attention]:
    """``series`` worst first: red before amber before the rest, a special cause before
    none; ties keep the scorecard's order."""
    rank = {Status.RED: 0, Status.AMBER: 1}
    return sorted(series, key=lambda a: (rank.get(a.detail.status, 2),
                                         not special(a.detail)))


def build_pack(*, title: str, organisation: str, period: str, previous_period: str,
               data_to: str, generated_at: datetime, rows: Sequence[SeriesDetail],
               alerts: Sequence[Alert], previous: Mapping[SeriesKey, Before]) -> Pack:
    """Return the pack of the month's published ``rows`` and ``alerts`` against the
    previous month's published status and SPC variation of each series (``previous``,
    from :func:`previous_of`; a series missing from it was not reported then)."""
    active = tuple(a for a in alerts if a.state in (AlertState.FIRING, AlertState.PENDING)
                   and a.labels.get("indicator"))
    fired_by = _alerts_by_series(active)
    exceptions: list[Change] = []
    attention: dict[str, list[Attention]] = {}
    for row in rows:
        old = previous.get(key_of(row))
        fired = fired_by(row)
        changed = old is None or old.status is not row.status
        new_special = special(row) and (old is None or old.spc_icon != row.spc_icon)
        if changed or special(row):
            exceptions.append(Change(row, old.status if old else None, changed,
                                         new_special, fired))
        reasons = []
        if row.status in ATTENTION:
            reasons.append(row.status.word)
        if special(row):
            reasons.append(f"special cause ({row.spc_icon.replace('_', ' ')})")
        if reasons:
            attention.setdefault(row.indicator.id, []).append(
                Attention(row, tuple(reasons), fired))
    charts = []
    for series in attention.values():
        worst, *others = worst_first(series)
        charts.append(ChartPage(worst.detail, worst.reasons, worst.alerts,
                                signals(worst.detail.points),
                                rebase_points(worst.detail.points), tuple(others)))
    return Pack(title, organisation, period, previous_period, data_to, generated_at,
                tuple(rows), tuple(exceptions), tuple(charts), active)
