"""What a step run with the collector paused leaves is frozen, not walked by the passes
after it (at 1,000,000 series one such pass took 6 s, inside a cycle); and
the garbage in cycles that step made is still freed, by the full pass made once every
``COLLECT_INTERVAL`` seconds — a daemon that runs for months does not grow by it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

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


RULES = """
indicators:
  - {id: burglary, name: Burglary, direction: down, targets: {"2016/17": {kind: level, value: 100}}}
  - {id: robbery, name: Robbery, direction: down, targets: {"2016/17": {kind: level, value: 100}}}
groups:
  - name: kpi
    rules:
      - {alert: WorseThanTarget, indicator: burglary, when: {level: {worse_than_target: true}}}
      - {alert: RollingYearUp, indicator: burglary, when: {change: {window: 12, above: 5}}}
      - alert: Slope
        indicator: burglary
        when: {trend: {test: slope, periods: 12, direction: rising, min_slope: 0.5}}
      - {alert: ForecastMiss, indicator: burglary, when: {forecast: {misses_target: true}}}
      - {alert: Spc, indicator: burglary, when: {spc: {signal: concern}}}
      - alert: Significant
        indicator: burglary
        when: {significance: {test: poisson, window: 12, alpha: 0.05}}
      - alert: Trend
        indicator: burglary
        when: {trend: {test: mann_kendall, periods: 36, direction: rising, alpha: 0.05}}
      - alert: UpWhileRobberyDown
        indicator: burglary
        on: [area]
        when:
          all:
            - change: {window: 12, above: 5}
            - change: {indicator: robbery, window: 12, below: 0}
"""


def test_a_cycle_replaced_by_the_next_or_by_a_reload_is_freed_without_the_collector(
        tmp_path: Path) -> None:
    """Nothing a cycle or a rule set leaves is held in a reference cycle: the matrices
    a new month replaces, and the engine a reload replaces, are freed by reference
    counting as soon as nothing names them — with the collector paused throughout, as
    the daemon runs. Frozen in a cycle, they would wait up to an hour for the full pass:
    at 1,000,000 series, gigabytes."""
    import numpy as np

    from monitor.rules.cycle import Cycle, Evaluator
    from monitor.rules.data import Block
    from monitor.rules.engine import Dataset, month_end
    from monitor.rules.loader import load_rules

    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    areas = 30

    def data(end: int) -> Dataset:
        rng = np.random.default_rng(end)
        months = np.arange(end - 35, end + 1)
        blocks = {}
        for indicator in ("burglary", "robbery"):
            values = rng.poisson(100, size=(areas, months.size)).astype(float)
            values += np.linspace(0, 20, months.size)  # rising: some alerts fire
            blocks[indicator] = Block(
                [{"area": f"a{i}"} for i in range(areas)], np.repeat(np.arange(areas), 36),
                np.tile(months, areas), values.ravel(), np.full(values.size, np.nan),
                np.zeros(values.size, dtype=bool), np.zeros(values.size, dtype=np.int64))
        return Dataset(blocks)

    end = 24203  # Dec 2016
    with gc_paused():
        evaluator = Evaluator(load_rules([path]))
        first = evaluator.run(data(end), {}, Cycle(at=month_end(end), now=month_end(end)))
        assert first.transitions
        evaluator.publish(first).scorecard()  # the pages' rows, made and kept
        matrices = [weakref.ref(m) for m in first.matrices.values()]
        month = evaluator.run(data(end + 1), first.records,
                              Cycle(at=month_end(end + 1), now=month_end(end + 1)))
        evaluator.publish(month).scorecard()
        del first
        assert matrices and all(m() is None for m in matrices)

        reloaded = Evaluator(load_rules([path]))
        reloaded.adopt(evaluator)
        engine = weakref.ref(evaluator.engine)
        del evaluator
        again = reloaded.run(data(end + 1), month.records,
                             Cycle(at=month_end(end + 1), now=month_end(end + 2)))
        reloaded.publish(again)
        assert engine() is None
        assert not gc.isenabled()  # the collector freed none of it
