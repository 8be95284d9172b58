"""The notifier end to end: engine transitions in the store → messages at real receivers."""

from __future__ import annotations

import json
import threading
import tracemalloc
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.clock import FixedClock
from monitor.matchers import parse_matchers
from monitor.notify.silences import SilenceSpec
from monitor.store import Store, open_store
from tests.notify.helpers import T0, make_notifier, notify_config, record
from tests.notify.loopback import LoopbackReceiver


def ops(hook: LoopbackReceiver, **extra: Any) -> dict[str, Any]:
    return {"name": "ops", "webhook": [{"url": hook.url()}], **extra}


def payloads(hook: LoopbackReceiver) -> list[dict[str, Any]]:
    assert all(not r.problems for r in hook.requests)
    return [r.payload for r in hook.requests]


def test_firing_then_resolved_reaches_the_receiver_with_the_value_at_resolution(
        store: Store, hook: LoopbackReceiver) -> None:
    clock = FixedClock(T0)
    config = notify_config([ops(hook)], route={"group_wait": "30s"})
    notifier = make_notifier(store, config, clock)
    record(store, "camden", "firing", T0, 6.1)
    record(store, "brent", "firing", T0, 4.8)
    assert notifier.process_transitions().messages == 0  # waiting for group_wait
    clock.advance(timedelta(seconds=30))
    assert notifier.process_transitions().messages == 1
    notifier.dispatch()
    [fired] = payloads(hook)
    assert fired["status"] == "firing" and len(fired["alerts"]) == 2
    clock.advance(timedelta(minutes=10))
    record(store, "camden", "resolved", clock.now(), 2.2)
    notifier.process_transitions()
    notifier.dispatch()
    resolved = payloads(hook)[1]
    camden = next(a for a in resolved["alerts"] if a["labels"]["borough"] == "camden")
    assert camden["status"] == "resolved"
    assert camden["annotations"]["value"] == "2.2"  # not the firing value 6.1
    assert camden["startsAt"] == "2026-11-27T09:00:00Z"
    assert camden["endsAt"] == "2026-11-27T09:10:30Z"
    # Nothing new: no message until the repeat interval.
    clock.advance(timedelta(minutes=5))
    assert notifier.flush().messages == 0
    clock.advance(timedelta(hours=1))
    assert notifier.flush().messages == 1
    notifier.dispatch()
    repeat = payloads(hook)[2]
    assert [a["labels"]["borough"] for a in repeat["alerts"]] == ["brent"]


def test_pending_transitions_are_claimed_but_never_notified(store: Store,
                                                            hook: LoopbackReceiver) -> None:
    notifier = make_notifier(store, notify_config([ops(hook)]))
    record(store, "camden", "pending", T0, 6.1, from_state="inactive")
    result = notifier.process_transitions()
    assert (result.claimed, result.messages) == (1, 0)
    assert notifier.process_transitions().claimed == 0


def test_a_stale_source_mutes_the_kpi_alerts_it_feeds(store: Store,
                                                      hook: LoopbackReceiver) -> None:
    notifier = make_notifier(store, notify_config([ops(hook)]))
    record(store, "camden", "firing", T0, 6.1, source="met-crime")
    record(store, "met-crime", "firing", T0, 1.0, alertname="SourceStale", source="met-crime")
    record(store, "ksi", "firing", T0, 3.0, alertname="KsiRising", source="dft")
    notifier.process_transitions()
    notifier.dispatch()
    names = sorted(a["labels"]["alertname"] for p in payloads(hook) for a in p["alerts"])
    assert names == ["KsiRising", "SourceStale"]


def test_a_silence_mutes_until_it_is_expired(store: Store, hook: LoopbackReceiver) -> None:
    clock = FixedClock(T0)
    notifier = make_notifier(store, notify_config([ops(hook)]), clock)
    silence = notifier.create_silence(SilenceSpec(
        tuple(parse_matchers('borough="camden"')), T0, T0 + timedelta(hours=2), "alice",
        "data reload in progress"))
    record(store, "camden", "firing", T0, 6.1)
    result = notifier.process_transitions()
    assert result.messages == 0 and any("silenced by" in t for t in result.trace)
    clock.advance(timedelta(minutes=1))
    notifier.expire_silence(silence.id)
    assert notifier.process_transitions().messages == 1
    assert [s.state(clock.now()) for s in notifier.silences()] == ["expired"]


