"""Watching the wall clock: a jump forwards or backwards is logged, counted and acted on.

The scheduler's timers and every time in the store follow the wall clock. When it jumps
back (an NTP step, a virtual machine restored from a snapshot, someone fixing the
date), every timer set before the jump lies in the future by the size of the jump:
without help the scheduler would run no poll, evaluation or notification until the
clock caught up again. A forward jump makes everything due at once, which is harmless.

:class:`ClockWatch` compares, about once a second, how far the wall clock moved with
how far the monotonic clock moved. A difference beyond the tolerance is a jump: one
warning line (``wall clock jumped``), ``monitor_clock_jumps_total{direction}`` and
``monitor_clock_last_jump_seconds``, then the ``on_jump`` callback, which the daemon
uses to make its timers due now (see ``App._on_clock_jump``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.logs import get_logger

log = get_logger(__name__)
TOLERANCE = 2.0  # seconds of disagreement that still count as the same clock
DIRECTIONS = ("forward", "backward")


def clock_offset(wall_before: float, wall_after: float, mono_before: float,
                 mono_after: float) -> float:
    """Return how many seconds the wall clock moved beyond the monotonic clock between
    two readings: positive when it jumped forwards, negative when backwards."""
    return (wall_after - wall_before) - (mono_after - mono_before)


class ClockMetrics:
    """``monitor_clock_*``: jumps of the wall clock."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jumps = Counter("monitor_clock_jumps", "Jumps of the wall clock seen, by "
                             "direction.", ["direction"], registry=registry)
        self.last_jump = Gauge("monitor_clock_last_jump_seconds", "Size of the last wall-"
                               "clock jump in seconds (negative: backwards).",
                               registry=registry)
        for direction in DIRECTIONS:
            self.jumps.labels(direction)


class ClockWatch:
    """Notices wall-clock jumps; ``check`` is one comparison, ``start`` runs them in a
    thread."""

    def __init__(self, registry: CollectorRegistry, on_jump: Callable[[float], None], *,
                 tolerance: float = TOLERANCE, interval: float = 1.0,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.metrics = ClockMetrics(registry)
        self.on_jump = on_jump
        self.tolerance = tolerance
        self.interval = interval
        self.wall = wall
        self.monotonic = monotonic
        self._last = (wall(), monotonic())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> float:
        """Compare the clocks once; on a jump log it, count it and call ``on_jump``.

        Returns the jump in seconds (0.0 when the clocks agree within the tolerance).
        """
        wall, mono = self.wall(), self.monotonic()
        offset = clock_offset(self._last[0], wall, self._last[1], mono)
        self._last = (wall, mono)
        if abs(offset) <= self.tolerance:
            return 0.0
        direction = "forward" if offset > 0 else "backward"
        self.metrics.jumps.labels(direction).inc()
        self.metrics.last_jump.set(offset)
        log.warning("wall clock jumped; making timers due now", direction=direction,
                    seconds=round(offset, 3))
        try:
            self.on_jump(offset)
        except Exception:  # the watch must keep watching
            log.exception("handling the clock jump failed")
        return offset

    def start(self) -> None:
        """Check every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._last = (self.wall(), self.monotonic())
        self._thread = threading.Thread(target=self._run, name="clock-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
