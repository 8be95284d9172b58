"""``/metrics`` for Grafana: the engine's current state, read at scrape time.

:class:`IndicatorCollector` turns the latest :class:`~monitor.rules.snapshot.Snapshot`
into gauges — one sample per series and family, with the series' labels — without
keeping a ``Gauge`` object per series. It is a regular ``prometheus_client`` collector
(:meth:`IndicatorCollector.collect`), and it also writes its families straight to the
text exposition format (:meth:`IndicatorCollector.render`): that path is what
``/metrics`` serves, because the generic one is too slow for 100,000 series.

Families (``docs/metrics.md`` documents each)::

    monitor_indicator_value{indicator, <series labels>}
    monitor_indicator_target{indicator, <series labels>}
    monitor_indicator_status{indicator, <series labels>}      -2 not rated … 3 red
    monitor_indicator_change_ratio{indicator, <series labels>, window}
    monitor_indicator_last_period_timestamp_seconds{indicator, <series labels>}
    monitor_indicator_spc_variation{indicator, <series labels>}  -1 concern … 2 neither
    monitor_indicator_series{indicator}
    monitor_indicator_series_dropped
    monitor_indicator_data_period_timestamp_seconds   what the values are about
    monitor_indicator_evaluated_timestamp_seconds     when the daemon evaluated them
    monitor_alerts{alertname, state, severity}
    monitor_alerts_suppressed{alertname, by}          muted by a silence or an inhibition
    monitor_milestones{source, status}

Label names are sanitised to Prometheus' rules (``[a-zA-Z_][a-zA-Z0-9_]*``, no leading
``__``). The ``indicator`` label always carries the indicator id; a series label that
would collide with ``indicator`` or ``window`` is exported as ``exported_<name>``, the
way Prometheus renames a target's conflicting labels.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from monitor.clock import Clock, SystemClock
from monitor.http.observed import SourcedMilestone, Suppressed
from monitor.model import AlertState, Frequency, Status
from monitor.rules.snapshot import IndicatorFrame, IntArray, SeriesDetail, Snapshot

MILESTONE_STATES = ("open", "overdue", "done", "done_late")
ALERT_STATES = (AlertState.PENDING.value, AlertState.FIRING.value)
RESERVED_LABELS = frozenset({"indicator", "window"})

STATUS_HELP = ("RAG status of the series' latest value: " + ", ".join(
    f"{s.code} {s.word}" for s in sorted(Status, key=lambda s: s.code)) + ".")


@dataclass(frozen=True)
class Family:
    name: str
    help: str


VALUE = Family("monitor_indicator_value",
               "Headline value of the series for its latest period, in the indicator's unit.")
TARGET = Family("monitor_indicator_target",
                "Target for the series' latest period (absent when there is none).")
STATUS = Family("monitor_indicator_status", STATUS_HELP)
CHANGE = Family("monitor_indicator_change_ratio",
                "Change of the series over a comparison window as a ratio (-0.078 = -7.8%).")
LAST_PERIOD = Family("monitor_indicator_last_period_timestamp_seconds",
                     "Unix time of the start of the series' latest period with data.")
SPC = Family("monitor_indicator_spc_variation",
             "SPC variation of the series' latest period: -1 special cause concern, 0 common "
             "cause, 1 special cause improvement, 2 special cause neither good nor bad.")
SERIES = Family("monitor_indicator_series", "Series the engine holds per indicator.")
DROPPED = Family("monitor_indicator_series_dropped",
                 "Series left out of this exposition by server.max_exported_series.")
DATA_PERIOD = Family("monitor_indicator_data_period_timestamp_seconds",
                     "Unix time of the start of the latest period any series has data for: "
                     "what the values are about (data to Jul-08).")
EVALUATED = Family("monitor_indicator_evaluated_timestamp_seconds",
                   "Unix time the daemon evaluated the values shown, on its clock.")
ALERTS = Family("monitor_alerts", "Active alerts by rule, state and severity label.")
SUPPRESSED = Family("monitor_alerts_suppressed",
                    "Firing and pending alerts a silence or an inhibition mutes, by rule and "
                    "by what mutes them (silenced, inhibited): Alertmanager's suppressed state.")
MILESTONES = Family("monitor_milestones",
                    "Plan milestones by source and status (open, overdue, done, done_late).")
SCORECARD = Family("monitor_scorecard_status",
                   "RAG status of each series the scorecard shows (its rows at /scorecard: "
                   "each reported indicator's subject series), coded as "
                   "monitor_indicator_status.")
SERVER = Family("monitor_server_info",
                "Always 1; the external_url label is server.external_url, the address of "
                "the daemon's pages (the dashboard links to it).")

_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def sanitize_label_name(name: str) -> str:
    """Return ``name`` made a valid Prometheus label name.

    Characters outside ``[a-zA-Z0-9_]`` become ``_``; a leading digit gets a ``_``
    prefix; a leading run of underscores (``__`` is reserved) shrinks to one.
    """
    out = _INVALID.sub("_", name) or "_"
    if out[0].isdigit():
        out = "_" + out
    if out.startswith("__"):
        out = "_" + out.lstrip("_")
    return out


def export_label_names(keys: Iterable[str]) -> list[str]:
    """Return the exported label name for each series label key, in order.

    Sanitises each name, renames names that collide with the exporter's own labels
    (``indicator``, ``window``) to ``exported_<name>``, and makes later duplicates
    unique by the same prefix.
    """
    taken = set(RESERVED_LABELS)
    out = []
    for key in keys:
        name = sanitize_label_name(key)
        while name in taken:
            name = "exported_" + name
        taken.add(name)
        out.append(name)
    return out


def escape_label_value(value: str) -> str:
    """Return ``value`` escaped for a quoted label value in the text exposition format."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def go_float(value: float) -> str:
    """Return ``value`` as the exposition format writes floats (``+Inf``, ``NaN``, ``0.5``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


SPC_CODES = {"improvement": 1.0, "concern": -1.0, "neither": 2.0}


def spc_codes(categories: npt.NDArray[np.str_]) -> npt.NDArray[np.float64]:
    """Return the number of each published SPC category (``concern_high`` -> -1).

    Only the encoding of the published category; the side (high, low) is left out.
    """
    out = np.zeros(len(categories))
    for prefix, code in SPC_CODES.items():
        out[np.char.startswith(categories.astype(np.str_), prefix)] = code
    return out


def period_start_seconds(frequency: str, periods: IntArray) -> IntArray:
    """Return the Unix time (UTC midnight) at which each period ordinal starts.

    Raises ValueError for an unknown frequency.
    """
    freq = Frequency(frequency)
    p = periods.astype(np.int64)
    if freq is Frequency.MONTHLY:
        months = (p - 1970 * 12).astype("datetime64[M]")
        return months.astype("datetime64[s]").astype(np.int64)
    if freq is Frequency.QUARTERLY:
        months = (p * 3 - 1970 * 12).astype("datetime64[M]")
        return months.astype("datetime64[s]").astype(np.int64)
    if freq is Frequency.ANNUAL:
        return (p - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)
    days = p * 7 + 1 - date(1970, 1, 1).toordinal()
    return days * 86400


@dataclass
class _Slice:
    """One frame's exported part: its first ``take`` series."""

    frame: IndicatorFrame
    take: int


