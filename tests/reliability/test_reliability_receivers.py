"""A receiver that hangs: its sends time out and are retried, with a log line and a
metric, while every other receiver delivers on time; once it answers again it gets
every message (at most one duplicate: the one it swallowed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.reliability.processes import Hook
from tests.reliability.rig import Rig, build_rig, copy_example, example_config

T0 = datetime(2008, 8, 20, 9, 0, tzinfo=UTC)
HUNG_GROUP = "DomesticViolenceArrestRateBelowTarget"


@pytest.fixture
def hooks() -> Iterator[tuple[Hook, Hook]]:
    hanging, ops = Hook(), Hook()
    try:
        yield hanging, ops
    finally:
        hanging.close()
        ops.close()


@pytest.fixture
def rig(tmp_path: Path, hooks: tuple[Hook, Hook]) -> Iterator[Rig]:
    hanging, ops = hooks
    route = f"""
[notify.route]
receiver = "local"
group_by = ["alertname"]
group_wait = "0s"
group_interval = "1m"
repeat_interval = "1000h"
[[notify.route.routes]]
receiver = "hanging"
matchers = ['alertname="{HUNG_GROUP}"']
continue = true
[[notify.route.routes]]
receiver = "ops"
continue = true
"""
    receivers = f"""
[[notify.receivers]]
name = "hanging"
[[notify.receivers.webhook]]
url = "{hanging.url()}"
[[notify.receivers]]
name = "ops"
[[notify.receivers.webhook]]
url = "{ops.url()}"
"""
    copy_example(tmp_path)
    built = build_rig(tmp_path, example_config(tmp_path, route=route, receivers=receivers), T0)
    try:
        yield built
    finally:
        built.close()


def wait_until(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_hanging_receiver_times_out_and_retries_while_the_others_deliver(
        rig: Rig, hooks: tuple[Hook, Hook], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    hanging, ops = hooks
    hanging.release.clear()  # it takes the request and never answers
    rig.poller.poll_all()
    rig.rules.evaluate()  # as in the daemon, the transitions go to the notifier at once
    groups = rig.store.notify.counts()[("ops", "webhook:0", "pending")]
    assert rig.store.notify.counts()[("hanging", "webhook:0", "pending")] == 1
    rig.notifier.start()

    # ops gets everything while the hanging receiver still holds its first request.
    assert ops.wait_for(lambda h: len(h.deliveries) == groups)
    assert hanging.wait_for(lambda h: len(h.deliveries) == 1)  # on a loaded machine, later
    with hanging.lock:
        assert len(hanging.deliveries) == 1 and hanging.inflight == 1
    # The send times out (notify.retry.timeout), is logged, counted and rescheduled.
    assert wait_until(lambda: rig.metric("monitor_notifications_total", receiver="hanging",
                                         integration="webhook", outcome="failed") == 1)
    # The counter moves just before the line is logged, on the dispatcher's thread.
    assert wait_until(lambda: any(r.getMessage() == "notification failed; will retry"
                                  for r in caplog.records))
    failure = next(r for r in caplog.records
                   if r.getMessage() == "notification failed; will retry")
    assert failure.fields["receiver"] == "hanging"  # type: ignore[attr-defined]
    assert str(failure.fields["error"]).endswith("no answer within 2s")  # type: ignore[attr-defined]
    assert rig.store.notify.counts() == {("hanging", "webhook:0", "pending"): 1}

    # It answers again; the retry is due after its backoff and lands.
    hanging.release.set()
    rig.clock.advance(timedelta(minutes=1))
    rig.notifier.dispatcher.wake()
    assert wait_until(lambda: rig.store.notify.counts() == {})
    assert rig.metric("monitor_notifications_total", receiver="hanging",
                      integration="webhook", outcome="delivered") == 1
    assert rig.metric("monitor_notifications_total", receiver="ops", integration="webhook",
                      outcome="delivered") == groups
    bodies = [d.body for d in hanging.deliveries]
    assert len(bodies) == 2 and bodies[0] == bodies[1]  # the swallowed one, then the retry
    assert bodies[0]["groupLabels"] == {"alertname": HUNG_GROUP}
