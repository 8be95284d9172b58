"""Calendar schedules: a 5-field crontab in a time zone, optionally only on the Nth
working day of each month ("the 5th working day, 09:00, Europe/London").

Pure functions of their inputs and ``now``: APScheduler's ``CronTrigger`` yields the
crontab's instants, and the working-day rule filters them — explicitly, so a test can
check any month on an injected clock. A working day is Monday to Friday and not one of
the listed holidays (dates in the schedule's time zone).

:func:`latest` answers the one question a scheduled job asks after a restart: which
occurrence is the most recent one at or before ``now``, within ``catch_up``? A job
that records the occurrences it has done therefore runs each one exactly once, whether
the process was up at the instant, restarted in the middle of the window, or both.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_STEPS = 100_000  # crontab instants looked at in one search (a minutely cron: 69 days)


class ScheduleError(ValueError):
    """A schedule that cannot be read; the message says what to write instead."""


def working_days(year: int, month: int, holidays: Collection[date] = ()) -> list[date]:
    """Return the month's working days in order: Monday to Friday, holidays left out."""
    day = date(year, month, 1)
    out = []
    while day.month == month:
        if day.weekday() < 5 and day not in holidays:
            out.append(day)
        day += timedelta(days=1)
    return out


def nth_working_day(year: int, month: int, n: int, holidays: Collection[date] = ()
                    ) -> date | None:
    """Return the ``n``-th (1-based) working day of the month, or None when it has fewer."""
    days = working_days(year, month, holidays)
    return days[n - 1] if 0 < n <= len(days) else None


@dataclass(frozen=True)
class Schedule:
    """A crontab in a time zone, optionally restricted to the Nth working day of a month.

    Raises ScheduleError from the constructor when the crontab, the zone or the working
    day cannot be used.
    """

    cron: str
    timezone: str = "UTC"
    working_day: int | None = None
    holidays: tuple[date, ...] = ()
    _trigger: object = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from apscheduler.triggers.cron import CronTrigger

        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"unknown time zone {self.timezone!r}; write an IANA zone "
                                "such as Europe/London") from None
        try:
            trigger = CronTrigger.from_crontab(self.cron, timezone=zone)
        except ValueError as exc:
            raise ScheduleError(f"schedule {self.cron!r}: {exc}; write a 5-field crontab "
                                "such as \"0 9 * * *\" (minute hour day month weekday)") \
                from None
        if self.working_day is not None and not 1 <= self.working_day <= 23:
            raise ScheduleError(f"working_day {self.working_day}: a month has 1 to 23 working "
                                "days; write 1 for the first, 5 for the fifth")
        object.__setattr__(self, "_trigger", trigger)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _matches(self, instant: datetime) -> bool:
        if self.working_day is None:
            return True
        local = instant.astimezone(self.zone).date()
        return local == nth_working_day(local.year, local.month, self.working_day,
                                        self.holidays)

    def occurrences(self, start: datetime) -> Iterator[datetime]:
        """Yield the schedule's instants from ``start`` on (inclusive), as aware datetimes.

        Stops after ``MAX_STEPS`` crontab instants without a match.
        """
        previous: datetime | None = None
        at = start - timedelta(microseconds=1)
        misses = 0
        while misses < MAX_STEPS:
            nxt = self._trigger.get_next_fire_time(previous, at)  # type: ignore[attr-defined]
            if nxt is None:
                return
            previous, at = nxt, nxt + timedelta(microseconds=1)
            if nxt < start:
                continue
            if self._matches(nxt):
                misses = 0
                yield nxt
            else:
                misses += 1

    def next_after(self, now: datetime) -> datetime | None:
        """Return the first occurrence strictly after ``now``."""
        return next(self.occurrences(now + timedelta(microseconds=1)), None)

    def latest(self, now: datetime, catch_up: timedelta) -> datetime | None:
        """Return the most recent occurrence in ``(now - catch_up, now]``, or None."""
        found = None
        for instant in self.occurrences(now - catch_up + timedelta(microseconds=1)):
            if instant > now:
                break
            found = instant
        return found


def due(schedule: Schedule, now: datetime, catch_up: timedelta, done: datetime | None
        ) -> datetime | None:
    """Return the occurrence a job should run now: the latest within ``catch_up`` when it is
    later than ``done`` (the last occurrence run), else None."""
    latest = schedule.latest(now, catch_up)
    if latest is None or (done is not None and latest <= done):
        return None
    return latest
