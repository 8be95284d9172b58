"""Data sources down for hours: source alerts fire, the KPI alerts they feed are held and
inhibited (neither fired nor resolved on old data), and recovery is automatic."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.rules.loader import load_rules
from monitor.rules.sourcehealth import (
    FAILING,
    STALE,
    held_rules,
    indicator_sources,
    judge,
)
from monitor.sources.config import SourceBase
from monitor.store.sourcestate import SourceHealth
from tests.reliability.rig import Rig, alerts_in, build_rig, copy_example, example_config

# Noon on the day CT-07 ("clear the vetting backlog", in progress) falls due: it becomes
# overdue at midnight, in the middle of the outage below.
T0 = datetime(2008, 8, 15, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=15)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    copy_example(tmp_path)
    built = build_rig(tmp_path, example_config(tmp_path, interval="15m"), T0)
    try:
        yield built
    finally:
        built.close()


def names(notifications: list[dict[str, object]], status: str) -> list[tuple[str, str]]:
    """(alertname, milestone or indicator) of every alert notified with ``status``."""
    return [(a["labels"]["alertname"], a["labels"].get("milestone")
             or a["labels"].get("indicator") or a["labels"].get("source", ""))
            for s, a in alerts_in(notifications) if s == status]  # type: ignore[arg-type]


def test_it_holds_and_inhibits_kpi_alerts_while_sources_are_down_for_hours_then_recovers(
        rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rig.tick()
    rig.tick(STEP)
    before = rig.notifications()
    kpi_firing = names(before, "firing")
    assert ("CounterTerrorismMilestoneOverdue", "CT-05") in kpi_firing
    assert ("DomesticViolenceArrestRateBelowTarget", "dv_arrest_rate") in kpi_firing
    # Each KPI alert names the sources feeding it (an annotation, not its identity);
    # a milestone alert's own series carries its source as a label.
    assert all((a["labels"].get("source") or a["annotations"]["sources"])
               in ("mps-2008-09", "ct_plan") for _s, a in alerts_in(before))
    stored = rig.store.observations.count()

    # 12:15: both files vanish (a share unmounted, an export job broken) for 18 hours.
    data = tmp_path / "data"
    hidden = tmp_path / "hidden"
    data.rename(hidden)
    outage_start = rig.clock.now()
    held_seen = 0.0
    while rig.clock.now() < outage_start + timedelta(hours=18):
        rig.tick(STEP)
        held_seen = max(held_seen, rig.metric("monitor_rule_alerts_held") or 0.0)
    during = rig.notifications()[len(before):]

    # The two source alerts fired, per source, and said why.
    fired = names(during, "firing")
    for source in ("mps-2008-09", "ct_plan"):
        assert (STALE, source) in fired
        assert (FAILING, source) in fired
    stale = next(a for s, a in alerts_in(during)
                 if s == "firing" and a["labels"]["alertname"] == STALE)
    assert "has not been read successfully for" in stale["explanation"]
    assert "its KPI alerts are held until it recovers" in stale["explanation"]
    # Nothing about the KPIs: CT-07 fell due at midnight but was not fired on old data,
    # and nothing resolved.
    assert [n for n in fired if n[0] not in (STALE, FAILING)] == []
    assert names(during, "resolved") == []
    ct07 = [r for r in rig.rules.records.values() if r.labels.get("milestone") == "CT-07"]
    assert ct07 == []
    assert held_seen >= 1
    assert rig.metric("monitor_rule_sources_unhealthy") == 2
    assert rig.metric("monitor_source_polls_total", source="ct_plan", outcome="failed")
    assert any(r.getMessage() == "poll failed; previous data kept" for r in caplog.records)
    assert rig.store.observations.count() == stored  # the previous data is kept

    # 06:15 the next day: the files are back; recovery needs nobody. Polls of a source
    # that kept failing back off (up to 6 hours), so it may take until the next attempt.
    hidden.rename(data)
    back = rig.clock.now()
    recovered: set[str] = set()
    while len(recovered) < 2 and rig.clock.now() < back + timedelta(hours=7):
        polls = rig.tick(STEP)
        recovered |= {p.source for p in polls if p.ok}
    assert recovered == {"mps-2008-09", "ct_plan"}
    rig.tick(STEP)
    after = rig.notifications()[len(before) + len(during):]
    assert sorted(names(after, "resolved")) == sorted(
        [(STALE, "mps-2008-09"), (STALE, "ct_plan"), (FAILING, "mps-2008-09"),
         (FAILING, "ct_plan")])
    assert ("CounterTerrorismMilestoneOverdue", "CT-07") in names(after, "firing")
    ct07_alert = next(a for s, a in alerts_in(after) if a["labels"].get("milestone") == "CT-07")
    assert datetime.fromisoformat(ct07_alert["starts_at"]) >= back + STEP
    assert rig.metric("monitor_rule_sources_unhealthy") == 0
    assert rig.metric("monitor_rule_alerts_held") == 0
    # Alerts firing before the outage were neither resolved (only the four source alerts
    # were, above) nor announced again.
    assert ("DomesticViolenceArrestRateBelowTarget", "dv_arrest_rate") not in names(
        after, "firing")


# --- the pure pieces ----------------------------------------------------------------

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


def source(**extra: object) -> SourceBase:
    return SourceBase.model_validate({"name": "feed", "kind": "csv", **extra})


@pytest.mark.parametrize(("config", "health", "stale", "failing"), [
    pytest.param(source(interval="1h"), None, False, False, id="never-polled"),
    pytest.param(source(interval="1h"),
                 SourceHealth("feed", NOW - timedelta(hours=5), NOW, "", 0), False, False,
                 id="old-success-but-the-last-poll-worked"),
    pytest.param(source(interval="1h"),
                 SourceHealth("feed", NOW - timedelta(hours=2), NOW, "boom", 2), False, False,
                 id="two-failures-within-three-periods"),
    pytest.param(source(interval="1h"),
                 SourceHealth("feed", NOW - timedelta(hours=3, seconds=1), NOW, "boom", 1),
                 True, False, id="stale-after-three-periods"),
    pytest.param(source(interval="1h"),
                 SourceHealth("feed", NOW - timedelta(hours=1), NOW, "boom", 3), False, True,
                 id="failing-after-three-failures"),
    pytest.param(source(interval="1h"), SourceHealth("feed", None, NOW, "boom", 5), False,
                 True, id="never-succeeded-is-failing-not-stale"),
    pytest.param(source(cron="0 6 * * *"),
                 SourceHealth("feed", NOW - timedelta(days=2), NOW, "boom", 1), False, False,
                 id="daily-cron-two-days-is-not-stale"),
    pytest.param(source(cron="0 6 * * *"),
                 SourceHealth("feed", NOW - timedelta(days=3, hours=1), NOW, "boom", 1), True,
                 False, id="daily-cron-three-days-is-stale"),
])
def test_it_judges_stale_and_failing_sources(config: SourceBase, health: SourceHealth | None,
                                             stale: bool, failing: bool) -> None:
    verdict = judge(config, health, NOW)
    assert (verdict.stale, verdict.failing) == (stale, failing)


RULES = """
indicators:
  - {id: fed, name: Fed by feed, direction: down}
  - {id: other, name: Fed by other, direction: down}
  - {id: both, name: Fed by both, direction: down,
     derived: {sum: [fed, other]}}
