"""An in-memory engine for the HTTP tests, built from the real London borough crime data.

``LondonObserved`` implements :class:`monitor.http.observed.Observed` the way the daemon
will: seven indicators grouped under the seed's headings, one series per borough plus
London as a whole (33 series each), computed with numpy from the London Datastore file
for the rolling year to December 2009 against the year before — when London-wide
dwelling burglary rose about 6% while serious acquisitive crime fell. SPC limits come
from the product's own ``monitor.rules.stats``. Alerts, rule health, source health,
silences and the bundled example's counter-terrorism milestones complete the picture.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import yaml
from prometheus_client import CollectorRegistry

from monitor.clock import Clock, FixedClock
from monitor.http.observed import (
    HistoryPoint,
    Silence,
    SilenceSpec,
    SourcedMilestone,
    SourceHealth,
)
from monitor.matchers import compile_matchers
from monitor.model import Alert, AlertState, Frequency, Milestone, Status, month
from monitor.rules import stats
from monitor.rules.snapshot import (
    IndicatorFrame,
    IndicatorInfo,
    RuleHealth,
    SeriesDetail,
    Snapshot,
)
from monitor.settings import ServerSettings, Settings
from tests.conftest import REPO, SHARED_DATA

LONDON_CSV = SHARED_DATA / "mps-borough-crime-2008-01-to-2016-12.csv"
MILESTONES_YAML = REPO / "examples" / "mps-2008-09" / "data" / "ct-milestones.yaml"
AS_OF = "2009-12"
EVALUATED_AT = datetime(2010, 1, 5, 6, 0, tzinfo=UTC)
LONDON = "London"
TOKEN = "test-token-7c1e2b"


@dataclass(frozen=True)
class Definition:
    """How one indicator is computed from the borough file."""

    info: IndicatorInfo
    minors: tuple[str, ...]
    kind: str  # change (RY vs previous RY, %) | level (monthly mean)
    target: float | None  # change in % or monthly level multiplier of the previous RY


def _info(id: str, name: str, reference: str, group: str, direction: str, unit: str,
          aggregation: str = "sum", description: str = "") -> IndicatorInfo:
    return IndicatorInfo(id=id, name=name, reference=reference, unit=unit,
                         direction=direction, frequency="monthly", aggregation=aggregation,
                         window=12, group=group, description=description)


SAC = "Tackle serious acquisitive crime"
VIOLENCE = "Tackle serious violence"
DRUGS = "Increase sanction detections for Class A trafficking"
DEFINITIONS = (
    Definition(_info("serious_acquisitive_crime", "Serious acquisitive crime rate", "SPI 5.2",
                     SAC, "down", "percent", description="Dwelling burglary, robbery and "
                     "vehicle crime: rolling year vs the year before"),
               ("Burglary in a Dwelling", "Personal Property", "Business Property",
                "Theft/Taking Of Motor Vehicle", "Theft From Motor Vehicle",
                "Motor Vehicle Interference & Tampering"), "change", -4.0),
    Definition(_info("residential_burglary", "Residential burglary", "", SAC, "down",
                     "percent"), ("Burglary in a Dwelling",), "change", -4.0),
    Definition(_info("robbery", "Robbery", "", SAC, "down", "percent"),
               ("Personal Property", "Business Property"), "change", -4.0),
    Definition(_info("vehicle_crime", "Motor vehicle crime", "", SAC, "down", "percent"),
               ("Theft/Taking Of Motor Vehicle", "Theft From Motor Vehicle",
                "Motor Vehicle Interference & Tampering"), "change", -4.0),
    Definition(_info("most_serious_violence", "Most serious violence rate", "SPI 5.1",
                     VIOLENCE, "down", "percent"),
               ("Wounding/GBH", "Grievous Bodily Harm", "Murder"), "change", None),
    Definition(_info("assault_with_injury", "Assault with injury", "", VIOLENCE, "down",
                     "percent"), ("Assault with Injury",), "change", -3.0),
    Definition(_info("drug_trafficking", "Drug trafficking offences - monthly average", "",
                     DRUGS, "up", "count", aggregation="mean"), ("Drug Trafficking",),
               "level", 1.02),
)


def load_london() -> tuple[list[str], dict[tuple[str, str], np.ndarray], list[int]]:
    """Return boroughs, monthly counts per (borough, minor category), and month ordinals."""
    with LONDON_CSV.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    months = [month(f"{h[:4]}-{h[4:]}") for h in header[3:]]
    counts: dict[tuple[str, str], np.ndarray] = {}
    for row in rows[1:]:
        counts[(row[0], row[2])] = np.array([float(x) for x in row[3:]])
    boroughs = sorted({b for b, _ in counts})
    return boroughs, counts, months


def short_month(ordinal: int) -> str:
    """``2009-12`` ordinal -> ``Dec-09``, as the seed writes periods."""
    start = Frequency.MONTHLY.start(ordinal)
    return start.strftime("%b-%y")


@dataclass
class _Computed:
    info: IndicatorInfo
    labels: list[dict[str, str]]
    monthly: np.ndarray  # (series, months) up to AS_OF
    periods: list[str]
    value: np.ndarray
    target: np.ndarray
    status: np.ndarray
    changes: dict[str, np.ndarray]
    current: np.ndarray
    previous: np.ndarray
    target_line: np.ndarray  # (series, months), NaN where none
    spc: stats.SpcResult
    icons: np.ndarray


def _status(kind: str, value: np.ndarray, target: np.ndarray) -> np.ndarray:
    """RAG per series: change targets (down is good) and level targets (up is good)."""
    codes = np.full(value.shape, Status.BASELINE.code, dtype=np.int64)
    has = ~np.isnan(target)
    if kind == "change":
        codes[has] = np.where(value[has] <= target[has], Status.GREEN.code,
                              np.where(value[has] <= 0, Status.AMBER.code, Status.RED.code))
    else:
        codes[has] = np.where(value[has] >= target[has], Status.GREEN.code,
                              np.where(value[has] >= 0.95 * target[has], Status.AMBER.code,
                                       Status.RED.code))
    codes[np.isnan(value)] = Status.UNKNOWN.code
    return codes


def compute(definition: Definition, boroughs: Sequence[str],
            counts: Mapping[tuple[str, str], np.ndarray], months: Sequence[int]) -> _Computed:
    """Return one indicator's frame data for London and each borough, as of ``AS_OF``."""
    end = months.index(month(AS_OF)) + 1
    per_borough = np.array([sum(counts[(b, m)] for m in definition.minors) for b in boroughs])
    monthly = np.vstack([per_borough.sum(axis=0), per_borough])[:, :end]
    labels = [{"borough": LONDON}] + [{"borough": b} for b in boroughs]
    n = monthly.shape[0]
    current = monthly[:, -12:].sum(axis=1)
    previous = monthly[:, -24:-12].sum(axis=1)
    target_line = np.full(monthly.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = (current - previous) / previous * 100.0
    if definition.kind == "change":
        value = pct
        target = np.full(n, np.nan if definition.target is None else definition.target)
        if definition.target is not None:
            target_line[:, -12:] = (previous / 12 * (1 + definition.target / 100))[:, None]
    else:
        value = current / 12
        assert definition.target is not None
        target = np.round(previous / 12 * definition.target, 1)
        target_line[:, -12:] = target[:, None]
    direction = {"up": 1, "down": -1}.get(definition.info.direction, 0)
    spc = stats.spc(monthly, direction=direction)
    same_month = (monthly[:, -1] - monthly[:, -13]) / np.where(monthly[:, -13] == 0, np.nan,
                                                               monthly[:, -13])
    return _Computed(
        info=definition.info, labels=labels, monthly=monthly,
        periods=[Frequency.MONTHLY.label(p) for p in months[:end]],
        value=value, target=target, status=_status(definition.kind, value, target),
        changes={"12m": pct / 100.0, "1m_yoy": same_month}, current=current,
        previous=previous, target_line=target_line, spc=spc,
        icons=stats.spc_icon(spc))


def _pct(value: float) -> str:
    return f"{value:+.1f}%".replace("+", "+" if value > 0 else "")


def comment(c: _Computed, i: int) -> str:
    """The analyst's sentence for series ``i``: change in % and in offences, and the windows."""
    if c.info.aggregation == "mean":
        return (f"Monthly average of {c.current[i] / 12:.1f} over the rolling year to "
                f"{short_month(month(AS_OF))}, against {c.previous[i] / 12:.1f} the year "
                "before.")
    delta = c.current[i] - c.previous[i]
    if math.isnan(c.value[i]):
        return "No comparison: the previous rolling year has no offences."
    word = "up" if delta > 0 else "down" if delta < 0 else "unchanged"
    return (f"{c.info.name.replace(' rate', '')} is {word} {abs(c.value[i]):.1f}% "
            f"({abs(delta):,.0f} offences) over the rolling year to "
            f"{short_month(month(AS_OF))} (compared to the RY to "
            f"{short_month(month(AS_OF) - 12)}).")


def build_frames() -> tuple[dict[str, IndicatorFrame], dict[str, _Computed]]:
    """Return the snapshot frames and the computed data behind them."""
    boroughs, counts, months = load_london()
    frames: dict[str, IndicatorFrame] = {}
    computed: dict[str, _Computed] = {}
    for definition in DEFINITIONS:
        c = compute(definition, boroughs, counts, months)
        n = len(c.labels)
        provisional = np.zeros(n, dtype=np.bool_)
        provisional[0] = True  # London's latest month still awaits late submissions
        frames[c.info.id] = IndicatorFrame(
            info=c.info, labels=c.labels, period=np.full(n, month(AS_OF), dtype=np.int64),
            value=c.value, target=c.target, status=c.status, changes=c.changes,
            provisional=provisional)
        computed[c.info.id] = c
    return frames, computed


def _alerts(frames: Mapping[str, IndicatorFrame], at: datetime) -> list[Alert]:
    """Firing alerts for red series of the acquisitive-crime indicators, pending for amber."""
    alerts = []
    for ind in ("serious_acquisitive_crime", "residential_burglary"):
        frame = frames[ind]
        for i, labels in enumerate(frame.labels):
            code = int(frame.status[i])
            if code not in (Status.RED.code, Status.AMBER.code) or i > 12:
                continue
            state = AlertState.FIRING if code == Status.RED.code else AlertState.PENDING
            alert_labels = {"alertname": "AcquisitiveCrimeAboveTarget", "indicator": ind,
                            **labels, "severity": "warning" if i else "critical"}
            alerts.append(Alert(
                rule="AcquisitiveCrimeAboveTarget", labels=alert_labels,
                annotations={"summary": f"{frame.info.name} misses its target in "
                                        f"{labels['borough']}"},
                state=state, value=float(frame.value[i]),
                active_since=at - timedelta(days=5 + i), last_evaluated=at,
                fired_at=at - timedelta(days=2) if state is AlertState.FIRING else None,
                explanation=f"{frame.info.name} changed {frame.value[i]:+.1f}% over the "
                            f"rolling year to Dec-09 against a target of "
                            f"{frame.target[i]:+.0f}% (12 months to Dec-08 as the baseline)."))
    return alerts


def _rules(at: datetime) -> list[RuleHealth]:
    return [
        RuleHealth("AcquisitiveCrimeAboveTarget", "acquisitive", "rules/acquisitive.yaml",
                   "ok", "", at, 0.0123, 288, 0, 9, 3),
        RuleHealth("ViolenceSpecialCause", "violence", "rules/violence.yaml", "ok", "", at,
                   0.0081, 288, 0, 0, 0),
        RuleHealth("DrugTraffickingTrend", "drugs", "rules/drugs.yaml", "err",
                   "rules/drugs.yaml:14:9: rule DrugTraffickingTrend: seasonal Mann–Kendall "
                   "needs 36 monthly points; the series has 24 (set min_periods or wait)",
                   at, 0.0007, 288, 288, 0, 0),
    ]


def _sources(at: datetime) -> list[SourceHealth]:
    return [
        SourceHealth("london-datastore", "csv", "ok", last_attempt=at - timedelta(minutes=3),
                     last_success=at - timedelta(minutes=3), observations=33_792,
                     next_poll=at + timedelta(minutes=57)),
        SourceHealth("police-uk-street", "police_uk", "bad",
                     last_error="GET https://data.police.uk/api/crimes-street/burglary: "
                                "503 Service Unavailable (more than 10,000 crimes in the "
                                "polygon; split it)",
                     last_attempt=at - timedelta(minutes=1),
                     last_success=at - timedelta(hours=26), consecutive_failures=4,
                     rejected=0, next_poll=at + timedelta(minutes=7)),
        SourceHealth("ct-milestones", "yaml", "ok", last_attempt=at - timedelta(hours=1),
                     last_success=at - timedelta(hours=1), observations=12),
    ]


def load_milestones() -> list[SourcedMilestone]:
    """Return the bundled example's counter-terrorism plan milestones."""
    data = yaml.safe_load(MILESTONES_YAML.read_text(encoding="utf-8"))
    return [SourcedMilestone("ct-milestones", Milestone(
        id=m["id"], title=m["title"], owner=m["owner"], due=m["due"], status=m["status"],
        completed=m.get("completed"))) for m in data["milestones"]]


@dataclass
class LondonObserved:
    """The ``Observed`` provider of the HTTP tests (see the module docstring)."""

    clock: Clock = field(default_factory=lambda: FixedClock(EVALUATED_AT))
    frames: dict[str, IndicatorFrame] = field(init=False)
    computed: dict[str, _Computed] = field(init=False)
    published: Snapshot = field(init=False)
    stored_silences: list[Silence] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.frames, self.computed = build_frames()
        at = self.clock.now()
        self.published = Snapshot(at, self.frames, _alerts(self.frames, at), _rules(at))
        self.milestone_list = load_milestones()

    def snapshot(self) -> Snapshot:
        return self.published

    def _index(self, indicator: str, labels: Mapping[str, str]) -> int | None:
        frame = self.frames.get(indicator)
        if frame is None:
            return None
        wanted = dict(labels)
        return next((i for i, lab in enumerate(frame.labels) if lab == wanted), None)

    def scorecard(self) -> Sequence[SeriesDetail]:
        """London as a whole speaks for each indicator, as the force does in the seed."""
        rows = [self.detail(ind, {"borough": LONDON}) for ind in self.frames]
        return [row for row in rows if row is not None]

    def detail(self, indicator: str, labels: Mapping[str, str]) -> SeriesDetail | None:
        i = self._index(indicator, labels)
        if i is None:
            return None
        c = self.computed[indicator]
        frame = self.frames[indicator]
        value = float(frame.value[i])
        target = float(frame.target[i])
        level = c.info.aggregation == "mean"
        status = next(s for s in Status if s.code == int(frame.status[i]))
        if math.isnan(target):
            target_text = "Baseline year"
        elif level:
            target_text = f"{target:.1f}"
        else:
            target_text = f"{target:+.0f}%".replace("+", "")
        return SeriesDetail(
            indicator=c.info, labels=dict(labels), period_label=short_month(month(AS_OF)),
            window_label=f"12 mths to {short_month(month(AS_OF))}",
            value=None if math.isnan(value) else value,
            value_text=f"{value:.1f}" if level else _pct(value),
            target=None if math.isnan(target) else target, target_text=target_text,
            status=status, comment=comment(c, i), spc_icon=str(c.icons[i]),
            periods=list(c.periods), history=[float(v) for v in c.monthly[i]],
            targets=[None if math.isnan(t) else float(t) for t in c.target_line[i]],
            mean=float(c.spc.mean[i]), upper=float(c.spc.upper[i]),
            lower=float(c.spc.lower[i]),
            special=[int(s) for s in c.spc.special[i]],
            provisional=[False] * (len(c.periods) - 1) + [bool(i == 0)])

    def history(self, indicator: str, labels: Mapping[str, str]) -> Sequence[HistoryPoint]:
        i = self._index(indicator, labels)
        if i is None:
            return []
        c = self.computed[indicator]
        last = len(c.periods) - 1
        return [HistoryPoint(p, float(v), provisional=(k == last and i == 0),
                             revisions=1 if k == last - 1 else 0)
                for k, (p, v) in enumerate(zip(c.periods, c.monthly[i], strict=True))]

    def sources(self) -> Sequence[SourceHealth]:
        return _sources(self.clock.now())

    def milestones(self) -> Sequence[SourcedMilestone]:
        return self.milestone_list

    def _state(self, silence: Silence) -> Silence:
        now = self.clock.now()
        state = "pending" if now < silence.starts_at else \
            "active" if now < silence.ends_at else "expired"
        return replace(silence, state=state)

    def silences(self) -> Sequence[Silence]:
        return [self._state(s) for s in self.stored_silences]

    def create_silence(self, spec: SilenceSpec) -> Silence:
        compile_matchers(spec.matchers)
        if not any(m.op == "=" and m.value for m in spec.matchers) and \
                all(m.op in ("!=", "!~") for m in spec.matchers):
            raise ValueError("matchers: a silence needs at least one positive matcher; "
                             "negative ones alone would silence everything")
        silence = Silence(id=f"s{next(self._ids):04d}", matchers=spec.matchers,
                          starts_at=spec.starts_at, ends_at=spec.ends_at,
                          created_by=spec.created_by, comment=spec.comment, state="",
                          updated_at=self.clock.now(), recurrence=spec.recurrence)
        self.stored_silences.append(silence)
        return self._state(silence)

    def expire_silence(self, silence_id: str) -> Silence | None:
        for k, silence in enumerate(self.stored_silences):
            if silence.id == silence_id:
                now = self.clock.now()
                ended = replace(silence, ends_at=min(silence.ends_at, now), updated_at=now)
                self.stored_silences[k] = ended
                return self._state(ended)
        return None


class FakeDaemon:
    """The ``Daemon`` protocol: a registry, settings read per request, and reloads counted."""

    def __init__(self, token: str | None = TOKEN, **server: object) -> None:
        self.registry = CollectorRegistry()
        self.settings = Settings(server=ServerSettings(api_token=token, **server))
        self.reloads = 0
        self.reload_ok = True

    def readiness(self) -> tuple[bool, str]:
        return True, "ready"

    def request_reload(self) -> tuple[bool, str]:
        self.reloads += 1
        return (True, "reloaded") if self.reload_ok else (False, "rules/x.yaml:3: bad rule")

    def api_token(self) -> str | None:
        token = self.settings.server.api_token
        return token.get_secret_value() if token else None

    def configure(self, **server: object) -> None:
        """Replace server settings (as a reload would); the app reads them per request."""
        current = self.settings.server.model_dump()
        current.update(server)
        self.settings = Settings(server=ServerSettings(**current))
