"""The process's memory: freed heap given back after each cycle, and the cyclic garbage
collector paused while a bulk step makes objects.

An evaluation builds and frees matrices of tens of megabytes. glibc keeps freed heap
pages mapped for reuse, and with the heap fragmented between cycles the resident size
ratchets up over weeks (``benchmarks/soak.py`` measured it). :func:`trim` asks glibc to
return what is free (``malloc_trim``); it takes a few milliseconds, and does nothing
where the C library is not glibc.

A poll's parse, a cycle's alert records and transitions, a report: each makes hundreds of
thousands of small objects that are not in cycles, and every generation-2 pass of the
collector walks the whole heap (millions of objects in a daemon holding 100,000 series).
:func:`gc_paused` pauses it for such a step, and when the step ends it freezes what the
step left (``gc.freeze``): the records a cycle keeps are walked by no pass afterwards.
Without that, the first passes after a cycle walked all of them, in whichever step the
allocation counts made them fall: at 1,000,000 series a full pass of 6 s fell inside a
first cycle (``benchmarks/bench_daemon.py`` prints the collector's seconds within each
cycle).

Reference counting frees a frozen object as any other; only garbage in cycles waits for
a full pass. So once every :data:`COLLECT_INTERVAL` seconds a step's end runs one
(unfreeze, collect, freeze again) instead of the freeze: its figures are logged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from monitor.logs import get_logger

log = get_logger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        function: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    return function


_TRIM = _malloc_trim()


def trim() -> bool:
    """Return freed heap memory to the operating system; return whether any was."""
    return bool(_TRIM(0)) if _TRIM is not None else False


COLLECT_INTERVAL = 3600.0  # seconds between full passes over what the steps froze

_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_resume = False
_collected_at = time.monotonic()


def collect() -> int:
    """Run a full pass over the whole heap, the frozen objects too, and freeze what
    survives; return how many unreachable objects it found. Log its figures."""
    global _collected_at
    started = time.perf_counter()
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    _collected_at = time.monotonic()
    log.info("garbage collected", unreachable=found, frozen_before=frozen,
             frozen_after=gc.get_freeze_count(),
             seconds=round(time.perf_counter() - started, 3))
    return found


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block; it resumes, as it was, when the
    last of the blocks open in any thread ends.

    Reference counting still frees every object not in a cycle. What the block leaves
    is frozen as it resumes (the module's docstring): cycles made meanwhile wait for the
    next full pass, at most :data:`COLLECT_INTERVAL` seconds later. The collector is the
    process's: other threads' cycles wait too, for as long as the block (a parse, a
    cycle, a pack) takes.
    """
    global _gc_pauses, _gc_resume
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_resume:
                if time.monotonic() - _collected_at >= COLLECT_INTERVAL:
                    collect()
                else:
                    gc.freeze()
                gc.enable()
