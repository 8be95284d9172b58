"""The outbox: committed before sending, retries, Retry-After, dead letters, resend, lanes."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, select

from monitor.clock import FixedClock
from monitor.notify.config import RateLimit
from monitor.store import Store
from monitor.store.notify import OUTBOX
from tests.notify.helpers import T0, make_notifier, notify_config, record
from tests.notify.loopback import LoopbackReceiver, Reply, validate_am_webhook

SECRET_PATH = "/hooks/planted-Secret-77aa1c"


def webhook(name: str, receiver: LoopbackReceiver, **extra: Any) -> dict[str, Any]:
    return {"name": name, "webhook": [{"url": receiver.url(SECRET_PATH)}], **extra}


def outbox(store: Store) -> list[tuple[str, int, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(OUTBOX.c.status, OUTBOX.c.attempts, OUTBOX.c.last_error)
                            .order_by(OUTBOX.c.id)).all()
    return [(r[0], r[1], r[2]) for r in rows]


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_notification_is_committed_before_any_attempt_to_send_it(
        store: Store, store_url: str, hook: LoopbackReceiver) -> None:
    seen: list[tuple[str, int]] = []
    engine = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://", 1)
                           if store_url.startswith("postgresql://") else store_url)

    def check_the_store(payload: Any) -> list[str]:
        # Runs inside the receiver while the request is in flight, on its own connection.
        with engine.connect() as conn:
            seen.extend((r[0], r[1]) for r in conn.execute(
                select(OUTBOX.c.status, OUTBOX.c.attempts)))
        return validate_am_webhook(payload)

    hook.validator = check_the_store
    notifier = make_notifier(store, notify_config([webhook("ops", hook)]))
    record(store, "camden", "firing", T0, 6.1)
    assert notifier.process_transitions().messages == 1
    assert outbox(store) == [("pending", 0, "")]  # committed, nothing attempted yet
    assert [o.outcome for o in notifier.dispatch()] == ["delivered"]
    assert seen == [("pending", 1)]  # the row existed, leased, while the send was in flight
    assert outbox(store) == [("delivered", 1, "")]
    engine.dispose()


def test_a_500_is_retried_with_backoff_then_delivered(store: Store,
                                                      hook: LoopbackReceiver) -> None:
    clock = FixedClock(T0)
    registry = CollectorRegistry()
    notifier = make_notifier(store, notify_config([webhook("ops", hook)]), clock,
                             registry=registry)
    hook.replies.append(Reply(500, "boom"))
    record(store, "camden", "firing", T0, 6.1)
    notifier.process_transitions()
    [failed] = notifier.dispatch()
    assert failed.outcome == "failed" and "HTTP 500" in failed.detail
    assert failed.next_attempt_at is not None
    delay = (failed.next_attempt_at - T0).total_seconds()
    assert 8.0 <= delay <= 12.0  # 10 s ± 20 % jitter
    assert notifier.dispatch() == []  # not due yet
    clock.set(failed.next_attempt_at)
    assert [o.outcome for o in notifier.dispatch()] == ["delivered"]
    assert len(hook.requests) == 2
    assert hook.requests[0].body == hook.requests[1].body  # the same message, resent
    assert outbox(store)[0][:2] == ("delivered", 2)
    assert metric(registry, "monitor_notifications_total", receiver="ops",
                  integration="webhook", outcome="failed") == 1
    assert metric(registry, "monitor_notifications_total", receiver="ops",
                  integration="webhook", outcome="delivered") == 1
    assert metric(registry, "monitor_notify_latency_seconds_count", receiver="ops",
                  integration="webhook") == 1


def test_a_429_waits_exactly_as_long_as_retry_after_says(store: Store,
                                                         hook: LoopbackReceiver) -> None:
    clock = FixedClock(T0)
    notifier = make_notifier(store, notify_config([webhook("ops", hook)]), clock)
    hook.replies.append(Reply(429, "slow down", {"Retry-After": "42"}))
    record(store, "camden", "firing", T0, 6.1)
    notifier.process_transitions()
    [limited] = notifier.dispatch()
    assert limited.outcome == "failed" and limited.next_attempt_at == T0 + timedelta(seconds=42)
    clock.advance(timedelta(seconds=41))
    assert notifier.dispatch() == []
    clock.advance(timedelta(seconds=1))
    assert [o.outcome for o in notifier.dispatch()] == ["delivered"]


def test_a_400_is_a_dead_letter_with_its_reason_and_can_be_resent(
        store: Store, hook: LoopbackReceiver) -> None:
    registry = CollectorRegistry()
    notifier = make_notifier(store, notify_config([webhook("ops", hook)]), registry=registry)
    hook.replies.append(Reply(400, "invalid_payload"))
    record(store, "camden", "firing", T0, 6.1)
    notifier.process_transitions()
    [dead] = notifier.dispatch()
    assert dead.outcome == "dead"
    [(status, attempts, error)] = outbox(store)
    assert (status, attempts) == ("dead", 1)
    assert error == "permanent failure: ops/webhook:0: HTTP 400: invalid_payload"
    assert metric(registry, "monitor_notify_dead_letters", receiver="ops",
                  integration="webhook") == 1
    [letter] = store.notify.messages("dead")
    assert notifier.resend(letter.id)
    assert [o.outcome for o in notifier.dispatch()] == ["delivered"]
    assert outbox(store)[0][0] == "delivered"
    assert metric(registry, "monitor_notify_dead_letters", receiver="ops",
                  integration="webhook") == 0


def test_it_gives_up_after_max_attempts(store: Store, hook: LoopbackReceiver) -> None:
    clock = FixedClock(T0)
    config = notify_config([webhook("ops", hook)], retry={"max_attempts": 3})
    notifier = make_notifier(store, config, clock)
    hook.default = Reply(503, "down")
    record(store, "camden", "firing", T0, 6.1)
    notifier.process_transitions()
    outcomes = []
    for _ in range(3):
        outcomes.extend(o.outcome for o in notifier.dispatch())
        clock.advance(timedelta(minutes=10))
    assert outcomes == ["failed", "failed", "dead"]
    assert outbox(store)[0][2].startswith("gave up after 3 attempts: ops/webhook:0: HTTP 503")


def test_secrets_never_reach_the_log_or_the_stored_error(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"  # nothing listens: refused
    config = notify_config([{"name": "ops", "webhook": [{"url": url}]}])
    notifier = make_notifier(store, config)
    record(store, "camden", "firing", T0, 6.1)
    notifier.process_transitions()
    caplog.set_level(logging.DEBUG)
    from monitor.logs import LogfmtFormatter

    [failed] = notifier.dispatch()
    assert failed.outcome == "failed"
    lines = [LogfmtFormatter().format(r) for r in caplog.records]
    assert any("will retry" in line for line in lines)
    assert all("planted-Secret" not in line for line in lines)
    assert "planted-Secret" not in outbox(store)[0][2]


def test_a_message_for_a_receiver_no_longer_configured_becomes_a_dead_letter(
        store: Store, hook: LoopbackReceiver) -> None:
    notifier = make_notifier(store, notify_config([webhook("ops", hook)]))
    record(store, "camden", "firing", T0, 6.1)
    notifier.process_transitions()
    notifier.reload(notify_config([webhook("other", hook)]))
    [dead] = notifier.dispatch()
    assert dead.outcome == "dead" and "has no integration 'webhook:0' any more" in dead.detail


def test_a_slow_receiver_never_delays_the_others(store: Store) -> None:
    slow, fast = LoopbackReceiver(validate_am_webhook), LoopbackReceiver(validate_am_webhook)
    slow.hold.clear()  # the slow receiver keeps every request open
    config = notify_config([webhook("slow", slow), webhook("fast", fast)],
                           route={"routes": [{"matchers": ['alertname=~".+"'],
                                              "receiver": "slow", "continue": True},
                                             {"matchers": ['alertname=~".+"'],
                                              "receiver": "fast"}]})
    notifier = make_notifier(store, config)
    try:
        notifier.start()
        record(store, "camden", "firing", T0, 6.1)
        assert notifier.process_transitions().messages == 2
        assert slow.wait_for(1)  # the slow one is holding its request …
        assert fast.wait_for(1)  # … and the fast one was served anyway
        assert not slow.hold.is_set()
    finally:
        slow.hold.set()
        notifier.stop(5)
        slow.close()
        fast.close()


def test_the_rate_limit_spaces_messages_out() -> None:
    now = [0.0]
    limiter = RateLimit(messages=2, per=60.0).bucket(monotonic=lambda: now[0])
    assert [limiter.take(), limiter.take()] == [0.0, 0.0]  # a burst of two
    assert limiter.take() == pytest.approx(30.0)  # then one every 30 s
    now[0] = 30.0
    assert limiter.take() == 0.0
    assert limiter.take() == pytest.approx(30.0)


def test_outbox_depth_is_exported(store: Store, hook: LoopbackReceiver) -> None:
    registry = CollectorRegistry()
    notifier = make_notifier(store, notify_config([webhook("ops", hook)]), registry=registry)
    for borough in ("camden", "brent"):
        record(store, borough, "firing", T0, 1.0, alertname=f"Rule{borough}")
    notifier.process_transitions()
    assert metric(registry, "monitor_notify_outbox_depth", receiver="ops",
                  integration="webhook") == 2
    notifier.dispatch()
    assert metric(registry, "monitor_notify_outbox_depth", receiver="ops",
                  integration="webhook") == 0


def test_a_retry_after_longer_than_give_up_after_waits_only_that_long(
        store: Store, hook: LoopbackReceiver) -> None:
    clock = FixedClock(T0)
    notifier = make_notifier(store, notify_config([webhook("ops", hook)]), clock)
    hook.replies.append(Reply(429, "slow down", {"Retry-After": "9" * 15}))
    record(store, "camden", "firing", T0, 6.1)
    notifier.process_transitions()
    [limited] = notifier.dispatch()
    assert limited.outcome == "failed"
    assert limited.next_attempt_at == T0 + timedelta(hours=24)  # retry.give_up_after
