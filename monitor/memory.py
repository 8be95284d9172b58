"""Giving freed heap memory back to the operating system after each evaluation cycle.

An evaluation builds and frees matrices of tens of megabytes. glibc keeps freed heap
pages mapped for reuse, and with the heap fragmented between cycles the resident size
ratchets up over weeks (``benchmarks/soak.py`` measured it). :func:`trim` asks glibc to
return what is free (``malloc_trim``); it takes a few milliseconds, and does nothing
where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


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
