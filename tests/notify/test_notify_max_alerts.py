"""A webhook with ``max_alerts`` never sends more than that many alerts of a group, so its
outbox row holds only those — with the whole group's status, common labels and
annotations and the count left out — and sends exactly the body it sent before: from
memory in the process that queued it, and from the store after a restart."""

from __future__ import annotations

import json
from datetime import timedelta

from monitor.notify.channels.webhook import payload
from monitor.notify.notification import Notification
from monitor.store import Store
from tests.notify.helpers import T0, make_notifier, notify_config, record
from tests.notify.loopback import LoopbackReceiver


def test_a_capped_webhook_stores_the_alerts_it_sends_and_sends_the_same_body(
        store: Store, hook: LoopbackReceiver) -> None:
    # The first two alerts share a team the others do not: a group's common labels are
    # the whole group's, not those of the alerts a capped message holds.
    for i in range(5):
        record(store, f"b{i}", "firing", T0, float(i), team="north" if i < 2 else f"t{i}")
    config = notify_config([{"name": "ops", "webhook": [
        {"url": hook.url("/capped"), "max_alerts": 2}, {"url": hook.url("/all")}]}])
    notifier = make_notifier(store, config)
    notifier.process_transitions(T0)
    stored = {item.integration: item for item in store.notify.messages("pending")}
    capped = Notification.from_json(stored["webhook:0"].payload)
    whole = Notification.from_json(stored["webhook:1"].payload)
    assert len(whole.alerts) == 5 and whole.truncated == 0 and whole.whole is None
    assert capped.alerts == whole.alerts[:2] and capped.truncated == 3
    assert len(stored["webhook:0"].payload) < len(stored["webhook:1"].payload)
    assert "team" in whole.alerts[0].labels and "team" not in capped.common_labels
    expected = payload(whole, 2)
    assert expected["truncatedAlerts"] == 3 and len(expected["alerts"]) == 2
    assert payload(capped, 2) == expected

    # A restarted daemon sends what the store holds: the same bodies.
    restarted = make_notifier(store, config, instance="restarted")
    restarted.dispatch(T0)
    assert hook.wait_for(2)
    bodies = {r.path: r.payload for r in hook.requests}
    assert all(not r.problems for r in hook.requests)  # Alertmanager's v4 format
    assert bodies["/capped"] == json.loads(json.dumps(expected))
    assert bodies["/all"] == json.loads(json.dumps(payload(whole)))


def test_an_alert_no_integration_sent_has_no_notified_event(store: Store) -> None:
    """The history says an alert was notified only when a message named it: a group whose
    every webhook is capped at two records its first two, and counts the rest as
    ``truncatedAlerts`` in the payload; an uncapped integration beside it sends, and
    records, all five."""
    for i in range(5):
        record(store, f"b{i}", "firing", T0, float(i))
    capped = notify_config([{"name": "ops", "webhook": [
        {"url": "http://127.0.0.1:9/a", "max_alerts": 2},
        {"url": "http://127.0.0.1:9/b", "max_alerts": 1}]}])
    make_notifier(store, capped).process_transitions(T0)
    sent = [Notification.from_json(m.payload) for m in store.notify.messages("pending")]
    assert sorted(len(n.alerts) for n in sent) == [1, 2]
    message = max(sent, key=lambda n: len(n.alerts))

    def notified() -> list[str]:
        return sorted(e.alert_id for e in store.history.events(limit=1000)
                      if e.kind == "notified")

    assert notified() == sorted(a.alert_id for a in message.alerts[:2])
    assert len(notified()) == 2

    for i in range(5, 10):
        record(store, f"b{i}", "firing", T0, float(i))
    later = T0 + timedelta(hours=1)
    uncapped = notify_config([{"name": "ops", "webhook": [
        {"url": "http://127.0.0.1:9/a", "max_alerts": 2}, {"url": "http://127.0.0.1:9/c"}]}])
    make_notifier(store, uncapped, instance="next").process_transitions(later)
    sent_later = [e.alert_id for e in store.history.events(limit=1000)
                  if e.kind == "notified" and e.at == later]
    assert sorted(sent_later) == [f"b{i}" for i in range(10)]
