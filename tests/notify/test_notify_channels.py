"""One contract for every channel, against real receivers on loopback.

Each case builds a channel pointed at a real server — an HTTP receiver that validates
the payload as the real service would, or a real SMTP server, or a file — and checks
the same promises: a notification with many alerts is delivered in a valid payload,
failures carry ``retryable`` correctly, and secrets never appear in an error.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.clock import FixedClock
from monitor.errors import DeliveryError
from monitor.notify.channels import CHANNELS, Channel, build_channels
from monitor.notify.channels.console import ConsoleChannel
from monitor.notify.config import ReceiverConfig
from monitor.notify.notification import Notification, NotifyAlert
from tests.notify.conftest import SmtpHandler, SmtpServer
from tests.notify.loopback import (
    LoopbackReceiver,
    Reply,
    validate_am_webhook,
    validate_mattermost,
    validate_slack,
    validate_teams,
)

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SECRET = "T0SECRET/B0SECRET/xoxb-planted-c7d1"


def alerts(count: int, status: str = "firing") -> tuple[NotifyAlert, ...]:
    return tuple(NotifyAlert(
        f"a{i}", "BurglaryRising",
        {"alertname": "BurglaryRising", "borough": f"Borough {i}", "indicator": "burglary"},
        {"summary": f"Burglary up in borough {i}", "description": "d" * 200},
        status, 6.1 + i, "Residential burglary rose " + "x" * 4000 if i == 0 else "rose",
        NOW - timedelta(hours=1), NOW if status == "resolved" else None)
        for i in range(count))


def notification(count: int = 60, status: str = "firing") -> Notification:
    return Notification("alerts", "ops", '{}:{alertname="BurglaryRising"}',
                        {"alertname": "BurglaryRising"}, alerts(count, status), NOW, "m1",
                        "m1", "http://monitor.example")


def build(kind: str, config: dict[str, Any]) -> Channel:
    receiver = ReceiverConfig.model_validate({"name": "ops", kind: [config]})
    return build_channels(receiver, clock=FixedClock(NOW), timeout=5)[f"{kind}:0"]


@dataclass
class Case:
    """A channel wired to a real target, and how to read back what arrived."""

    channel: Channel
    received: Callable[[], list[Any]]
    fail: Callable[[str], None]  # make the next delivery fail: "retryable"/"permanent"
    modes: tuple[str, ...] = ("retryable", "permanent")  # the failures this target can have


HTTP_VALIDATORS = {"slack": validate_slack, "teams": validate_teams,
                   "mattermost": validate_mattermost, "webhook": validate_am_webhook,
                   "alertmanager": lambda body: [] if isinstance(body, list) and all(
                       "labels" in a and "startsAt" in a for a in body) else ["not AM alerts"]}


@pytest.fixture(params=sorted(CHANNELS))
def case(request: pytest.FixtureRequest, tmp_path: Path,
         smtp_server: SmtpServer) -> Iterator[Case]:
    kind: str = request.param
    if kind in HTTP_VALIDATORS:
        receiver = LoopbackReceiver(HTTP_VALIDATORS[kind])
        url = receiver.url(f"/services/{SECRET}")
        config = {"url": receiver.url("") if kind == "alertmanager" else url}

        def fail(how: str) -> None:
            receiver.replies.append(Reply(503 if how == "retryable" else 400, "nope"))

        try:
            yield Case(build(kind, config), lambda: [r.payload for r in receiver.requests], fail)
        finally:
            receiver.close()
    elif kind == "email":
        handler: SmtpHandler = smtp_server.handler

        def fail_smtp(how: str) -> None:
            handler.replies.append("451 try later" if how == "retryable" else "554 rejected")

        yield Case(build(kind, {"to": ["ops@example.org"], "host": smtp_server.host,
                                "port": smtp_server.port, "from": "kpi@example.org"}),
                   lambda: [m for _, _, m in handler.messages], fail_smtp)
    elif kind == "file":
        path = tmp_path / "out" / "notifications.log"

        def read() -> list[Any]:
            return [json.loads(line) for line in path.read_text().splitlines()] \
                if path.exists() else []

        def fail_file(how: str) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                path.unlink()
            path.mkdir()  # a folder where the file should be: the append fails

        yield Case(build(kind, {"path": str(path)}), read, fail_file, ("retryable",))
    elif kind == "console":
        channel = build(kind, {})
        assert isinstance(channel, ConsoleChannel)
        stream = io.StringIO()
        channel.stream = stream
        def fail_console(how: str) -> None:
            stream.close()  # standard output closed under us: retrying cannot help

        yield Case(channel, lambda: [stream.getvalue()] if stream.getvalue() else [],
                   fail_console, ("permanent",))
    else:
        pytest.fail(f"no contract case for channel kind {kind!r}: add one")


def test_it_delivers_a_large_group_in_a_payload_the_service_accepts(case: Case) -> None:
    result = case.channel.send(notification(60))
    assert result.outcome == "delivered"
    received = case.received()
    assert len(received) == 1


def test_it_delivers_a_resolved_group(case: Case) -> None:
    case.channel.send(notification(2, "resolved"))
    assert len(case.received()) == 1


def test_failures_say_whether_to_retry_and_never_show_the_secret(case: Case) -> None:
    for mode in case.modes:
        case.fail(mode)
        with pytest.raises(DeliveryError) as caught:
            case.channel.send(notification(1))
        assert caught.value.retryable is (mode == "retryable"), mode
        assert SECRET not in str(caught.value)
        assert str(caught.value).startswith("ops/")


def test_a_receiver_that_is_down_is_a_retryable_failure() -> None:
    from tests.conftest import free_port

    for kind in ("slack", "webhook", "email"):
        port = free_port()  # nothing listens there
        config: dict[str, Any] = {"url": f"http://127.0.0.1:{port}/services/{SECRET}"}
        if kind == "email":
            config = {"to": ["a@example.org"], "host": "127.0.0.1", "port": port}
        with pytest.raises(DeliveryError) as caught:
            build(kind, config).send(notification(1))
        assert caught.value.retryable is True, kind
        assert SECRET not in str(caught.value)


def test_slack_keeps_block_kit_limits_with_many_long_alerts() -> None:
    receiver = LoopbackReceiver(validate_slack)
    try:
        build("slack", {"url": receiver.url()}).send(notification(120))
        body = receiver.requests[0].payload
        assert receiver.requests[0].problems == []
        assert len(body["blocks"]) <= 50
        texts = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
        assert max(len(t) for t in texts) <= 3000
        assert "more alerts not shown" in body["blocks"][-1]["elements"][0]["text"]
    finally:
        receiver.close()


def test_slack_and_mattermost_defuse_a_borough_named_channel() -> None:
    hostile = Notification("alerts", "ops", "k", {}, (NotifyAlert(
        "a", "R", {"alertname": "R", "borough": "<!channel>"}, {"summary": "<!channel> @all"},
        "firing", 1.0, "", NOW),), NOW, "m", "m")
    for kind in ("slack", "mattermost"):
        receiver = LoopbackReceiver(HTTP_VALIDATORS[kind])
        try:
            build(kind, {"url": receiver.url()}).send(hostile)
            raw = receiver.requests[0].body.decode()
            assert "<!channel>" not in json.loads(raw).__repr__(), kind
            if kind == "mattermost":
                assert "@all" not in json.loads(raw)["text"]
        finally:
            receiver.close()


def test_teams_sends_an_adaptive_card_in_the_workflow_envelope() -> None:
    receiver = LoopbackReceiver(validate_teams, default=Reply(202, ""))
    try:
        build("teams", {"url": receiver.url()}).send(notification(3))
        body = receiver.requests[0].payload
        card = body["attachments"][0]["content"]
        assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
        assert card["body"][0]["text"] == "[FIRING:3] BurglaryRising"
        assert card["actions"][0]["url"] == "http://monitor.example"
    finally:
        receiver.close()


def test_the_webhook_payload_is_alertmanagers_version_4_with_the_resolution_value() -> None:
    receiver = LoopbackReceiver(validate_am_webhook)
    try:
        resolved = NotifyAlert("a1", "R", {"alertname": "R", "borough": "Camden"},
                               {"summary": "s"}, "resolved", 2.25, "back under target",
                               NOW - timedelta(hours=2), NOW)
        firing = NotifyAlert("a2", "R", {"alertname": "R", "borough": "Brent"}, {},
                             "firing", 7.0, "", NOW - timedelta(hours=1))
        message = Notification("alerts", "ops", '{}:{alertname="R"}', {"alertname": "R"},
                               (firing, resolved), NOW, "m", "m", "http://monitor.example")
        build("webhook", {"url": receiver.url(), "bearer_token": "tok-123456"}).send(message)
        request = receiver.requests[0]
        assert request.problems == []
        assert request.headers["authorization"] == "Bearer tok-123456"
        body = request.payload
        assert (body["version"], body["status"], body["receiver"], body["groupKey"]) == (
            "4", "firing", "ops", '{}:{alertname="R"}')
        assert body["commonLabels"] == {"alertname": "R"}
        by_id = {a["fingerprint"]: a for a in body["alerts"]}
        assert by_id["a1"]["status"] == "resolved"
        assert by_id["a1"]["annotations"]["value"] == "2.25"
        assert by_id["a1"]["annotations"]["explanation"] == "back under target"
        assert by_id["a1"]["endsAt"] == "2026-11-27T09:00:00Z"
        assert by_id["a2"]["endsAt"] == "0001-01-01T00:00:00Z"
        assert by_id["a2"]["generatorURL"] == ("http://monitor.example/alerts?match=alertname"
                                               "%3D%22R%22&match=borough%3D%22Brent%22")
        assert by_id["a1"]["generatorURL"].endswith("&state=resolved")
    finally:
        receiver.close()


def test_webhook_max_alerts_truncates_and_counts() -> None:
    receiver = LoopbackReceiver(validate_am_webhook)
    try:
        build("webhook", {"url": receiver.url(), "max_alerts": 5}).send(notification(12))
        body = receiver.requests[0].payload
        assert len(body["alerts"]) == 5 and body["truncatedAlerts"] == 7
    finally:
        receiver.close()


def test_a_429_is_retryable_and_carries_retry_after() -> None:
    receiver = LoopbackReceiver(validate_slack, replies=[Reply(429, "rate_limited",
                                                               {"Retry-After": "7"})])
    try:
        with pytest.raises(DeliveryError) as caught:
            build("slack", {"url": receiver.url()}).send(notification(1))
        assert caught.value.retryable is True and caught.value.retry_after == 7.0
        assert "rate limited" in str(caught.value)
    finally:
        receiver.close()


def test_the_file_channel_appends_json_lines_with_the_rendered_text(tmp_path: Path) -> None:
    path = tmp_path / "n.log"
    channel = build("file", {"path": str(path)})
    channel.send(notification(1))
    channel.send(notification(1, "resolved"))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["alerts"][0]["status"] for line in lines] == ["firing", "resolved"]
    assert lines[1]["text"].startswith("[RESOLVED] BurglaryRising")
    unwritable = build("file", {"path": str(path / "cannot" / "be")})
    with pytest.raises(DeliveryError, match="cannot append"):
        unwritable.send(notification(1))
