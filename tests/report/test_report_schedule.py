"""Working-day schedules, on an injected clock: which instant is due, and when not."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from monitor.schedule import Schedule, ScheduleError, due, nth_working_day

LONDON = "Europe/London"
FIFTH_AT_NINE = Schedule("0 9 * * *", LONDON, working_day=5)
DAY = timedelta(days=1)


@pytest.mark.parametrize(("year", "month", "holidays", "expected"), [
    pytest.param(2008, 8, (), date(2008, 8, 7), id="Aug-08 starts on a Friday"),
    pytest.param(2008, 5, (), date(2008, 5, 7), id="May-08 without holidays"),
    pytest.param(2008, 5, (date(2008, 5, 5),), date(2008, 5, 8), id="May bank holiday"),
    pytest.param(2026, 2, (), date(2026, 2, 6), id="Feb-26 starts on a Sunday"),
])
def test_it_counts_working_days_mondays_to_fridays_less_holidays(
        year: int, month: int, holidays: tuple[date, ...], expected: date) -> None:
    assert nth_working_day(year, month, 5, holidays) == expected


def test_the_fifth_working_day_at_nine_is_in_the_schedule_s_time_zone() -> None:
    start = datetime(2008, 7, 1, tzinfo=UTC)
    first, second, third = (o.astimezone(UTC) for o, _ in
                            zip(FIFTH_AT_NINE.occurrences(start), range(3), strict=False))
    assert first == datetime(2008, 7, 7, 8, 0, tzinfo=UTC)  # 09:00 BST
    assert second == datetime(2008, 8, 7, 8, 0, tzinfo=UTC)
    assert third == datetime(2008, 9, 5, 8, 0, tzinfo=UTC)
    winter = next(FIFTH_AT_NINE.occurrences(datetime(2008, 12, 1, tzinfo=UTC)))
    assert winter.astimezone(UTC) == datetime(2008, 12, 5, 9, 0, tzinfo=UTC)  # 09:00 GMT


@pytest.mark.parametrize(("now", "done", "expected"), [
    pytest.param(datetime(2008, 8, 7, 7, 59, tzinfo=UTC), None, None, id="a minute early"),
    pytest.param(datetime(2008, 8, 7, 8, 0, tzinfo=UTC), None,
                 datetime(2008, 8, 7, 8, 0, tzinfo=UTC), id="on the instant"),
    pytest.param(datetime(2008, 8, 7, 13, 30, tzinfo=UTC), None,
                 datetime(2008, 8, 7, 8, 0, tzinfo=UTC), id="restarted later that day"),
    pytest.param(datetime(2008, 8, 7, 13, 30, tzinfo=UTC),
                 datetime(2008, 8, 7, 8, 0, tzinfo=UTC), None, id="already done"),
    pytest.param(datetime(2008, 8, 8, 8, 1, tzinfo=UTC), None, None,
                 id="past the catch-up window"),
    pytest.param(datetime(2008, 9, 5, 8, 0, tzinfo=UTC),
                 datetime(2008, 8, 7, 8, 0, tzinfo=UTC),
                 datetime(2008, 9, 5, 8, 0, tzinfo=UTC), id="next month's is due again"),
])
def test_an_occurrence_is_due_once_within_its_catch_up_window(
        now: datetime, done: datetime | None, expected: datetime | None) -> None:
    assert due(FIFTH_AT_NINE, now, DAY, done) == expected


@pytest.mark.parametrize(("kwargs", "message"), [
    pytest.param({"cron": "0 9 * *"}, "write a 5-field crontab", id="four fields"),
    pytest.param({"cron": "0 9 * * *", "timezone": "Europe/Londres"}, "unknown time zone",
                 id="bad zone"),
    pytest.param({"cron": "0 9 * * *", "working_day": 24}, "1 to 23 working days",
                 id="no 24th working day"),
])
def test_a_schedule_that_cannot_be_used_says_what_to_write(kwargs: dict[str, object],
                                                           message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        Schedule(**kwargs)  # type: ignore[arg-type]