class IndicatorCollector(Collector):
    """Reads the engine's snapshot at scrape time; see the module docstring for families."""

    def __init__(self, snapshot: Callable[[], Snapshot], *,
                 max_series: Callable[[], int] | int = 200_000,
                 milestones: Callable[[], Sequence[SourcedMilestone]] | None = None,
                 clock: Clock | None = None,
                 scorecard: Callable[[], Sequence[SeriesDetail]] | None = None,
                 external_url: Callable[[], str] | None = None,
                 suppressed: Callable[[], Mapping[str, Suppressed]] | None = None) -> None:
        self._snapshot = snapshot
        self._scorecard = scorecard or (lambda: [])
        self._external_url = external_url or (lambda: "")
        self._suppressed = suppressed or (lambda: {})
        self._max_series = max_series if callable(max_series) else (lambda: max_series)
        self._milestones = milestones or (lambda: [])
        self._clock = clock or SystemClock()
        self._names: dict[tuple[str, ...], list[str]] = {}

    # --- shared planning ---------------------------------------------------------------

    def _plan(self, snap: Snapshot) -> tuple[list[_Slice], int]:
        """Return the frame slices to export under the cap, and how many series are dropped."""
        remaining = max(0, self._max_series())
        slices, dropped = [], 0
        for frame in snap.frames.values():
            n = len(frame.labels)
            take = min(n, remaining)
            remaining -= take
            dropped += n - take
            slices.append(_Slice(frame, take))
        return slices, dropped

    def _exported_names(self, keys: tuple[str, ...]) -> list[str]:
        names = self._names.get(keys)
        if names is None:
            names = export_label_names(keys)
            if len(self._names) > 10_000:
                self._names.clear()
            self._names[keys] = names
        return names

    def _suppressed_counts(self, snap: Snapshot) -> dict[tuple[str, str], int]:
        """Return muted firing and pending alerts by (alertname, silenced|inhibited), with
        a zero for each rule that has such alerts and each cause."""
        muted = self._suppressed()
        counts: dict[tuple[str, str], int] = {}
        for alert in snap.alerts:
            if alert.state.value not in ("firing", "pending"):
                continue
            for by in ("silenced", "inhibited"):
                counts.setdefault((alert.rule, by), 0)
            why = muted.get(alert.fingerprint)
            if why is not None:
                by = "silenced" if why.silenced_by else "inhibited"
                counts[(alert.rule, by)] += 1
        return dict(sorted(counts.items()))

    def _alert_counts(self, snap: Snapshot) -> dict[tuple[str, str, str], int]:
        """Return active alerts counted by (alertname, state, severity), zeros pre-created.

        Every rule in the snapshot gets a zero for each active state it has no alert in,
        with the severity its alerts carry (``none`` when it has none), so panels show 0
        rather than "no data".
        """
        counts: Tally[tuple[str, str, str]] = Tally()
        severity_of: dict[str, str] = {}
        for alert in snap.alerts:
            severity = alert.labels.get("severity", "") or "none"
            severity_of.setdefault(alert.rule, severity)
            if alert.state.value in ALERT_STATES:
                counts[(alert.rule, alert.state.value, severity)] += 1
        out = dict(counts)
        seen = {(rule, state) for rule, state, _ in counts}
        for rule in snap.rules:
            for state in ALERT_STATES:
                if (rule.name, state) not in seen:
                    out[(rule.name, state, severity_of.get(rule.name, "none"))] = 0
        return dict(sorted(out.items()))

    def _milestone_counts(self) -> dict[tuple[str, str], int]:
        at = self._snapshot().at
        today = at.date() if at is not None else self._clock.now().date()
        counts: dict[tuple[str, str], int] = {}
        for item in self._milestones():
            for state in MILESTONE_STATES:
                counts.setdefault((item.source, state), 0)
            counts[(item.source, item.milestone.state(today))] += 1
        return dict(sorted(counts.items()))

    # --- the generic collector path ----------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """Yield the families as ``prometheus_client`` metrics (slow; for registries)."""
        snap = self._snapshot()
        slices, dropped = self._plan(snap)
        value, target, status, change, last, spc = (
            Metric(f.name, f.help, "gauge")
            for f in (VALUE, TARGET, STATUS, CHANGE, LAST_PERIOD, SPC))
        series = Metric(SERIES.name, SERIES.help, "gauge")
        for piece in slices:
            frame, info = piece.frame, piece.frame.info
            series.add_sample(SERIES.name, {"indicator": info.id}, float(len(frame.labels)))
            starts = period_start_seconds(info.frequency, frame.period[:piece.take])
            codes = spc_codes(frame.spc[:piece.take]) if frame.spc is not None else None
            for i in range(piece.take):
                raw = frame.labels[i]
                labels = {"indicator": info.id,
                          **dict(zip(self._exported_names(tuple(raw)), raw.values(),
                                     strict=True))}
                for metric, arr in ((value, frame.value), (target, frame.target)):
                    if not math.isnan(arr[i]):
                        metric.add_sample(metric.name, labels, float(arr[i]))
                status.add_sample(STATUS.name, labels, float(frame.status[i]))
                for window, ratios in frame.changes.items():
                    if not math.isnan(ratios[i]):
                        change.add_sample(CHANGE.name, {**labels, "window": window},
                                          float(ratios[i]))
                if frame.period[i] >= 0:
                    last.add_sample(LAST_PERIOD.name, labels, float(starts[i]))
                if codes is not None:
                    spc.add_sample(SPC.name, labels, float(codes[i]))
        yield from (value, target, status, change, last, spc, series)
        yield _single(DROPPED, float(dropped))
        for family, seconds in _times(snap):
            yield _single(family, seconds)
        alerts = Metric(ALERTS.name, ALERTS.help, "gauge")
        for (rule, state, severity), count in self._alert_counts(snap).items():
            alerts.add_sample(ALERTS.name, {"alertname": rule, "state": state,
                                            "severity": severity}, float(count))
        yield alerts
        suppressed = Metric(SUPPRESSED.name, SUPPRESSED.help, "gauge")
        for (rule, by), count in self._suppressed_counts(snap).items():
            suppressed.add_sample(SUPPRESSED.name, {"alertname": rule, "by": by}, float(count))
        yield suppressed
        milestones = Metric(MILESTONES.name, MILESTONES.help, "gauge")
        for (source, state), count in self._milestone_counts().items():
            milestones.add_sample(MILESTONES.name, {"source": source, "status": state},
                                  float(count))
        yield milestones
        rows = Metric(SCORECARD.name, SCORECARD.help, "gauge")
        for labels, code in self._scorecard_rows():
            rows.add_sample(SCORECARD.name, labels, code)
        yield rows
        server = Metric(SERVER.name, SERVER.help, "gauge")
        server.add_sample(SERVER.name, {"external_url": self._external_url()}, 1.0)
        yield server

    def _scorecard_rows(self) -> list[tuple[dict[str, str], float]]:
        """Return the exported labels and status code of every scorecard row."""
        out = []
        for row in self._scorecard():
            raw = row.labels
            labels = {"indicator": row.indicator.id,
                      **dict(zip(self._exported_names(tuple(raw)), raw.values(), strict=True))}
            out.append((labels, float(row.status.code)))
        return out

    # --- the fast path -----------------------------------------------------------------

    def render(self) -> str:
        """Return the families in the Prometheus text format (0.0.4), HELP and TYPE included.

        Produces the same samples as :meth:`collect`, formatted directly: the label text
        of each series is built once and shared by every family.
        """
        snap = self._snapshot()
        slices, dropped = self._plan(snap)
        families = (VALUE, TARGET, STATUS, CHANGE, LAST_PERIOD, SPC, SERIES)
        out: dict[str, list[str]] = {f.name: [] for f in families}
        for piece in slices:
            self._render_frame(piece, out)
        parts: list[str] = []
        for family in families:
            parts.append(_header(family))
            parts.extend(out[family.name])
        parts.append(_header(DROPPED))
        parts.append(f"{DROPPED.name} {dropped}")
        for family, seconds in _times(snap):
            parts.append(_header(family))
            parts.append(f"{family.name} {go_float(seconds)}")
        parts.append(_header(ALERTS))
        for (rule, state, severity), count in self._alert_counts(snap).items():
            parts.append(f'{ALERTS.name}{{alertname="{escape_label_value(rule)}",'
                         f'severity="{escape_label_value(severity)}",state="{state}"}} {count}')
        parts.append(_header(SUPPRESSED))
        for (rule, by), count in self._suppressed_counts(snap).items():
            parts.append(f'{SUPPRESSED.name}{{alertname="{escape_label_value(rule)}",'
                         f'by="{by}"}} {count}')
        parts.append(_header(MILESTONES))
        for (source, state), count in self._milestone_counts().items():
            parts.append(f'{MILESTONES.name}{{source="{escape_label_value(source)}",'
                         f'status="{state}"}} {count}')
        parts.append(_header(SCORECARD))
        for labels, code in self._scorecard_rows():
            body = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
            parts.append(f"{SCORECARD.name}{{{body}}} {go_float(code)}")
        parts.append(_header(SERVER))
        parts.append(f'{SERVER.name}{{external_url="{escape_label_value(self._external_url())}"}}'
                     " 1.0")
        parts.append("")
        return "\n".join(parts)

    def _render_frame(self, piece: _Slice, out: dict[str, list[str]]) -> None:
        frame, take, info = piece.frame, piece.take, piece.frame.info
        out[SERIES.name].append(
            f'{SERIES.name}{{indicator="{escape_label_value(info.id)}"}} {len(frame.labels)}')
        if take == 0:
            return
        bodies = self._label_bodies(info.id, frame.labels, take)
        _values(out[VALUE.name], VALUE.name + "{", bodies, "}", frame.value[:take])
        _values(out[TARGET.name], TARGET.name + "{", bodies, "}", frame.target[:take])
        head = STATUS.name + "{"
        out[STATUS.name].extend([f"{head}{b}}} {s}" for b, s in
                                 zip(bodies, frame.status[:take].tolist(), strict=True)])
        for window, ratios in frame.changes.items():
            tail = f',window="{escape_label_value(window)}"}}'
            _values(out[CHANGE.name], CHANGE.name + "{", bodies, tail, ratios[:take])
        periods = frame.period[:take]
        starts = period_start_seconds(info.frequency, periods).tolist()
        head = LAST_PERIOD.name + "{"
        out[LAST_PERIOD.name].extend([f"{head}{bodies[i]}}} {starts[i]}"
                                      for i in np.flatnonzero(periods >= 0).tolist()])
        if frame.spc is not None:
            _values(out[SPC.name], SPC.name + "{", bodies, "}", spc_codes(frame.spc[:take]))

    def _label_bodies(self, indicator: str, series: Sequence[Mapping[str, str]],
                      take: int) -> list[str]:
        """Return ``indicator="…",name="value",…`` (no braces) for the first ``take`` series.

        Each distinct label layout gets a format string; a body whose quote count shows
        a value needing escapes is rebuilt with escaping (rare, and checked in C).
        """
        head = f'indicator="{escape_label_value(indicator)}"'
        out: list[str] = []
        last_keys: tuple[str, ...] | None = None
        fmt = head
        quotes = 0
        for labels in series[:take]:
            keys = tuple(labels)
            if keys != last_keys:
                names = self._exported_names(keys)
                literal = head.replace("{", "{{").replace("}", "}}")
                fmt = ",".join([literal, *(f'{n}="{{}}"' for n in names)])
                quotes = head.count('"') + 2 * len(names)
                last_keys = keys
            body = fmt.format(*labels.values())
            if body.count('"') != quotes or "\\" in body or "\n" in body:
                body = fmt.format(*map(escape_label_value, labels.values()))
            out.append(body)
        return out