groups:
  - name: g
    rules:
      - {alert: OnFed, indicator: fed, when: {level: {above: 1}}}
      - {alert: OnOther, indicator: other, when: {level: {above: 1}}}
      - {alert: OnBoth, indicator: both, when: {level: {above: 1}}}
      - {alert: OtherVersusFed, indicator: other,
         when: {all: [{level: {above: 1}}, {change: {indicator: fed, above: 0.05}}]}}
      - {alert: Plan, when: {milestones: {source: plan}}}
"""


@pytest.mark.parametrize(("unhealthy", "held"), [
    pytest.param({"feed"}, {"OnFed", "OnBoth", "OtherVersusFed"},
                 id="every-rule-reading-feed-directly-derived-or-in-its-condition"),
    pytest.param({"other"}, {"OnOther", "OnBoth", "OtherVersusFed"}, id="other-source"),
    pytest.param({"plan"}, {"Plan"}, id="milestone-source"),
    pytest.param(set(), set(), id="all-healthy"),
])
def test_it_holds_the_rules_that_read_an_unhealthy_source(
        tmp_path: Path, unhealthy: set[str], held: set[str]) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RULES)
    ruleset = load_rules([path])
    feeding = indicator_sources(ruleset, {"feed": ["fed"], "other": ["other"]})
    assert feeding["both"] == frozenset({"feed", "other"})
    got = held_rules(ruleset.rules, feeding, frozenset(unhealthy), ["plan"])
    assert {name for _group, name in got} == held
