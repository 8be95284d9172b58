"""Named time intervals with Alertmanager's ``time_intervals`` semantics.

A named interval is a list of specs; it contains an instant when any spec does. A spec
contains an instant when every field it sets does (an unset field accepts all):

- ``times``: ``{start_time = "09:00", end_time = "17:00"}``, start inclusive, end
  exclusive, ``24:00`` allowed as an end;
- ``weekdays``: ``"monday:friday"``, ``"saturday"`` (a range may wrap: ``"friday:monday"``);
- ``days_of_month``: ``"1:7"``, ``"-1"`` (negative counts from the month's end);
- ``months``: ``"january:march"``, ``"12"``; ``years``: ``"2026:2027"``;
- ``location``: an IANA time zone (``Europe/London``) the fields are read in; UTC if unset.

Routes use them as ``mute_time_intervals`` / ``active_time_intervals``; recurring
silences use one spec as their recurrence.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, field_validator

from monitor.configtypes import Section

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
_CLOCK = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


def _parse_clock(text: str) -> int:
    """Return minutes since midnight for ``HH:MM`` (``24:00`` is 1440).

    Raises ValueError with the expected form.
    """
    found = _CLOCK.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a time of day; write it like 09:00 or 17:30")
    minutes = int(found.group(1)) * 60 + int(found.group(2))
    if minutes > 1440:
        raise ValueError(f"{text!r} is after 24:00")
    return minutes


def _split_range(text: str) -> tuple[str, str]:
    start, sep, end = text.strip().partition(":")
    return (start.strip(), end.strip()) if sep else (start.strip(), start.strip())


def _weekday(name: str) -> int:
    try:
        return WEEKDAYS.index(name.lower())
    except ValueError:
        raise ValueError(f"{name!r} is not a weekday; use monday … sunday") from None


def _month(name: str) -> int:
    if name.isdigit() and 1 <= int(name) <= 12:
        return int(name)
    try:
        return MONTHS.index(name.lower()) + 1
    except ValueError:
        raise ValueError(f"{name!r} is not a month; use january … december or 1 … 12") from None


def _day_of_month(text: str) -> int:
    try:
        day = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a day of the month; use 1 … 31 or -31 … -1") \
            from None
    if day == 0 or not -31 <= day <= 31:
        raise ValueError(f"{text!r} is not a day of the month; use 1 … 31 or -31 … -1")
    return day


class TimeRange(Section):
    """One range of the day: ``start_time`` inclusive, ``end_time`` exclusive."""

    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        _parse_clock(value)
        return value

    def minutes(self) -> tuple[int, int]:
        """Return (start, end) in minutes since midnight."""
        return _parse_clock(self.start_time), _parse_clock(self.end_time)


class TimeIntervalSpec(Section):
    """One spec of a time interval; every field it sets must contain the instant."""

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list)
    days_of_month: list[str] = Field(default_factory=list)
    months: list[str] = Field(default_factory=list)
    years: list[str] = Field(default_factory=list)
    location: str = "UTC"

    _compiled: CompiledSpec | None = PrivateAttr(default=None)

    @field_validator("times")
    @classmethod
    def _ordered_times(cls, value: list[TimeRange]) -> list[TimeRange]:
        for item in value:
            start, end = item.minutes()
            if start >= end:
                raise ValueError(f"time range {item.start_time}-{item.end_time}: the start "
                                 "must be before the end (a range cannot cross midnight; "
                                 "write two ranges)")
        return value

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: list[str]) -> list[str]:
        for item in value:
            start, end = _split_range(item)
            _weekday(start)
            _weekday(end)
        return value

    @field_validator("days_of_month")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        for item in value:
            start, end = _split_range(item)
            first, last = _day_of_month(start), _day_of_month(end)
            if (first > 0) == (last > 0) and first > last:
                raise ValueError(f"days_of_month {item!r}: the start is after the end")
        return value

    @field_validator("months")
    @classmethod
    def _months(cls, value: list[str]) -> list[str]:
        for item in value:
            start, end = _split_range(item)
            if _month(start) > _month(end):
                raise ValueError(f"months {item!r}: the start is after the end")
        return value

    @field_validator("years")
    @classmethod
    def _years(cls, value: list[str]) -> list[str]:
        for item in value:
            start, end = _split_range(item)
            if not (start.isdigit() and end.isdigit()):
                raise ValueError(f"years {item!r}: write a year like 2026 or a range 2026:2027")
            if int(start) > int(end):
                raise ValueError(f"years {item!r}: the start is after the end")
        return value

    @field_validator("location")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone; write one like "
                             "Europe/London or UTC") from None
        return value

    def compiled(self) -> CompiledSpec:
        """Return the spec with every range parsed (computed once)."""
        if self._compiled is None:
            self._compiled = CompiledSpec.of(self)
        return self._compiled

    def contains(self, at: datetime) -> bool:
        """Return True when the instant ``at`` (aware) falls inside this spec."""
        return self.compiled().contains(at)


@dataclass(frozen=True)
class CompiledSpec:
    """A :class:`TimeIntervalSpec` with its ranges as integers; ``None`` means any."""

    times: tuple[tuple[int, int], ...] | None
    weekdays: frozenset[int] | None
    days_of_month: tuple[tuple[int, int], ...] | None
    months: tuple[tuple[int, int], ...] | None
    years: tuple[tuple[int, int], ...] | None
    zone: ZoneInfo

    @classmethod
    def of(cls, spec: TimeIntervalSpec) -> CompiledSpec:
        weekdays: set[int] = set()
        for item in spec.weekdays:
            start, end = (_weekday(x) for x in _split_range(item))
            day = start
            weekdays.add(day)
            while day != end:
                day = (day + 1) % 7
                weekdays.add(day)
        return cls(
            times=tuple(t.minutes() for t in spec.times) or None,
            weekdays=frozenset(weekdays) if spec.weekdays else None,
            days_of_month=tuple(
                (_day_of_month(a), _day_of_month(b))
                for a, b in map(_split_range, spec.days_of_month)) or None,
            months=tuple((_month(a), _month(b))
                         for a, b in map(_split_range, spec.months)) or None,
            years=tuple((int(a), int(b)) for a, b in map(_split_range, spec.years)) or None,
            zone=ZoneInfo(spec.location),
        )

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        if self.times is not None:
            minute = local.hour * 60 + local.minute
            if not any(start <= minute < end for start, end in self.times):
                return False
        if self.weekdays is not None and local.weekday() not in self.weekdays:
            return False
        if self.days_of_month is not None and not self._in_days(local):
            return False
        if self.months is not None and not any(a <= local.month <= b for a, b in self.months):
            return False
        return self.years is None or any(a <= local.year <= b for a, b in self.years)

    def _in_days(self, local: datetime) -> bool:
        length = calendar.monthrange(local.year, local.month)[1]
        for first, last in self.days_of_month or ():
            begin = length + first + 1 if first < 0 else first
            end = length + last + 1 if last < 0 else last
            if begin > length:
                continue
            if max(begin, 1) <= local.day <= min(end, length):
                return True
        return False


class TimeIntervalConfig(Section):
    """A named time interval (``[[notify.time_intervals]]``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    time_intervals: list[TimeIntervalSpec] = Field(min_length=1)

    def contains(self, at: datetime) -> bool:
        """Return True when any of the interval's specs contains ``at``."""
        return any(spec.contains(at) for spec in self.time_intervals)


def any_active(names: Iterable[str], intervals: Mapping[str, TimeIntervalConfig],
               at: datetime) -> str | None:
    """Return the name of the first of ``names`` that contains ``at``, or None."""
    for name in names:
        interval = intervals.get(name)
        if interval is not None and interval.contains(at):
            return name
    return None


def spec_from_dict(data: Mapping[str, Any]) -> TimeIntervalSpec:
    """Return the spec stored as JSON (a recurring silence's recurrence).

    Raises pydantic.ValidationError when the data is not a valid spec.
    """
    return TimeIntervalSpec.model_validate(dict(data))
