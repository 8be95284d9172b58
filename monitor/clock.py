"""The injected clock: nothing deep in the code calls ``datetime.now()``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to; for tests, backtests and `monitor eval --at`."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at if at.tzinfo else at.replace(tzinfo=UTC)

    def advance(self, delta: timedelta) -> None:
        self._at += delta


def clock_of(args: Any) -> Clock:
    """Return the clock a CLI command runs on: the one ``monitor.cli.main`` was given
    (tests pass a FixedClock), else the wall clock."""
    clock: Clock | None = getattr(args, "clock", None)
    return clock if clock is not None else SystemClock()
