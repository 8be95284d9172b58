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
:func:`gc_paused` pauses it for such a step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


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


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block; it resumes, as it was, when the
    last of the blocks open in any thread ends.

    Reference counting still frees every object not in a cycle; cycles made meanwhile
    are collected once it runs again. The collector is the process's: other threads'
    cycles wait too, for as long as the block (a parse, a cycle, a pack) takes.
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
                gc.enable()
