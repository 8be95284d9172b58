"""Waiting before trying again: exponential backoff, ``Retry-After`` and a token bucket.

The one home of the waits every retrying part shares — the source fetcher and poller,
the notification dispatcher and the cluster heartbeat. It depends on nothing above the
standard library, so any layer may import it.

- :func:`backoff` — how long to wait before retry *n*: doubled (or ``multiplier``-ed)
  each time, capped, spread by a jitter so that callers who failed together do not
  come back together;
- :func:`retry_after_seconds` — the wait a server asks for in ``Retry-After``, as
  seconds or as an HTTP date;
- :class:`TokenBucket` — a rate limit: a burst at once, then a steady rate.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_RNG = random.Random()  # noqa: S311 (jitter, not secrecy)
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def backoff(attempt: int, initial: float, cap: float, *, multiplier: float = 2.0,
            jitter: float = 0.0, rng: random.Random | None = None) -> float:
    """Return the seconds to wait before retry ``attempt`` (1 for the first retry).

    The wait is ``initial`` × ``multiplier`` ^ (``attempt`` − 1), at most ``cap``; with a
    ``jitter`` (a fraction, 0.2 for ±20 %) it is drawn evenly from that wait ± the
    fraction, never above ``cap`` — so waits that reached the cap still differ. However
    large ``attempt`` grows, the answer is the capped wait (it never overflows).
    """
    try:
        wait = initial * multiplier ** max(0, attempt - 1)
    except OverflowError:
        wait = cap
    wait = max(0.0, min(wait, cap))
    if jitter <= 0:
        return wait
    low = wait * (1.0 - jitter)
    high = min(cap, wait * (1.0 + jitter))
    return max(0.0, low + (high - low) * (rng or _RNG).random())


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Return the wait a ``Retry-After`` header asks for, from ``now``, in seconds.

    The header is either a number of seconds (``120``) or an HTTP date (``Wed, 21 Oct
    2015 07:28:00 GMT``; a date without a zone is UTC); a date in the past asks for 0.
    Returns None when the header is absent or neither (``soon``, ``-5``, ``inf``).
    """
    if not value:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class TokenBucket:
    """A rate limit: ``burst`` at once, then ``rate`` per second on average.

    The bucket holds up to ``burst`` tokens, starts full and refills at ``rate`` tokens
    a second by the injected ``monotonic`` clock; each request takes one. Safe to share
    between threads.
    """

    def __init__(self, rate: float, burst: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1 "
                             f"(got rate {rate:g}, burst {burst:g})")
        self.rate = float(rate)
        self.burst = float(burst)
        self._monotonic = monotonic
        self._tokens = self.burst
        self._updated = monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._updated) * self.rate)
        self._updated = now

    def take(self) -> float:
        """Take a token and return 0.0 when one is free; else take nothing and return
        the seconds until one will be."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0 - 1e-9:
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            return (1.0 - self._tokens) / self.rate

    def wait(self, sleep: Callable[[float], None]) -> float:
        """Take a token, sleeping (with ``sleep``) until one is free; return the seconds
        slept (0.0 when a token was free)."""
        delay = self.take()
        if delay <= 0:
            return 0.0
        sleep(delay)
        with self._lock:
            self._refill()
            self._tokens = max(self._tokens, 1.0) - 1.0
        return delay
