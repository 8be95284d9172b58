"""Scheduled packs delivered by email through a real SMTP server (aiosmtpd): once per
occurrence, whatever the daemon's restarts, and retried like any notification."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.clock import FixedClock
from monitor.notify.dispatcher import Outcome
from monitor.settings import load
from tests.conftest import free_port
from tests.examples.daemons import assembled, example_config
from tests.notify.conftest import SmtpHandler
from tests.report.conftest import run


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpHandler, int]]:
    handler, port = SmtpHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def with_report(workdir: Path, smtp_port: int, schedule: str, working_day: int | None) -> Path:
    """The bundled example's config with a board receiver and a scheduled pack."""
    config = example_config("mps", workdir)
    day = f"working_day = {working_day}\n" if working_day is not None else ""
    config.write_text(config.read_text(encoding="utf-8") + f"""
[[notify.receivers]]
name = "board"
[[notify.receivers.email]]
to = ["board@example.org"]
from = "kpi-monitor@example.org"
host = "127.0.0.1"
port = {smtp_port}

[[reports]]
name = "monthly"
title = "Monthly performance report"
organisation = "Metropolitan Police Service"
schedule = "{schedule}"
timezone = "Europe/London"
{day}formats = ["pdf", "xlsx"]
directory = "{workdir / 'reports'}"
receivers = ["board"]
""", encoding="utf-8")
    return config


def _attachments(message: Message) -> dict[str, bytes]:
    out = {}
    for part in message.walk():
        if part.get_filename():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[part.get_filename()] = payload
    return out


def board(outcomes: list[Outcome]) -> list[str]:
    """The outcomes of the board's messages (the example's alerts go to its log file)."""
    return [o.outcome for o in outcomes if o.receiver == "board"]


def _fill(app: App) -> None:
    assert app.poller is not None and app.rules is not None
    for source in app.settings.sources:
        app.poller.poll(source.name)
    app.rules.evaluate()


def test_the_fifth_working_day_s_pack_arrives_once_by_email_across_restarts_and_a_failure(
        tmp_path: Path, smtp: tuple[SmtpHandler, int]) -> None:
    handler, port = smtp
    config = with_report(tmp_path, port, "0 9 * * *", working_day=5)
    # 07:59 UTC on Thursday 7 August 2008, the 5th working day: a minute before 09:00 BST.
    clock = FixedClock(datetime(2008, 8, 7, 7, 59, tzinfo=UTC))
    first = assembled(config, clock)
    try:
        _fill(first)
        assert first.reports is not None and first.reports.run_due() == 0
    finally:
        first.stop()  # down over 09:00

    clock.set(datetime(2008, 8, 7, 10, 30, tzinfo=UTC))  # back up in the middle of the window
    second = assembled(config, clock)
    try:
        _fill(second)
        assert second.reports is not None and second.notifier is not None
        handler.replies.append("451 4.3.0 mailbox busy, try again later")
        assert second.reports.run_due() == 1
        outcomes = board(second.notifier.dispatcher.run_once())
        assert outcomes == ["failed"]  # retried, not lost
        assert handler.messages == []
        clock.advance(timedelta(minutes=10))
        assert board(second.notifier.dispatcher.run_once()) == ["delivered"]
        assert second.reports.run_due() == 0
    finally:
        second.stop()

    clock.set(datetime(2008, 8, 7, 15, 0, tzinfo=UTC))  # restarted again the same day
    third = assembled(config, clock)
    try:
        _fill(third)
        assert third.reports is not None and third.notifier is not None
        assert third.reports.run_due() == 0
        assert board(third.notifier.dispatcher.run_once()) == []
        assert len(handler.messages) == 1
        clock.set(datetime(2008, 9, 5, 8, 0, tzinfo=UTC))  # 5th working day of September
        assert third.reports.run_due() == 1
        third.notifier.dispatcher.run_once()
    finally:
        third.stop()
    assert len(handler.messages) == 2
    _, recipients, message = handler.messages[0]
    assert recipients == ["board@example.org"]
    assert message["Subject"] == "Monthly performance report: data to Jul-08"
    files = _attachments(message)
    assert sorted(files) == ["monthly-2008-07.pdf", "monthly-2008-07.xlsx"]
    assert files["monthly-2008-07.pdf"].startswith(b"%PDF")
    pdf = tmp_path / "attached.pdf"
    pdf.write_bytes(files["monthly-2008-07.pdf"])
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    assert "Metropolitan Police Service" in text and "Victim satisfaction" in text
    assert files["monthly-2008-07.xlsx"].startswith(b"PK")  # a zip: the workbook
    # The directory keeps the latest pack of the month (rules.as_of fixes it at July).
    latest = _attachments(handler.messages[1][2])
    assert (tmp_path / "reports" / "monthly-2008-07.pdf").read_bytes() == \
        latest["monthly-2008-07.pdf"]


def _wait(predicate: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.slow  # two real daemons, one after the other
def test_the_running_daemon_sends_its_scheduled_pack_once_and_not_again_after_a_restart(
        tmp_path: Path, smtp: tuple[SmtpHandler, int]) -> None:
    """The real daemon (scheduler, HTTP): its clock stands at the moment it starts (the
    scheduler runs on the wall clock), and the schedule's instant a minute before it, so
    the daemon starts in the middle of the window."""
    handler, port = smtp
    started = datetime.now(UTC).replace(second=0, microsecond=0)
    instant = (started - timedelta(minutes=1)).astimezone(ZoneInfo("Europe/London"))
    config = with_report(tmp_path, port, f"{instant.minute} {instant.hour} * * *",
                         working_day=None)
    for attempt in range(2):
        app = App(load(config, environ={}), config, clock=FixedClock(datetime.now(UTC)),
                  registry=CollectorRegistry())
        app.start()
        try:
            reports = app.reports
            assert reports is not None
            _wait(lambda r=reports, first=attempt == 0: r.checks >= 1
                  and (not first or bool(handler.messages)))
            if attempt == 0:
                listen = app.settings.server.listen
                page = httpx.get(f"http://{listen}/report?at=2008-07", timeout=30)
                assert page.status_code == 200
                assert "Victim satisfaction with overall service" in page.text
                assert "Exceptions since 2008-06" in page.text
                _, html = run(["report", "--config", str(config), "--at", "2008-07",
                               "--format", "html", "--out", "-"])
                assert page.text.split("<h2>Scorecard</h2>")[1] == \
                    html.split("<h2>Scorecard</h2>")[1]
        finally:
            app.stop()
    assert len(handler.messages) == 1
    assert sorted(_attachments(handler.messages[0][2])) == ["monthly-2008-07.pdf",
                                                            "monthly-2008-07.xlsx"]