def test_a_broken_template_still_delivers_the_alert(store: Store, hook: LoopbackReceiver,
                                                    tmp_path: Any) -> None:
    path = tmp_path / "n.log"
    registry = CollectorRegistry()
    config = notify_config([{"name": "ops", "file": [{
        "path": str(path), "format": "text",
        "templates": {"text": "{{ alerts[0].annotations.runbook }}"}}]}])
    notifier = make_notifier(store, config, registry=registry)
    record(store, "camden", "firing", T0, 6.1)
    notifier.process_transitions()
    assert [o.outcome for o in notifier.dispatch()] == ["delivered"]
    assert "[FIRING] BurglaryRising (1 firing)" in path.read_text()
    assert registry.get_sample_value("monitor_notify_template_errors_total",
                                     {"receiver": "ops", "integration": "file"}) == 1


def test_replicas_on_one_store_send_each_group_once(store: Store, store_url: str,
                                                    hook: LoopbackReceiver) -> None:
    config = notify_config([ops(hook)])
    replicas = [make_notifier(open_store(store_url), config, instance=f"r{i}")
                for i in range(3)]
    for i in range(30):
        record(store, f"b{i}", "firing", T0, float(i), alertname=f"Rule{i % 10}")
    barrier = threading.Barrier(len(replicas))

    def run(notifier: Any) -> None:
        barrier.wait()
        notifier.process_transitions()
        notifier.dispatch()

    threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = [p["groupKey"] for p in payloads(hook)]
    assert len(keys) == 10 and len(set(keys)) == 10
    assert sum(len(p["alerts"]) for p in payloads(hook)) == 30
    for replica in replicas:
        replica.store.close()


