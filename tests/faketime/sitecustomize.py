"""Loaded at start-up by every Python process of ``make test-future`` (on PYTHONPATH).

``make test-future`` runs the suite under libfaketime with the wall clock a year ahead and
the monotonic clock left alone (``FAKETIME_DONT_FAKE_MONOTONIC=1``: timeouts, locks and
waits keep working). libfaketime 0.9.10 (Debian 12 and 13) then breaks ``time.sleep`` on
Python 3.11+, which sleeps with ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``: it
shifts the real monotonic deadline by the fake offset, and a year ahead makes it negative,
so every sleep raises ``OSError: [Errno 22] Invalid argument``
(https://github.com/wolfcw/libfaketime/issues/426). This replaces ``time.sleep`` with a
``select()`` wait on the real monotonic clock, before anything imports ``time.sleep``.
Outside a faked clock it does nothing.
"""

from __future__ import annotations

import os
import select
import time

_real_monotonic = time.monotonic


def _sleep(seconds: float) -> None:
    """Sleep ``seconds`` of real time, as ``time.sleep`` does; raise ValueError when negative."""
    seconds = float(seconds)
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = _real_monotonic() + seconds
    while True:
        select.select([], [], [], max(0.0, deadline - _real_monotonic()))
        if _real_monotonic() >= deadline:
            return


if "faketime" in os.environ.get("LD_PRELOAD", "") \
        and os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1":
    time.sleep = _sleep
