"""The pipeline's decisions: grouping, dedup against the log, repeat, muting — pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest

from monitor.matchers import parse_matchers
from monitor.notify.config import NotifyConfig
from monitor.notify.notification import NotifyAlert
from monitor.notify.pipeline import Flow, LogEntry, PipelineState, build_pipeline, decide
from monitor.notify.silences import SilenceSpec, new_silence

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # a Friday


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def alert(alert_id: str, status: str = "firing", start: float = 0, end: float | None = None,
          value: float = 1.0, **labels: str) -> NotifyAlert:
    labels = {"alertname": "BurglaryRising", "borough": alert_id, **labels}
    return NotifyAlert(alert_id, labels["alertname"], labels, {"summary": f"s {alert_id}"},
                       status, value, f"explained {alert_id}", at(start),
                       at(end) if end is not None else None)


def entry(firing: set[str], resolved: set[str] = frozenset(), sent: float = 0,  # type: ignore[assignment]
          thread: str = "t0") -> LogEntry:
    return LogEntry("ops", "k", frozenset(firing), frozenset(resolved), at(sent), thread)


GW, GI, RI = 30.0, 300.0, 3600.0


@pytest.mark.parametrize(("visible", "log", "send_resolved", "now", "expected"), [
    pytest.param([alert("a")], None, True, 10, (False, "waiting for group_wait", 30),
                 id="new-group-waits"),
    pytest.param([alert("a")], None, True, 30, (True, "group_wait elapsed", 30),
                 id="new-group-after-wait"),
    pytest.param([alert("a", "resolved", end=5)], None, True, 60,
                 (False, "no firing alerts", None), id="resolved-before-anyone-knew"),
    pytest.param([alert("a"), alert("b", start=100)], entry({"a"}, sent=30), True, 200,
                 (False, "new firing alerts; waiting for group_interval", 330),
                 id="new-alert-waits-for-interval"),
    pytest.param([alert("a"), alert("b", start=100)], entry({"a"}, sent=30), True, 330,
                 (True, "new firing alerts; group_interval elapsed", 330),
                 id="new-alert-after-interval"),
    pytest.param([alert("a"), alert("b", "resolved", end=100)], entry({"a", "b"}, sent=30),
                 True, 330, (True, "alerts resolved; group_interval elapsed", 330),
                 id="resolution-sent-when-wanted"),
    pytest.param([alert("a"), alert("b", "resolved", end=100)], entry({"a", "b"}, sent=30),
                 False, 330, (False, "unchanged since the last message", 3630),
                 id="resolution-not-sent-when-unwanted"),
    pytest.param([alert("a", "resolved", end=100)], entry({"a"}, sent=30), False, 330,
                 (True, "all alerts resolved; group_interval elapsed", 330),
                 id="all-resolved-always-recorded"),
    pytest.param([alert("a")], entry({"a"}, sent=30), True, 1000,
                 (False, "unchanged since the last message", 3630), id="no-change"),
    pytest.param([alert("a")], entry({"a"}, sent=30), True, 3630,
                 (True, "repeat_interval elapsed", 3630), id="repeat"),
    pytest.param([alert("a")], entry({"a", "b"}, sent=30), True, 3000,
                 (False, "unchanged since the last message", 3630),
                 id="subset-of-what-was-said-is-no-change"),
    pytest.param([alert("a")], entry(set(), {"x"}, sent=30), True, 40,
                 (True, "new group; group_wait elapsed", 30), id="dormant-group-is-new"),
])
def test_it_decides_like_alertmanagers_dedup_stage(
        visible: list[NotifyAlert], log: LogEntry | None, send_resolved: bool, now: float,
        expected: tuple[bool, str, float | None]) -> None:
    send, reason, due = decide(visible, log, GW, GI, RI, send_resolved, at(now))
    assert send is expected[0]
    assert expected[1] in reason
    assert due == (at(expected[2]) if expected[2] is not None else None)


def config(**route: Any) -> NotifyConfig:
    base: dict[str, Any] = {"receiver": "ops", "group_by": ["alertname"], "group_wait": "30s",
                            "group_interval": "5m", "repeat_interval": "1h"}
    base.update(route)
    return NotifyConfig.model_validate({
        "route": base,
        "receivers": [{"name": "ops", "webhook": [{"url": "http://127.0.0.1:1/ops"}]},
                      {"name": "quiet", "send_resolved": False,
                       "webhook": [{"url": "http://127.0.0.1:1/quiet"}]},
                      {"name": "night", "webhook": [{"url": "http://127.0.0.1:1/night"}]}],
        "time_intervals": [{"name": "weekends",
                            "time_intervals": [{"weekdays": ["saturday:sunday"]}]}],
    })


IDS = count(1)


def run(cfg: NotifyConfig, alerts: list[NotifyAlert], now: float,
        log: dict[tuple[str, str], LogEntry] | None = None, silences: list[Any] | None = None
        ) -> Flow:
    ids = IDS
    state = PipelineState(silences=silences or [], log=log or {})
    return build_pipeline(cfg, state, external_url="http://monitor",
                          new_id=lambda: f"m{next(ids)}").run(alerts, at(now))


def logged(flow: Flow) -> dict[tuple[str, str], LogEntry]:
    return {(o.entry.receiver, o.entry.group_key): o.entry for o in flow.outgoing}


def test_build_pipeline_lists_the_stages_in_order() -> None:
    pipeline = build_pipeline(config(), PipelineState())
    assert pipeline.names == ["silence", "inhibit", "group", "time_intervals", "dedup",
                              "messages", "retention"]


def test_it_groups_alerts_and_sends_one_message_per_group_after_group_wait() -> None:
    cfg = config()
    alerts = [alert("camden"), alert("brent"), alert("x", alertname="RobberyRising")]
    assert run(cfg, alerts, 10).outgoing == ()
    flow = run(cfg, alerts, 30)
    messages = [o.notification for o in flow.outgoing]
    assert sorted((n.group_labels["alertname"], len(n.alerts)) for n in messages if n) == [
        ("BurglaryRising", 2), ("RobberyRising", 1)]
    first = messages[0]
    assert first is not None and first.is_thread_start and first.external_url == "http://monitor"
    assert flow.next_due is None


def test_a_resolution_carries_the_value_at_resolution_and_continues_the_thread() -> None:
    cfg = config()
    fired = [alert("camden", value=6.1), alert("brent", value=4.8)]
    log = logged(run(cfg, fired, 30))
    resolved = [alert("camden", "resolved", end=100, value=2.2), alert("brent", value=4.8)]
    flow = run(cfg, resolved, 400, log)
    message = flow.outgoing[0].notification
    assert message is not None
    camden = next(a for a in message.alerts if a.alert_id == "camden")
    assert camden.status == "resolved" and camden.value == 2.2
    assert message.thread_id == log[("ops", flow.outgoing[0].entry.group_key)].thread_id
    assert not message.is_thread_start and flow.outgoing[0].entry.thread_id == message.thread_id
    assert flow.outgoing[0].entry.resolved == {"camden"}
    assert flow.removable == ("camden",)  # announced: no group needs it any more


def test_a_receiver_without_send_resolved_gets_no_resolved_alerts() -> None:
    cfg = config(receiver="quiet")
    log = logged(run(cfg, [alert("a"), alert("b")], 30))
    flow = run(cfg, [alert("a"), alert("b", "resolved", end=60)], 400, log)
    assert flow.outgoing == ()  # nothing new to say
    assert flow.removable == ()  # the receiver still believes b fires
    everything_resolved = run(cfg, [alert("a", "resolved", end=61),
                                    alert("b", "resolved", end=60)], 400, log)
    outgoing = everything_resolved.outgoing[0]
    assert outgoing.notification is None  # the log is updated, nothing is sent
    assert outgoing.entry.firing == frozenset()
    assert sorted(everything_resolved.removable) == ["a", "b"]


def test_a_group_whose_alerts_are_all_silenced_sends_nothing_not_a_false_resolution() -> None:
    cfg = config()
    log = logged(run(cfg, [alert("camden")], 30))
    silence = new_silence(SilenceSpec(tuple(parse_matchers('borough="camden"')), at(0),
                                      at(7200), "alice", "reload"), at(0))
    flow = run(cfg, [alert("camden")], 4000, log, [silence])
    assert flow.outgoing == ()
    assert any("silenced by" in line for line in flow.trace)
    assert flow.decisions[0].reason == "every alert is muted"


def test_a_silenced_alert_is_left_out_while_the_rest_of_its_group_is_sent() -> None:
    silence = new_silence(SilenceSpec(tuple(parse_matchers('borough="camden"')), at(0),
                                      at(7200), "alice", "reload"), at(0))
    flow = run(config(), [alert("camden"), alert("brent")], 30, silences=[silence])
    message = flow.outgoing[0].notification
    assert message is not None and [a.alert_id for a in message.alerts] == ["brent"]


def test_a_mute_time_interval_holds_the_group_until_it_ends() -> None:
    cfg = config(routes=[{"matchers": ['alertname=~".+"'], "receiver": "night",
                          "mute_time_intervals": ["weekends"]}])
    saturday = 86400.0
    held = run(cfg, [alert("a")], saturday + 30)
    assert held.outgoing == () and "muted by time interval weekends" in held.decisions[0].reason
    monday = 3 * 86400.0
    assert len(run(cfg, [alert("a")], monday).outgoing) == 1


def test_continue_sends_one_alert_to_two_receivers() -> None:
    cfg = config(routes=[{"matchers": ['alertname="BurglaryRising"'], "receiver": "night",
                          "continue": True},
                         {"matchers": ['borough="a"'], "receiver": "ops"}])
    flow = run(cfg, [alert("a")], 30)
    assert sorted(o.entry.receiver for o in flow.outgoing) == ["night", "ops"]


def test_it_records_the_earliest_newly_firing_alert_for_the_latency_metric() -> None:
    cfg = config()
    log = logged(run(cfg, [alert("a", start=0)], 30))
    flow = run(cfg, [alert("a", start=0), alert("b", start=120)], 400, log)
    assert flow.outgoing[0].first_fired_at == at(120)
    repeat = run(cfg, [alert("a", start=0)], 3700, log)
    assert repeat.outgoing[0].first_fired_at is None


def test_resolved_alerts_past_retention_are_dropped_even_if_unannounced() -> None:
    cfg = config(routes=[{"matchers": ['alertname=~".+"'], "receiver": "night",
                          "mute_time_intervals": ["weekends"]}])
    log = logged(run(cfg, [alert("a")], 30))
    still = run(cfg, [alert("a", "resolved", end=60)], 86400 + 3600, log)
    assert still.removable == ()
    short = cfg.model_copy(update={"resolved_retention": 3600.0})
    gone = run(short, [alert("a", "resolved", end=60)], 86400 + 3600, log)
    assert gone.removable == ("a",)
