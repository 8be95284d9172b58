"""What a scheduled pack's message says on each kind of receiver: chat and files carry the
summary and the link to the pack, email attaches the files, Alertmanager skips it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.clock import FixedClock
from monitor.errors import DeliveryError
from monitor.notify.channels import Channel, build_channels
from monitor.notify.config import ReceiverConfig
from monitor.notify.notification import Notification, ReportNote

NOW = datetime(2008, 8, 7, 8, 0, tzinfo=UTC)
LINK = "http://monitor.example/report?at=2008-07"


def report(files: tuple[str, ...] = ()) -> Notification:
    note = ReportNote("monthly", "Monthly performance report", "2008-07", "Jul-08", files,
                      LINK, "5 red, 2 amber, 7 green, 2 baseline; 3 exceptions since 2008-06")
    return Notification("report", "board", "report:monthly:2008-07:m1", {}, (), NOW, "m1",
                        "m1", "http://monitor.example", report=note)


def build(kind: str, config: dict[str, Any]) -> Channel:
    receiver = ReceiverConfig.model_validate({"name": "board", kind: [config]})
    return build_channels(receiver, clock=FixedClock(NOW), timeout=5)[f"{kind}:0"]


@pytest.mark.parametrize(("kind", "config"), [
    pytest.param("slack", {"url": "https://hooks.example/T/B/x"}, id="slack"),
    pytest.param("mattermost", {"url": "https://chat.example/hooks/x"}, id="mattermost"),
    pytest.param("teams", {"url": "https://teams.example/x"}, id="teams"),
    pytest.param("file", {"path": "/tmp/unused.log", "format": "text"}, id="file"),
])
def test_a_chat_message_carries_the_summary_and_the_link(kind: str,
                                                         config: dict[str, Any]) -> None:
    message = build(kind, config).render(report())
    assert message.template_error is None
    assert "Monthly performance report: data to Jul-08" in message.preview
    assert LINK in message.preview
    assert "3 exceptions since 2008-06" in message.preview


def test_the_payload_survives_the_outbox() -> None:
    stored = report(("/var/reports/monthly-2008-07.pdf",))
    assert Notification.from_json(stored.to_json()) == stored


def test_an_email_attaches_the_files_and_a_missing_one_is_retried(tmp_path: Path) -> None:
    pdf = tmp_path / "monthly-2008-07.pdf"
    pdf.write_bytes(b"%PDF-1.7 a pack")
    channel = build("email", {"to": ["board@example.org"]})
    message = channel.render(report((str(pdf),)))
    parts = {p.get_filename(): p for p in message.body.iter_attachments()}
    assert list(parts) == ["monthly-2008-07.pdf"]
    assert parts["monthly-2008-07.pdf"].get_content_type() == "application/pdf"
    assert parts["monthly-2008-07.pdf"].get_content() == b"%PDF-1.7 a pack"
    pdf.unlink()
    with pytest.raises(DeliveryError, match="cannot read the pack") as caught:
        channel.render(report((str(pdf),)))
    assert caught.value.retryable


def test_alertmanager_skips_a_pack() -> None:
    channel = build("alertmanager", {"url": "http://127.0.0.1:9/api/v2/alerts"})
    note = report()
    assert channel.deliver(channel.render(note), note).outcome == "skipped"
