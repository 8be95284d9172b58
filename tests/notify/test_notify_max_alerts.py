"""A webhook with ``max_alerts`` never sends more than that many alerts of a group, so its
outbox row holds only those — with the whole group's status, common labels and
annotations and the count left out — and sends exactly the body it sent before: from
memory in the process that queued it, and from the store after a restart."""

from __future__ import annotations

import json

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
