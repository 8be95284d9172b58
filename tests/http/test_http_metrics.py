"""``/metrics``: the engine's state as gauges, read at scrape time, valid for promtool.

The collector reads the snapshots the real daemons publish on the examples; the
edge cases (escaping, collisions, infinities) use small hand-made frames.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.clock import FixedClock
from monitor.http.metrics import (
    IndicatorCollector,
    export_label_names,
    period_start_seconds,
    sanitize_label_name,
)
from monitor.http.observed import SourcedMilestone
from monitor.model import Alert, AlertState, Milestone, month
from monitor.observing import DaemonView
from monitor.rules.snapshot import IndicatorFrame, IndicatorInfo, RuleHealth, Snapshot
from tests.http.conftest import Served, need_binary

Sample = tuple[str, tuple[tuple[str, str], ...], float]
INDICATOR_FAMILIES = ("monitor_indicator_value", "monitor_indicator_target",
                      "monitor_indicator_status", "monitor_indicator_change_ratio",
                      "monitor_indicator_last_period_timestamp_seconds")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse exposition text into {(name, sorted labels): value}; fail on duplicates."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def same(a: dict[tuple[str, tuple[tuple[str, str], ...]], float],
         b: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def info(id: str = "burglary", frequency: str = "monthly") -> IndicatorInfo:
    return IndicatorInfo(id=id, name=id.title(), reference="", unit="count", direction="down",
                         frequency=frequency, aggregation="sum", window=12)


def frame(labels: list[dict[str, str]], *, id: str = "burglary", value: Iterable[float] = (),
          target: Iterable[float] = (), period: Iterable[int] = (),
          frequency: str = "monthly") -> IndicatorFrame:
    n = len(labels)
    return IndicatorFrame(
        info=info(id, frequency), labels=labels,
        period=np.array(list(period) or [month("2009-12")] * n, dtype=np.int64),
        value=np.array(list(value) or [1.0] * n, dtype=np.float64),
        target=np.array(list(target) or [np.nan] * n, dtype=np.float64),
        status=np.full(n, 1, dtype=np.int64), changes={"12m": np.full(n, -0.05)})


def snapshot(*frames: IndicatorFrame, alerts: list[Alert] | None = None,
             rules: list[RuleHealth] | None = None) -> Snapshot:
    return Snapshot(datetime(2010, 1, 5, tzinfo=UTC), {f.info.id: f for f in frames},
                    alerts or [], rules or [])


def test_it_exports_every_series_of_the_snapshot_with_its_labels(london: Served) -> None:
    snap = london.snapshot()
    got = samples(IndicatorCollector(london.snapshot).render())
    for ind, fr in snap.frames.items():
        for i, labels in enumerate(fr.labels):
            key = tuple(sorted({"indicator": ind, **labels}.items()))
            if math.isnan(fr.value[i]):
                assert ("monitor_indicator_value", key) not in got
            else:
                assert got[("monitor_indicator_value", key)] == fr.value[i]
            assert got[("monitor_indicator_status", key)] == fr.status[i]
            assert got[("monitor_indicator_last_period_timestamp_seconds", key)] == \
                datetime(2024, 1, 1, tzinfo=UTC).timestamp()
            for window, ratios in fr.changes.items():
                change = tuple(sorted({"indicator": ind, **labels, "window": window}.items()))
                if not math.isnan(ratios[i]):
                    assert got[("monitor_indicator_change_ratio", change)] == ratios[i]
            assert ("monitor_indicator_target", key) not in got  # the example sets none
        assert got[("monitor_indicator_series", (("indicator", ind),))] == len(fr.labels)
    assert got[("monitor_indicator_series_dropped", ())] == 0
    assert snap.evaluated_at is not None
    assert got[("monitor_indicator_evaluated_timestamp_seconds", ())] == \
        snap.evaluated_at.timestamp()  # the daemon's clock, not the data's month
    assert got[("monitor_indicator_data_period_timestamp_seconds", ())] == \
        datetime(2024, 1, 1, tzinfo=UTC).timestamp()  # data to Jan-24


def test_the_fast_path_says_exactly_what_the_generic_collector_says(mps: Served) -> None:
    collector = IndicatorCollector(mps.snapshot, milestones=DaemonView(mps.app).milestones,
                                   clock=mps.clock)
    registry = CollectorRegistry()
    registry.register(collector)
    fast = samples(collector.render())
    assert same(fast, samples(generate_latest(registry).decode()))
    assert any(k[0] == "monitor_indicator_target" for k in fast)
    assert any(k[0] == "monitor_milestones" for k in fast)


@pytest.mark.parametrize(("name", "exported"), [
    pytest.param("borough", "borough", id="valid"),
    pytest.param("Major Category", "Major_Category", id="space"),
    pytest.param("rate-per-1000", "rate_per_1000", id="dashes"),
    pytest.param("2008", "_2008", id="leading-digit"),
    pytest.param("__name__", "_name__", id="reserved-prefix"),
    pytest.param("zone.é", "zone__", id="non-ascii"),
    pytest.param("", "_", id="empty"),
])
def test_it_sanitises_label_names(name: str, exported: str) -> None:
    assert sanitize_label_name(name) == exported


@pytest.mark.parametrize(("keys", "exported"), [
    pytest.param(["indicator", "borough"], ["exported_indicator", "borough"],
                 id="indicator-label-renamed"),
    pytest.param(["window"], ["exported_window"], id="window-label-renamed"),
    pytest.param(["borough name", "borough_name"], ["borough_name", "exported_borough_name"],
                 id="collision-after-sanitising"),
])
def test_it_renames_colliding_labels_like_prometheus_does(keys: list[str],
                                                          exported: list[str]) -> None:
    assert export_label_names(keys) == exported


def test_a_series_label_called_indicator_does_not_replace_the_indicator_id() -> None:
    snap = snapshot(frame([{"indicator": "burglary-dwelling", "borough": "Camden"}]))
    got = samples(IndicatorCollector(lambda: snap).render())
    key = (("borough", "Camden"), ("exported_indicator", "burglary-dwelling"),
           ("indicator", "burglary"))
    assert got[("monitor_indicator_value", key)] == 1.0


def test_it_escapes_label_values_so_they_parse_back_unchanged() -> None:
    awkward = ['Kensington "Royal" Borough', "back\\slash", "two\nlines", "ünïcödé", "{}"]
    snap = snapshot(frame([{"borough": v} for v in awkward], value=[1, 2, 3, 4, 5]),
                    frame([{"borough": "x"}], id='odd "id" {x}'))
    got = samples(IndicatorCollector(lambda: snap).render())
    for i, value in enumerate(awkward, start=1):
        key = (("borough", value), ("indicator", "burglary"))
        assert got[("monitor_indicator_value", key)] == i
    assert got[("monitor_indicator_value",
                (("borough", "x"), ("indicator", 'odd "id" {x}')))] == 1.0


def test_it_leaves_out_unknown_values_and_writes_infinities_as_prometheus_does() -> None:
    snap = snapshot(frame([{"b": "a"}, {"b": "b"}, {"b": "c"}],
                          value=[np.nan, np.inf, -2.5], target=[1.0, np.nan, np.nan],
                          period=[-1, month("2009-11"), month("2009-12")]))
    text = IndicatorCollector(lambda: snap).render()
    got = samples(text)
    assert ("monitor_indicator_value", (("b", "a"), ("indicator", "burglary"))) not in got
    assert 'monitor_indicator_value{indicator="burglary",b="b"} +Inf' in text
    assert got[("monitor_indicator_value", (("b", "c"), ("indicator", "burglary")))] == -2.5
    assert [k for k in got if k[0] == "monitor_indicator_target"] == \
        [("monitor_indicator_target", (("b", "a"), ("indicator", "burglary")))]
    assert ("monitor_indicator_last_period_timestamp_seconds",
            (("b", "a"), ("indicator", "burglary"))) not in got


@pytest.mark.parametrize(("cap", "dropped"), [
    pytest.param(lambda n: n + 1, lambda n: 0, id="under-the-cap"),
    pytest.param(lambda n: n, lambda n: 0, id="exactly-the-cap"),
    pytest.param(lambda n: 100, lambda n: n - 100, id="cap-bites-mid-indicator"),
    pytest.param(lambda n: 0, lambda n: n, id="nothing-exported"),
])
def test_the_series_cap_limits_export_and_says_how_many_it_dropped(
        london: Served, cap: Callable[[int], int], dropped: Callable[[int], int]) -> None:
    total = sum(len(f.labels) for f in london.snapshot().frames.values())
    got = samples(IndicatorCollector(london.snapshot, max_series=lambda: cap(total)).render())
    assert sum(1 for k in got if k[0] == "monitor_indicator_status") == total - dropped(total)
    assert got[("monitor_indicator_series_dropped", ())] == dropped(total)
    assert sum(v for k, v in got.items() if k[0] == "monitor_indicator_series") == total


def test_alerts_are_counted_by_name_state_and_severity_with_zeros_for_quiet_rules(
        mps: Served) -> None:
    snap = mps.snapshot()
    got = samples(IndicatorCollector(mps.snapshot).render())
    alerts = {k[1]: v for k, v in got.items() if k[0] == "monitor_alerts"}
    for rule in snap.rules:
        mine = [a for a in snap.alerts if a.rule == rule.name]
        severity = mine[0].labels.get("severity", "none") if mine else "none"
        for state in (AlertState.FIRING, AlertState.PENDING):
            key = (("alertname", rule.name), ("severity", severity), ("state", state.value))
            assert alerts[key] == sum(1 for a in mine if a.state is state)
    assert alerts[(("alertname", "VictimSatisfactionBelowTarget"), ("severity", "warning"),
                   ("state", "firing"))] == 1
    assert alerts[(("alertname", "ResidentialBurglarySpecialCause"), ("severity", "none"),
                   ("state", "pending"))] == 0
    active = [a for a in snap.alerts if a.state in (AlertState.FIRING, AlertState.PENDING)]
    assert sum(alerts.values()) == len(active)


def test_resolved_alerts_are_not_counted_as_active() -> None:
    alerts = [Alert("R", {"severity": "page"}, state=AlertState.RESOLVED),
              Alert("R", {"severity": "page", "b": "2"}, state=AlertState.FIRING)]
    got = samples(IndicatorCollector(lambda: snapshot(alerts=alerts)).render())
    assert {k[1]: v for k, v in got.items() if k[0] == "monitor_alerts"} == {
        (("alertname", "R"), ("severity", "page"), ("state", "firing")): 1.0}


def test_milestones_are_counted_by_source_and_state_as_of_the_evaluation() -> None:
    items = [SourcedMilestone("ct", Milestone("1", "t", "o", date(2008, 6, 1), "done",
                                              date(2008, 6, 20))),
             SourcedMilestone("ct", Milestone("2", "t", "o", date(2008, 7, 1), "in_progress")),
             SourcedMilestone("ct", Milestone("3", "t", "o", date(2008, 9, 1), "not_started"))]
    # The evaluation replays July 2008; the wall clock says 2026: milestones are judged
    # on the evaluation's day.
    evaluated = Snapshot(datetime(2008, 7, 31, 12, tzinfo=UTC), {}, [], [])
    collector = IndicatorCollector(lambda: evaluated, milestones=lambda: items,
                                   clock=FixedClock(datetime(2026, 11, 27, tzinfo=UTC)))
    got = samples(collector.render())
    assert {k[1]: v for k, v in got.items() if k[0] == "monitor_milestones"} == {
        (("source", "ct"), ("status", "done")): 0, (("source", "ct"), ("status", "done_late")): 1,
        (("source", "ct"), ("status", "open")): 1, (("source", "ct"), ("status", "overdue")): 1}


@pytest.mark.parametrize(("frequency", "period", "start"), [
    pytest.param("monthly", month("2008-07"), date(2008, 7, 1), id="monthly"),
    pytest.param("monthly", month("1969-12"), date(1969, 12, 1), id="before-1970"),
    pytest.param("quarterly", 2008 * 4 + 2, date(2008, 7, 1), id="quarterly"),
    pytest.param("annual", 2008, date(2008, 1, 1), id="annual"),
    pytest.param("weekly", (date(2008, 7, 7).toordinal() - 1) // 7, date(2008, 7, 7),
                 id="weekly"),
])
def test_period_starts_are_utc_midnights(frequency: str, period: int, start: date) -> None:
    expected = datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()
    assert period_start_seconds(frequency, np.array([period])).tolist() == [expected]


def test_it_exports_the_published_spc_variation_as_a_number() -> None:
    fr = frame([{"b": "a"}, {"b": "b"}, {"b": "c"}, {"b": "d"}, {"b": "e"}],
               value=[1, 2, 3, 4, 5])
    fr.spc = np.array(["concern_high", "common_cause", "improvement_low", "neither_high",
                       "concern_low"])
    collector = IndicatorCollector(lambda: snapshot(fr))
    got = samples(collector.render())
    assert {k[1][0][1]: v for k, v in got.items()
            if k[0] == "monitor_indicator_spc_variation"} == {
        "a": -1.0, "b": 0.0, "c": 1.0, "d": 2.0, "e": -1.0}
    registry = CollectorRegistry()
    registry.register(collector)
    assert same(got, samples(generate_latest(registry).decode()))


def test_without_a_published_spc_variation_the_family_is_empty() -> None:
    got = samples(IndicatorCollector(lambda: snapshot(frame([{"b": "a"}]))).render())
    assert not [k for k in got if k[0] == "monitor_indicator_spc_variation"]


def test_the_snapshot_is_read_at_scrape_time() -> None:
    current = [snapshot(frame([{"b": "a"}], value=[1.0]))]
    collector = IndicatorCollector(lambda: current[0])
    assert "} 1.0" in collector.render()
    current[0] = snapshot(frame([{"b": "a"}], value=[7.0]))
    assert "} 7.0" in collector.render()


def test_the_served_metrics_pass_promtool_check_metrics(mps: Served) -> None:
    promtool = need_binary("promtool")
    with mps.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert ('monitor_indicator_value{indicator="victim_satisfaction",'
            'force="Metropolitan Police Service"} ') in text
    assert "monitor_http_requests_total" in text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
