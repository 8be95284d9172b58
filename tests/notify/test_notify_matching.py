"""Matchers, the routing tree, time intervals, silences and inhibition: pure, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.matchers import Matcher, MatcherError, parse_matchers
from monitor.notify.config import NotifyConfig, RouteConfig
from monitor.notify.inhibit import inhibited, rules_from_config
from monitor.notify.notification import NotifyAlert
from monitor.notify.routing import build_tree, group_key, group_labels
from monitor.notify.silences import Silence, SilenceSpec, expire, new_silence, validate
from monitor.notify.timeintervals import TimeIntervalConfig, TimeIntervalSpec

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # a Friday


# --- matchers ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    pytest.param('borough="Camden"', [Matcher("borough", "Camden", "=")], id="equal"),
    pytest.param('borough!="Camden"', [Matcher("borough", "Camden", "!=")], id="not-equal"),
    pytest.param('alertname=~"Burg.*"', [Matcher("alertname", "Burg.*", "=~")], id="regex"),
    pytest.param('alertname!~"Burg.*"', [Matcher("alertname", "Burg.*", "!~")], id="not-regex"),
    pytest.param("severity=critical", [Matcher("severity", "critical")], id="bare-value"),
    pytest.param('{a="1", b=~"x|y"}', [Matcher("a", "1"), Matcher("b", "x|y", "=~")],
                 id="braces-and-commas"),
    pytest.param(r'note="say \"hi\", then \\ go"', [Matcher("note", 'say "hi", then \\ go')],
                 id="escapes-and-comma-inside-quotes"),
])
def test_it_parses_alertmanager_matchers(text: str, expected: list[Matcher]) -> None:
    assert parse_matchers(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("borough", "expected a matcher", id="no-operator"),
    pytest.param('borough="Camden', "is not closed", id="unclosed-quote"),
    pytest.param('a="1" b="2"', "expected ',' between matchers", id="missing-comma"),
    pytest.param('a=~"("', "invalid regular expression", id="bad-regex"),
    pytest.param("", "no matcher found", id="empty"),
])
def test_it_rejects_bad_matchers_saying_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(MatcherError, match=message):
        parse_matchers(text)


@pytest.mark.parametrize(("matcher", "labels", "matches"), [
    pytest.param('borough="Camden"', {"borough": "Camden"}, True, id="equal-hit"),
    pytest.param('borough="Camden"', {"borough": "Camden Town"}, False, id="equal-miss"),
    pytest.param('team!="ops"', {}, True, id="missing-label-is-empty-for-not-equal"),
    pytest.param('team=""', {}, True, id="missing-label-equals-empty"),
    pytest.param('alertname=~"Burg"', {"alertname": "BurglaryRising"}, False,
                 id="regex-is-anchored"),
    pytest.param('alertname=~"Burg.*"', {"alertname": "BurglaryRising"}, True, id="regex-hit"),
    pytest.param('alertname!~"Burg.*"', {"alertname": "Robbery"}, True, id="not-regex-hit"),
])
def test_it_matches_labels_like_alertmanager(matcher: str, labels: dict[str, str],
                                             matches: bool) -> None:
    assert parse_matchers(matcher)[0].matches(labels) is matches


# --- routing ----------------------------------------------------------------------------

TREE = RouteConfig.model_validate({
    "receiver": "default", "group_by": ["alertname"], "group_wait": "30s",
    "group_interval": "5m", "repeat_interval": "4h",
    "routes": [
        {"matchers": ['severity="critical"'], "receiver": "oncall", "continue": True,
         "group_wait": "0s"},
        {"matchers": ['indicator=~"burglary|robbery"'], "receiver": "crime",
         "group_by": ["indicator", "borough"],
         "routes": [{"matchers": ['borough="Camden"'], "receiver": "camden",
                     "repeat_interval": "1h"}]},
        {"matchers": ['indicator="ksi"'], "group_by": ["..."]},
    ],
})


@pytest.mark.parametrize(("labels", "receivers"), [
    pytest.param({"alertname": "X", "indicator": "other"}, ["default"], id="no-child-root"),
    pytest.param({"alertname": "X", "indicator": "burglary", "borough": "Hackney"}, ["crime"],
                 id="first-matching-child"),
    pytest.param({"alertname": "X", "indicator": "burglary", "borough": "Camden"}, ["camden"],
                 id="deepest-match"),
    pytest.param({"alertname": "X", "severity": "critical", "indicator": "robbery"},
                 ["oncall", "crime"], id="continue-goes-on-to-siblings"),
    pytest.param({"alertname": "X", "severity": "critical"}, ["oncall"],
                 id="continue-without-other-match"),
    pytest.param({"alertname": "X", "indicator": "ksi"}, ["default"],
                 id="receiver-inherited"),
])
def test_it_routes_depth_first_with_continue(labels: dict[str, str],
                                             receivers: list[str]) -> None:
    routes = build_tree(TREE).match(labels)
    assert [r.options.receiver for r in routes] == receivers


def test_it_inherits_group_settings_from_the_parent() -> None:
    camden = build_tree(TREE).match({"indicator": "burglary", "borough": "Camden"})[0]
    assert camden.options.group_by == ("indicator", "borough")  # from "crime"
    assert camden.options.group_wait == 30  # from the root
    assert camden.options.group_interval == 300
    assert camden.options.repeat_interval == 3600  # its own
    oncall = build_tree(TREE).match({"severity": "critical"})[0]
    assert oncall.options.group_wait == 0


@pytest.mark.parametrize(("labels", "expected"), [
    pytest.param({"alertname": "A", "indicator": "robbery", "borough": "Brent", "x": "1"},
                 {"indicator": "robbery", "borough": "Brent"}, id="named-labels"),
    pytest.param({"alertname": "A", "indicator": "robbery"}, {"indicator": "robbery"},
                 id="missing-label-left-out"),
    pytest.param({"alertname": "A", "indicator": "ksi", "borough": "Brent"},
                 {"alertname": "A", "indicator": "ksi", "borough": "Brent"}, id="dots-all"),
])
def test_it_groups_by_the_routes_labels(labels: dict[str, str],
                                        expected: dict[str, str]) -> None:
    route = build_tree(TREE).match(labels)[0]
    assert group_labels(route.options, labels) == expected


def test_group_keys_name_the_route_and_the_group_labels() -> None:
    route = build_tree(TREE).match({"indicator": "robbery", "borough": "Brent"})[0]
    key = group_key(route, {"borough": "Brent", "indicator": "robbery"})
    assert key == '{}/{indicator=~"burglary|robbery"}:{borough="Brent",indicator="robbery"}'
    long = group_key(route, {"borough": "x" * 600})
    assert len(long) <= 500 and long != group_key(route, {"borough": "x" * 601})


# --- time intervals ---------------------------------------------------------------------

def spec(**fields: Any) -> TimeIntervalSpec:
    return TimeIntervalSpec.model_validate(fields)


@pytest.mark.parametrize(("fields", "at", "inside"), [
    pytest.param({"times": [{"start_time": "09:00", "end_time": "17:00"}]},
                 NOW, True, id="start-inclusive"),
    pytest.param({"times": [{"start_time": "09:00", "end_time": "17:00"}]},
                 NOW.replace(hour=17), False, id="end-exclusive"),
    pytest.param({"times": [{"start_time": "00:00", "end_time": "24:00"}]},
                 NOW.replace(hour=23, minute=59), True, id="until-midnight"),
    pytest.param({"weekdays": ["monday:friday"]}, NOW, True, id="weekday-range"),
    pytest.param({"weekdays": ["saturday", "sunday"]}, NOW, False, id="weekend-list"),
    pytest.param({"weekdays": ["friday:monday"]}, NOW + timedelta(days=2), True,
                 id="wrapping-weekdays"),
    pytest.param({"days_of_month": ["-3:-1"]}, NOW.replace(day=28), True,
                 id="last-three-days"),
    pytest.param({"days_of_month": ["-3:-1"]}, NOW, False, id="not-last-three-days"),
    pytest.param({"months": ["november:december"], "years": ["2026"]}, NOW, True,
                 id="months-and-years"),
    pytest.param({"months": ["1:3"]}, NOW, False, id="numeric-months"),
    # 09:30 UTC in July is 10:30 in London (BST); in November it is 09:30.
    pytest.param({"times": [{"start_time": "10:00", "end_time": "11:00"}],
                  "location": "Europe/London"},
                 datetime(2026, 7, 1, 9, 30, tzinfo=UTC), True, id="zone-summer-time"),
    pytest.param({"times": [{"start_time": "10:00", "end_time": "11:00"}],
                  "location": "Europe/London"},
                 datetime(2026, 11, 2, 9, 30, tzinfo=UTC), False, id="zone-winter-time"),
    pytest.param({"weekdays": ["saturday:sunday"], "location": "Pacific/Auckland"},
                 datetime(2026, 11, 27, 12, 0, tzinfo=UTC), True,
                 id="zone-moves-the-day"),  # Friday noon UTC is Saturday 01:00 in Auckland
])
def test_it_contains_instants_like_alertmanager(fields: dict[str, Any], at: datetime,
                                               inside: bool) -> None:
    assert spec(**fields).contains(at) is inside


@pytest.mark.parametrize(("fields", "message"), [
    pytest.param({"times": [{"start_time": "17:00", "end_time": "09:00"}]},
                 "cannot cross midnight", id="backwards-times"),
    pytest.param({"times": [{"start_time": "9am", "end_time": "10:00"}]},
                 "is not a time of day", id="bad-clock"),
    pytest.param({"weekdays": ["funday"]}, "is not a weekday", id="bad-weekday"),
    pytest.param({"days_of_month": ["0"]}, "is not a day of the month", id="day-zero"),
    pytest.param({"months": ["march:january"]}, "the start is after the end", id="months"),
    pytest.param({"location": "Mars/Olympus"}, "is not an IANA time zone", id="zone"),
])
def test_it_rejects_bad_time_intervals(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec(**fields)


def test_a_named_interval_contains_an_instant_when_any_spec_does() -> None:
    interval = TimeIntervalConfig.model_validate({"name": "off-hours", "time_intervals": [
        {"weekdays": ["saturday:sunday"]},
        {"times": [{"start_time": "00:00", "end_time": "08:00"}]}]})
    assert interval.contains(NOW.replace(hour=7))
    assert not interval.contains(NOW)


# --- silences ---------------------------------------------------------------------------

def silence_spec(**changes: Any) -> SilenceSpec:
    base: dict[str, Any] = {"matchers": tuple(parse_matchers('borough="Camden"')),
                            "starts_at": NOW, "ends_at": NOW + timedelta(hours=2),
                            "created_by": "alice", "comment": "data reload", "recurrence": None}
    base.update(changes)
    return SilenceSpec(**base)


@pytest.mark.parametrize(("changes", "message"), [
    pytest.param({"matchers": ()}, "at least one matcher", id="no-matchers"),
    pytest.param({"matchers": tuple(parse_matchers('team=~".*"'))},
                 "must not match an empty label", id="matches-everything"),
    pytest.param({"ends_at": NOW}, "the end must be after the start", id="empty-window"),
    pytest.param({"starts_at": NOW - timedelta(hours=3), "ends_at": NOW - timedelta(hours=1)},
                 "already in the past", id="in-the-past"),
    pytest.param({"created_by": " "}, "created_by", id="no-author"),
    pytest.param({"comment": ""}, "comment", id="no-comment"),
])
def test_it_refuses_an_invalid_silence_naming_the_field(changes: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate(silence_spec(**changes), NOW)


def test_a_silence_is_pending_then_active_then_expired_and_kept() -> None:
    silence = new_silence(silence_spec(starts_at=NOW + timedelta(hours=1),
                                       ends_at=NOW + timedelta(hours=3)), NOW, "s1")
    camden = {"borough": "Camden"}
    assert silence.state(NOW) == "pending" and not silence.mutes(camden, NOW)
    later = NOW + timedelta(hours=2)
    assert silence.state(later) == "active" and silence.mutes(camden, later)
    assert not silence.mutes({"borough": "Brent"}, later)
    expired = expire(silence, later)
    assert expired.state(later) == "expired" and expired.ends_at == silence.ends_at
    assert expired.expired_at == later and not expired.mutes(camden, later)


def test_a_recurring_silence_mutes_only_inside_its_recurrence() -> None:
    weekends = TimeIntervalSpec.model_validate({"weekdays": ["saturday:sunday"],
                                                "location": "Europe/London"})
    silence: Silence = new_silence(silence_spec(ends_at=NOW + timedelta(days=60),
                                                recurrence=weekends), NOW)
    camden = {"borough": "Camden"}
    assert not silence.mutes(camden, NOW)  # Friday
    assert silence.mutes(camden, NOW + timedelta(days=1))  # Saturday
    assert silence.mutes(camden, NOW + timedelta(days=8))  # the next Saturday
    assert not silence.mutes(camden, NOW + timedelta(days=3))  # Monday


# --- inhibition -------------------------------------------------------------------------

def alert(alert_id: str, status: str = "firing", **labels: str) -> NotifyAlert:
    return NotifyAlert(alert_id, labels.get("alertname", "A"), labels, {}, status, 1.0, "",
                       NOW)


def rules(*configured: dict[str, Any], failing_source: bool = True) -> list[Any]:
    config = NotifyConfig.model_validate({"inhibit_rules": list(configured),
                                          "inhibit_by_failing_source": failing_source})
    return rules_from_config(config)


CRITICAL_MUTES_WARNING = {"source_matchers": ['severity="critical"'],
                          "target_matchers": ['severity="warning"'], "equal": ["borough"]}


@pytest.mark.parametrize(("alerts", "muted"), [
    pytest.param([alert("c", severity="critical", borough="Camden"),
                  alert("w", severity="warning", borough="Camden")], {"w"}, id="equal-labels"),
    pytest.param([alert("c", severity="critical", borough="Brent"),
                  alert("w", severity="warning", borough="Camden")], set(), id="unequal"),
    pytest.param([alert("c", "resolved", severity="critical", borough="Camden"),
                  alert("w", severity="warning", borough="Camden")], set(),
                 id="resolved-source-does-not-inhibit"),
    pytest.param([alert("c", severity="critical"), alert("w", severity="warning")], {"w"},
                 id="missing-equal-labels-are-equal"),
])
def test_it_inhibits_targets_while_a_source_fires(alerts: list[NotifyAlert],
                                                  muted: set[str]) -> None:
    found = inhibited(alerts, rules(CRITICAL_MUTES_WARNING, failing_source=False))
    assert set(found) == muted


def test_an_alert_matching_both_sides_does_not_inhibit_its_twin() -> None:
    both = {"source_matchers": ['alertname="Drop"'], "target_matchers": ['alertname="Drop"'],
            "equal": ["indicator"]}
    alerts = [alert("a", alertname="Drop", indicator="x", borough="Camden"),
              alert("b", alertname="Drop", indicator="x", borough="Brent")]
    assert inhibited(alerts, rules(both, failing_source=False)) == {}


def test_a_stale_source_inhibits_the_kpi_alerts_it_feeds_by_default() -> None:
    alerts = [alert("stale", alertname="SourceStale", source="met-crime"),
              alert("kpi1", alertname="BurglaryRising", source="met-crime"),
              alert("kpi2", alertname="BurglaryRising", source="dft-ksi"),
              alert("nosrc", alertname="BurglaryRising")]
    found = inhibited(alerts, rules())
    assert set(found) == {"kpi1"}
    assert "inhibit_by_failing_source" in found["kpi1"]
    assert inhibited(alerts, rules(failing_source=False)) == {}