@pytest.mark.parametrize("transitions", [
    pytest.param(10, id="the-last-batch-part-full"),
    pytest.param(8, id="every-batch-full-then-an-empty-claim"),
])
def test_transitions_claimed_in_several_batches_reach_each_group_in_one_message(
        store: Store, hook: LoopbackReceiver, transitions: int) -> None:
    clock = FixedClock(T0)
    notifier = make_notifier(store, notify_config([ops(hook)]), clock, claim_batch=4)
    for i in range(transitions):  # one cycle's transitions; both groups in every batch
        record(store, f"b{i}", "firing", T0, float(i), alertname=f"Rule{i % 2}")
    assert notifier.process_transitions().claimed == transitions
    notifier.dispatch()
    assert sorted((p["groupLabels"]["alertname"], len(p["alerts"]))
                  for p in payloads(hook)) == [("Rule0", transitions // 2),
                                               ("Rule1", transitions // 2)]
    # A group_interval later, with nothing new, no group has alerts left to send.
    clock.advance(timedelta(minutes=1))
    assert notifier.process_transitions().messages == 0
    assert len(payloads(hook)) == 2


def test_alerts_claimed_by_a_process_killed_between_two_batches_are_sent_after_restart(
        store: Store, hook: LoopbackReceiver) -> None:
    config = notify_config([ops(hook)])
    killed = make_notifier(store, config, claim_batch=4)
    for i in range(6):
        record(store, f"b{i}", "firing", T0, float(i))
    killed._process_batch(T0)  # the first batch claimed and committed; then the kill
    assert len(payloads(hook)) == 0
    restarted = make_notifier(store, config, claim_batch=4, instance="restarted")
    assert restarted.process_transitions().claimed == 2
    restarted.dispatch()
    [message] = payloads(hook)
    assert sorted(a["labels"]["borough"] for a in message["alerts"]) == \
        [f"b{i}" for i in range(6)]


def test_a_digest_lists_only_what_changed_since_the_last_one(store: Store,
                                                             tmp_path: Any) -> None:
    path = tmp_path / "digest.log"
    scorecard = {("robbery", "f1"): ("green", "Robbery down 22.3%"),
                 ("burglary", "f2"): ("amber", "Burglary up 0.6%")}
    config = notify_config([{"name": "board", "file": [{"path": str(path)}]}],
                           digests=[{"name": "weekly", "receivers": ["board"],
                                     "schedule": "0 8 * * mon"}])
    clock = FixedClock(T0)
    notifier = make_notifier(store, config, clock, status_provider=lambda: dict(scorecard))
    assert notifier.run_digest("weekly") == 1  # the first digest lists everything
    scorecard[("burglary", "f2")] = ("red", "Burglary up 6.1%")
    clock.advance(timedelta(days=7))
    assert notifier.run_digest("weekly") == 1
    clock.advance(timedelta(days=7))
    assert notifier.run_digest("weekly") == 0  # nothing changed
    notifier.dispatch()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    first, second = (line["digest"] for line in lines)
    assert [i["indicator"] for i in first["items"]] == ["burglary", "robbery"]
    assert second["items"] == [{"indicator": "burglary", "fingerprint": "f2",
                                "previous": "amber", "current": "red",
                                "text": "Burglary up 6.1%"}]
    assert second["since"] == "2026-11-27T09:00:00+00:00"
    assert "burglary: amber -> red — Burglary up 6.1%" in lines[1]["text"]


def test_previews_and_receiver_tests_use_the_real_channels(store: Store,
                                                           hook: LoopbackReceiver) -> None:
    notifier = make_notifier(store, notify_config([ops(hook)]))
    [(integration, message)] = notifier.preview("ops")
    assert integration == "webhook:0" and message.body["alerts"][0]["labels"]["borough"] \
        == "Camden"
    [(integration, result)] = notifier.test_receiver("ops")
    assert getattr(result, "outcome", None) == "delivered"
    assert payloads(hook)[0]["kind"] == "test"
    with pytest.raises(KeyError, match="no receiver named 'nobody'"):
        notifier.preview("nobody")


@pytest.mark.parametrize("template", [
    pytest.param("{{ range(10**8)|list }}", id="huge-range"),
    pytest.param("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}"
                 "{% endfor %}", id="nested-loops"),
    pytest.param("{{ 'a'|center(10**9) }}", id="center"),
    pytest.param("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
                 id="macro-recursion"),
    pytest.param("{{ 10.0 ** 400 }}", id="overflow"),
])
def test_a_template_that_crashes_or_exceeds_its_budget_still_delivers_the_alert(
        store: Store, template: str) -> None:
    from tests.notify.loopback import validate_slack

    slack = LoopbackReceiver(validate_slack)
    registry = CollectorRegistry()
    try:
        config = notify_config([{"name": "ops", "slack": [{
            "url": slack.url("/services/T/B/x"), "templates": {"title": template}}]}])
        notifier = make_notifier(store, config, registry=registry)
        record(store, "camden", "firing", T0, 6.1)
        tracemalloc.start()
        try:
            notifier.process_transitions()
            assert [o.outcome for o in notifier.dispatch()] == ["delivered"]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        [request] = slack.requests
    finally:
        slack.close()
    # Refused before it could build anything big (CPU: benchmarks/bench_templates.py).
    assert peak < 50 * 2**20, f"{peak / 2**20:.1f} MiB allocated to render and deliver"
    assert not request.problems
    assert request.payload["text"] == "[FIRING] BurglaryRising (1 firing)"  # the fallback
    assert registry.get_sample_value("monitor_notify_template_errors_total",
                                     {"receiver": "ops", "integration": "slack"}) == 1
    assert notifier.notify_store.messages("dead") == []


def test_a_label_with_line_breaks_stays_on_its_line_in_text_outputs(
        store: Store, hook: LoopbackReceiver, tmp_path: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "n.log"
    config = notify_config([{"name": "ops", "webhook": [{"url": hook.url()}],
                             "file": [{"path": str(path), "format": "text"}],
                             "console": [{}]}], route={"group_by": ["borough"]})
    notifier = make_notifier(store, config)
    record(store, "Barnet\r\nBcc: victim@example.org\x1b[2J", "firing", T0, 6.1)
    notifier.process_transitions()
    assert sorted(o.outcome for o in notifier.dispatch()) == ["delivered"] * 3
    escaped = "Barnet\\r\\nBcc: victim@example.org\\x1b[2J"
    for text in (path.read_text(), capsys.readouterr().out):
        assert escaped in text
        assert not any(line.startswith("Bcc:") for line in text.splitlines())
        assert "\r" not in text and "\x1b" not in text
    [payload] = payloads(hook)
    assert payload["groupKey"] == f'{{}}:{{borough="{escaped}"}}'
    assert payload["alerts"][0]["labels"]["borough"] == "Barnet\r\nBcc: victim@example.org\x1b[2J"
