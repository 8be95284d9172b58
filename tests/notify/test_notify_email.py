"""Email against a real SMTP server (aiosmtpd) on loopback: TLS, login, MIME, headers."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.clock import FixedClock
from monitor.errors import DeliveryError
from monitor.notify.channels import build_channels
from monitor.notify.config import ReceiverConfig
from monitor.notify.notification import Notification, NotifyAlert
from tests.notify.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def send(server: SmtpServer, notification: Notification, **config: Any) -> Message:
    settings = {"to": ["ops@example.org", "duty@example.org"], "host": server.host,
                "port": server.port, "from": "KPI monitor <kpi@example.org>", **config}
    receiver = ReceiverConfig.model_validate({"name": "ops", "email": [settings]})
    channel = build_channels(receiver, clock=FixedClock(NOW), timeout=5)["email:0"]
    before = len(server.handler.messages)
    channel.send(notification)
    assert len(server.handler.messages) == before + 1
    return server.handler.messages[-1][2]


def notification(borough: str = "Camden", message_id: str = "m1", thread_id: str = "m1",
                 status: str = "firing") -> Notification:
    alert = NotifyAlert("a1", "BurglaryRising", {"alertname": "BurglaryRising",
                                                 "borough": borough},
                        {"summary": f"Burglary up in {borough}"}, status, 6.1,
                        "up 6.1% on the previous rolling year", NOW,
                        NOW if status == "resolved" else None)
    return Notification("alerts", "ops", '{}:{alertname="BurglaryRising"}',
                        {"alertname": "BurglaryRising"}, (alert,), NOW, message_id, thread_id,
                        "http://monitor.example")


def test_it_sends_multipart_text_and_html_with_correct_headers(smtp_server: SmtpServer) -> None:
    message = send(smtp_server, notification())
    mail_from, rcpt_tos, _ = smtp_server.handler.messages[-1]
    assert mail_from == "kpi@example.org"
    assert rcpt_tos == ["ops@example.org", "duty@example.org"]
    assert message["Subject"] == "[FIRING:1] BurglaryRising"
    assert message["From"] == "KPI monitor <kpi@example.org>"
    assert message["To"] == "ops@example.org, duty@example.org"
    assert message["Message-ID"] == "<m1@example.org>"
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert message["In-Reply-To"] is None and message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in
             message.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "Burglary up in Camden" in parts["text/plain"]
    assert "up 6.1% on the previous rolling year" in parts["text/html"]


def test_updates_of_a_group_thread_under_its_first_message(smtp_server: SmtpServer) -> None:
    first = send(smtp_server, notification(message_id="root1", thread_id="root1"))
    update = send(smtp_server, notification(message_id="upd2", thread_id="root1",
                                            status="resolved"))
    assert first["Message-ID"] == "<root1@example.org>"
    assert update["Message-ID"] == "<upd2@example.org>"
    assert update["In-Reply-To"] == "<root1@example.org>"
    assert update["References"] == "<root1@example.org>"
    assert update["Subject"] == "[RESOLVED] BurglaryRising"


def test_cr_lf_in_data_cannot_inject_headers(smtp_server: SmtpServer) -> None:
    hostile = "Camden\r\nBcc: victim@example.org\r\nX-Injected: yes"
    message = send(smtp_server, notification(borough=hostile),
                   templates={"subject": "{{ alerts[0].labels.borough }} alert"})
    _, rcpt_tos, _ = smtp_server.handler.messages[-1]
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert "victim@example.org" not in rcpt_tos
    assert message["Subject"] == "Camden Bcc: victim@example.org X-Injected: yes alert"


def test_it_upgrades_with_starttls_and_logs_in(starttls_server: SmtpServer,
                                               tls_files: tuple[Path, Path]) -> None:
    message = send(starttls_server, notification(), starttls=True, username=SMTP_USER,
                   password=SMTP_PASSWORD, tls_ca_file=str(tls_files[0]))
    assert message["Subject"] == "[FIRING:1] BurglaryRising"


# aiosmtpd counts only STARTTLS as TLS and warns about AUTH on this (TLS) connection.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_it_speaks_implicit_tls(implicit_tls_server: SmtpServer,
                                tls_files: tuple[Path, Path]) -> None:
    message = send(implicit_tls_server, notification(), tls=True, username=SMTP_USER,
                   password=SMTP_PASSWORD, tls_ca_file=str(tls_files[0]))
    assert message["Message-ID"] == "<m1@example.org>"


def test_a_wrong_password_is_permanent_and_never_shown(starttls_server: SmtpServer,
                                                       tls_files: tuple[Path, Path]) -> None:
    wrong = "wrong-Pa55-4c1b"
    with pytest.raises(DeliveryError) as caught:
        send(starttls_server, notification(), starttls=True, username=SMTP_USER,
             password=wrong, tls_ca_file=str(tls_files[0]))
    assert caught.value.retryable is False
    assert "authentication failed" in str(caught.value)
    assert wrong not in str(caught.value)


def test_an_untrusted_certificate_is_a_permanent_failure(starttls_server: SmtpServer) -> None:
    with pytest.raises(DeliveryError, match="certificate is not trusted") as caught:
        send(starttls_server, notification(), starttls=True, username=SMTP_USER,
             password=SMTP_PASSWORD)
    assert caught.value.retryable is False


def test_a_server_requiring_starttls_refuses_a_plain_login_attempt(
        starttls_server: SmtpServer) -> None:
    with pytest.raises(DeliveryError) as caught:
        send(starttls_server, notification())
    assert caught.value.retryable is False  # 530 must issue STARTTLS first


@pytest.mark.parametrize(("reply", "retryable"), [
    pytest.param("451 4.3.0 try again later", True, id="4xx-retry"),
    pytest.param("554 5.7.1 message rejected", False, id="5xx-permanent"),
])
def test_smtp_reply_codes_decide_retry(smtp_server: SmtpServer, reply: str,
                                       retryable: bool) -> None:
    smtp_server.handler.replies.append(reply)
    with pytest.raises(DeliveryError) as caught:
        send(smtp_server, notification())
    assert caught.value.retryable is retryable
