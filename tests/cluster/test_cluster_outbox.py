"""Two replicas delivering one outbox: a message one replica leased and then held back
(rate-limited past its lease) is sent by the other, and only by the other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from monitor.clock import FixedClock
from monitor.notify.config import RateLimit
from monitor.store import Store
from tests.notify.helpers import T0, make_notifier, notify_config, record
from tests.notify.loopback import LoopbackReceiver, validate_am_webhook

pytestmark = pytest.mark.postgres




@pytest.fixture
def hook() -> Iterator[LoopbackReceiver]:
    receiver = LoopbackReceiver(validate_am_webhook)
    try:
        yield receiver
    finally:
        receiver.close()


def test_a_message_whose_lease_ran_out_while_rate_limited_is_sent_once(
        store: Store, hook: LoopbackReceiver) -> None:
    config = notify_config([{"name": "ops", "webhook": [{"url": hook.url()}]}],
                           route={"group_by": ["borough"]})
    clock = FixedClock(T0)
    first = make_notifier(store, config, clock, instance="first")
    second = make_notifier(store, config, clock, instance="second")
    for borough in ("camden", "brent"):
        record(store, borough, "firing", T0, 1.0)
    assert first.process_transitions().messages == 2
    key = ("ops", "webhook:0")

    ticks = iter([0.0, 0.0, 0.0])

    def monotonic() -> float:
        # first's rate limiter: one token, spent on the first message; the second waits.
        value = next(ticks, None)
        if value is not None:
            return value
        # While it waits, its lease runs out and the second replica takes the message.
        clock.advance(timedelta(seconds=config.retry.lease + 1))
        assert [o.outcome for o in second.dispatcher.drain(key)] == ["delivered"]
        return 60.0

    lane = first.dispatcher.lanes[key]
    first.dispatcher.lanes[key] = replace(
        lane, limiter=RateLimit(messages=1, per=0.05).bucket(monotonic=monotonic))
    outcomes = first.dispatcher.drain(key)
    assert [(o.outcome, o.detail) for o in outcomes] == [
        ("delivered", ""), ("skipped", "lease ran out while rate-limited")]
    boroughs = sorted(json.loads(r.body)["alerts"][0]["labels"]["borough"]
                      for r in hook.requests)
    assert boroughs == ["brent", "camden"]  # each once
    assert {m.status for m in store.notify.messages()} == {"delivered"}
