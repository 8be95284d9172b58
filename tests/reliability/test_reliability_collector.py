"""What a step run with the collector paused leaves is frozen, not walked by the passes
after it (at 1,000,000 series one such pass took 6 s, inside a cycle); and
the garbage in cycles that step made is still freed, by the full pass made once every
``COLLECT_INTERVAL`` seconds — a daemon that runs for months does not grow by it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from monitor import memory
from monitor.memory import gc_paused


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as a daemon has it, left as it was found."""
    assert gc.isenabled()
    yield
    gc.unfreeze()


def test_what_a_paused_step_keeps_is_frozen_and_freed_as_usual(collector: None) -> None:
    before = gc.get_freeze_count()
    with gc_paused():
        kept = [[i] for i in range(50_000)]  # a cycle's records: containers, no cycles
    assert gc.isenabled()
    assert gc.get_freeze_count() >= before + 50_000
    assert not any(o is kept for o in gc.get_objects())  # no pass walks them again
    frozen = gc.get_freeze_count()
    del kept  # reference counting frees them, frozen or not
    assert gc.get_freeze_count() <= frozen - 50_000


def test_garbage_in_cycles_waits_for_the_full_pass_then_is_freed(
        collector: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_collected_at", memory.time.monotonic())
    with gc_paused():
        a, b = Node(), Node()
        a.other, b.other = b, a
        alive = weakref.ref(a)
        del a, b
    gc.collect()  # the frozen cycle is not the collector's until the full pass
    assert alive() is not None

    with gc_paused():  # a step that ends before the interval is up: no pass yet
        pass
    assert alive() is not None

    monkeypatch.setattr(memory, "_collected_at",
                        memory.time.monotonic() - memory.COLLECT_INTERVAL)
    with gc_paused():  # the next step to end after the interval makes the full pass
        pass
    assert alive() is None
    assert gc.isenabled()
    assert memory.time.monotonic() - memory._collected_at < memory.COLLECT_INTERVAL
