"""Scheduled performance packs (``[[reports]]``): generate once, deliver through the outbox.

A job runs every ``CHECK_INTERVAL`` seconds and, for each configured report, asks its
schedule (:mod:`monitor.schedule`) which occurrence is due: the latest one within
``catch_up`` that is later than the occurrence recorded as done. For a due one it:

1. evaluates the month once (:func:`monitor.report.generate.month_pack`: the month in
   ``rules.as_of``, else the month before the occurrence's day) and renders every format
   from that one pack (:func:`monitor.report.generate.render`, as ``monitor report``
   does: one HTML document for html and pdf, the workbook in a worker process);
2. writes the files into the report's directory (a temporary name, then a rename: a
   crash never leaves half a file under the real name);
3. in one store transaction: checks the occurrence is still not done, queues one
   outbox message per integration of each receiver (email attaches the files, chat and
   the others carry the link to ``/report``), and records the occurrence as done.

The outbox then delivers like any notification: retried with backoff, dead letters
kept and re-sendable. A restart anywhere in this leaves nothing lost and nothing sent
twice: before step 3 commits, the next check does it all again (the same file names);
after it, the occurrence is done and the messages are in the outbox.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.clock import Clock
from monitor.logs import get_logger
from monitor.model import Frequency
from monitor.notify.config import NotifyConfig
from monitor.notify.notification import Notification, ReportNote
from monitor.notify.pipeline import new_message_id
from monitor.report.generate import file_name, month_pack, render
from monitor.report.pack import Pack
from monitor.rules.loader import RuleSet
from monitor.schedule import due
from monitor.settings import ReportSettings, Settings
from monitor.store import Store
from monitor.store.notify import NewMessage

log = get_logger(__name__)
CHECK_INTERVAL = 15.0  # seconds between looks at the schedules


def meta_key(name: str) -> str:
    return f"report.{name}.done"


def report_period(settings: Settings, occurrence: datetime, timezone: Any) -> int:
    """Return the month a pack generated at ``occurrence`` reports: ``rules.as_of`` when
    set (a daemon replaying a past month), else the month before the occurrence's day in
    the schedule's time zone (the pack of the 5th working day of August is July's)."""
    month = Frequency.MONTHLY
    if settings.rules.as_of:
        return month.parse(settings.rules.as_of)
    local = occurrence.astimezone(timezone).date()
    return month.parse(f"{local.year:04d}-{local.month:02d}") - 1


def summary(pack: Pack) -> str:
    """``6 red, 2 amber, 8 green; 3 exceptions since 2008-06; 9 SPC charts``."""
    counts = Counter(row.status for row in pack.rows)
    order = sorted(counts, key=lambda s: -s.code)
    statuses = ", ".join(f"{counts[s]} {s.word}" for s in order)
    return (f"{statuses or 'no rows'}; {len(pack.exceptions)} exception"
            f"{'s' if len(pack.exceptions) != 1 else ''} since {pack.previous_period}; "
            f"{len(pack.charts)} SPC chart{'s' if len(pack.charts) != 1 else ''}")


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Reports:
    """The scheduled packs of one daemon, and the pack ``/report`` shows."""

    def __init__(self, store: Store, settings: Callable[[], Settings],
                 ruleset: Callable[[], RuleSet | None], clock: Clock, *,
                 wake: Callable[[], None] = lambda: None,
                 ready: Callable[[], bool] = lambda: True,
                 owns: Callable[[str], bool] | None = None,
                 new_id: Callable[[], str] = new_message_id) -> None:
        self.store = store
        self.settings = settings
        self.ruleset = ruleset
        self.clock = clock
        self.wake = wake
        self.ready = ready
        self.owns = owns
        self.checks = 0  # scheduled checks run (tests wait for one)
        self.new_id = new_id
        self._lock = threading.Lock()

    def pack(self, period: int, report: ReportSettings | None = None) -> Pack | None:
        """Return the pack of the month ``period``; None before rules are loaded."""
        ruleset = self.ruleset()
        if ruleset is None:
            return None
        settings = self.settings()
        report = report or (settings.reports[0] if settings.reports else ReportSettings())
        return month_pack(settings, self.store, ruleset, period,
                          generated_at=self.clock.now(), title=report.title,
                          organisation=report.organisation)

    def run_due(self, now: datetime | None = None) -> int:
        """Generate and queue every report whose occurrence is due; return how many
        messages were queued. Nothing is generated before the daemon is ``ready`` (its
        first polls and evaluation done): a pack of an empty store would be sent."""
        now = now or self.clock.now()
        queued = 0
        if not self.ready():
            return 0
        with self._lock:
            for report in self.settings().reports:
                if self.owns is not None and not self.owns(report.name):
                    continue
                queued += self._run(report, now)
        return queued

    def _run(self, report: ReportSettings, now: datetime) -> int:
        schedule = report.calendar()
        catch_up = timedelta(seconds=report.catch_up)
        occurrence = due(schedule, now, catch_up, self._done(report.name))
        if occurrence is None:
            return 0
        settings = self.settings()
        period = report_period(settings, occurrence, schedule.zone)
        pack = self.pack(period, report)
        if pack is None:
            return 0
        directory = Path(report.directory)
        files = []
        for fmt, data in render(pack, report.formats).items():
            path = (directory / file_name(report.name, pack.period, fmt)).resolve()
            write_atomically(path, data)
            files.append(str(path))
        external = settings.server.external_url.rstrip("/")
        note = ReportNote(report.name, report.title, pack.period, pack.data_to,
                          tuple(files), f"{external}/report?at={pack.period}" if external
                          else "", summary(pack))
        messages = self._messages(settings.notify, report, note, external, now)
        key = meta_key(report.name)
        with self.store.notify.transaction() as tx:
            done = tx.get_meta(key)
            if done is not None and datetime.fromisoformat(done) >= occurrence:
                return 0  # another process did it meanwhile
            tx.enqueue(messages, now)
            tx.set_meta(key, occurrence.isoformat(), now)
        log.info("performance pack generated", report=report.name, period=pack.period,
                 occurrence=occurrence.isoformat(), files=len(files), messages=len(messages))
        self.wake()
        return len(messages)

    def _done(self, name: str) -> datetime | None:
        value = self.store.notify.get_meta(meta_key(name))
        return datetime.fromisoformat(value) if value else None

    def _messages(self, notify: NotifyConfig, report: ReportSettings, note: ReportNote,
                  external: str, now: datetime) -> list[NewMessage]:
        messages: list[NewMessage] = []
        for name in report.receivers:
            receiver = notify.receiver(name)
            if receiver is None:
                continue
            message_id = self.new_id()
            notification = Notification(
                kind="report", receiver=receiver.name,
                group_key=f"report:{report.name}:{note.period}:{message_id}",
                group_labels={}, alerts=(), created_at=now, message_id=message_id,
                thread_id=message_id, external_url=external, report=note)
            payload = notification.to_json()
            messages.extend(NewMessage(receiver.name, integration, notification.group_key,
                                       payload) for integration, _ in receiver.integrations())
        return messages

    def check(self) -> None:
        """The scheduled job: never raises (one log line instead)."""
        try:
            self.run_due()
        except Exception as exc:  # the next check tries again
            log.error("performance pack failed; will try again", error=str(exc))
        finally:
            self.checks += 1

    def schedule(self, scheduler: Any) -> None:
        """Add the job that looks at the schedules every ``CHECK_INTERVAL`` seconds."""
        scheduler.add_job(self.check, "interval", seconds=CHECK_INTERVAL, id="reports",
                          replace_existing=True, max_instances=1, coalesce=True,
                          next_run_time=datetime.now(scheduler.timezone))