def _values(out: list[str], head: str, bodies: Sequence[str], tail: str,
            arr: np.ndarray) -> None:
    """Append ``<head><body><tail> value`` for every non-NaN element of ``arr``."""
    finite = np.isfinite(arr)
    if finite.all():
        out.extend([f"{head}{b}{tail} {v!r}" for b, v in zip(bodies, arr.tolist(), strict=True)])
        return
    values = arr.tolist()
    keep = np.flatnonzero(~np.isnan(arr)).tolist()
    if finite.sum() == len(keep):
        out.extend([f"{head}{bodies[i]}{tail} {values[i]!r}" for i in keep])
    else:
        out.extend([f"{head}{bodies[i]}{tail} {go_float(values[i])}" for i in keep])


def _header(family: Family) -> str:
    return f"# HELP {family.name} {family.help}\n# TYPE {family.name} gauge"


def _times(snap: Snapshot) -> list[tuple[Family, float]]:
    """The two times of the values: the period they are about, and when they were
    evaluated (each absent until known)."""
    out: list[tuple[Family, float]] = []
    found = snap.data_period()
    if found is not None:
        freq, ordinal = found
        start = period_start_seconds(freq.value, np.array([ordinal], dtype=np.int64))
        out.append((DATA_PERIOD, float(start[0])))
    if snap.evaluated_at is not None:
        out.append((EVALUATED, snap.evaluated_at.timestamp()))
    return out


def _single(family: Family, value: float) -> Metric:
    metric = Metric(family.name, family.help, "gauge")
    metric.add_sample(family.name, {}, value)
    return metric


def exposition(registry: CollectorRegistry, indicators: IndicatorCollector) -> bytes:
    """Return the whole ``/metrics`` body: the registry's metrics, then the indicator families."""
    return generate_latest(registry) + indicators.render().encode()


class HttpMetrics:
    """Requests served by the HTTP server, by route, method and status code."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("monitor_http_requests_total",
                                "HTTP requests served, by route template, method and status.",
                                ["handler", "method", "code"], registry=registry)
        self.duration = Histogram("monitor_http_request_duration_seconds",
                                  "Time to serve an HTTP request, by route template.",
                                  ["handler"], registry=registry,
                                  buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))

    def observe(self, handler: str, method: str, code: int, started: float) -> None:
        """Count one request that started at ``started`` (``time.perf_counter()``)."""
        self.requests.labels(handler, method, str(code)).inc()
        self.duration.labels(handler).observe(time.perf_counter() - started)


def status_name(code: int) -> str:
    """Return the status name for a ``Status.code`` (``no_data`` for an unknown number)."""
    return next((s.value for s in Status if s.code == code), Status.NO_DATA.value)
