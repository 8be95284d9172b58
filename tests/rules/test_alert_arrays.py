"""The engine keeps each rule's alerts as arrays between cycles; what it decides must be
exactly what an engine starting cold from the same records decides.

A daemon-like sequence — data moving on month by month, the clock moving by minutes in
between, series appearing and disappearing, records forgotten after the retention, a
record handed back that is not the one the engine made (a restart, a replica reading
the store) — goes through one Evaluator kept warm and, cycle by cycle, through a fresh
Evaluator given the same records. Records, changes, transitions and removals must be
equal every cycle. Within a month the same blocks come back, as from a store with
nothing new: the warm engine reuses its matrices and outcomes, the cold one cannot.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import timedelta
from pathlib import Path

import numpy as np

from monitor.alerts.state import AlertArrays, AlertRecord
from monitor.model import AlertState, month
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.data import Block
from monitor.rules.engine import Dataset, Engine, Evaluation, month_end
from monitor.rules.loader import load_rules

RULES = """
indicators:
  - {id: burglary, name: Burglary, direction: down, window: 1}
  - {id: robbery, name: Robbery, direction: down}
  - id: acquisitive
    name: Acquisitive crime
    direction: down
    derived: {sum: [burglary, robbery], on: [area]}
groups:
  - name: g
    rules:
      - alert: Up
        indicator: burglary
        when: {change: {window: 3, above: 5}}
        annotations: {summary: "{{ labels.area }} is up to {{ value | number }}"}
      - {alert: Pending, indicator: burglary, when: {level: {above: 110}}, for: 2 evaluations}
      - {alert: Periods, indicator: burglary, when: {level: {above: 100}}, for: 2 periods}
      - {alert: Kept, indicator: burglary, when: {level: {above: 105}}, keep_firing_for: 3m}
      - alert: Flappy
        indicator: burglary
        when: {change: {window: 1, above: 0}}
        flapping: {window: 6, high: 0.5, low: 0.25}
      - {alert: NoData, indicator: burglary, when: {level: {above: 100}}, no_data: keep_state}
      - {alert: Hysteresis, indicator: burglary, when: {level: {above: 104, clear_above: 98}}}
      - {alert: Matched, indicator: burglary, when: {level: {above: 95}}, match: {kind: a}}
      - alert: Joined
        indicator: burglary
        on: [area]
        when:
          all:
            - change: {window: 3, above: 0}
            - change: {indicator: acquisitive, window: 3, below: 0}
"""


def dataset(rng: np.random.Generator, end: int, areas: list[str]) -> Dataset:
    months = 30
    periods = np.arange(end - months + 1, end + 1)
    labels = [{"area": a, "kind": "a" if int(a[1:]) % 2 else "b"} for a in areas]
    n = len(labels)
    blocks = {}
    for name, level in (("burglary", 100.0), ("robbery", 60.0)):
        values = rng.poisson(level, size=(n, months)).astype(np.float64)
        values[rng.random((n, months)) < 0.03] = np.nan  # gaps: no data to judge
        keep = ~np.isnan(values.ravel())
        blocks[name] = Block(labels, np.repeat(np.arange(n), months)[keep],
                             np.tile(periods, n)[keep], values.ravel()[keep],
                             np.full(int(keep.sum()), np.nan),
                             np.zeros(int(keep.sum()), dtype=bool),
                             np.zeros(int(keep.sum()), dtype=np.int64))
    return Dataset(blocks)


def same(a: Evaluation, b: Evaluation) -> None:
    assert a.records == b.records
    assert sorted(a.changed, key=lambda r: r.id) == sorted(b.changed, key=lambda r: r.id)
    assert sorted(a.transitions, key=lambda t: (t.alert_id, t.to_state.value)) == \
        sorted(b.transitions, key=lambda t: (t.alert_id, t.to_state.value))
    assert a.removed == b.removed


def test_a_warm_engine_decides_what_a_cold_one_does(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    ruleset = load_rules([path])
    warm = Evaluator(ruleset, history=30)
    rng = np.random.default_rng(3)
    records: dict[str, AlertRecord] = {}
    start = month("2016-01")
    datasets: dict[tuple[int, int], Dataset] = {}
    moves: set[tuple[str, str]] = set()
    removed = 0
    for step in range(30):
        period = start + step // 3  # three evaluations a month
        areas = [f"a{i}" for i in range(40) if not (step > 10 and i % 7 == 0)]
        if step > 20:
            areas.append("a99")  # a new series
        if step > 26:
            areas[1] = "a98"  # one series for another: as many rows, not the same series
        if (period, tuple(areas)) not in datasets:  # the same blocks all month: steady
            datasets[(period, tuple(areas))] = dataset(np.random.default_rng(int(period)),
                                                       period, areas)
        data = datasets[(period, tuple(areas))]
        now = month_end(period) + timedelta(minutes=2 * step) + \
            timedelta(days=2 if step in (24, 25) else 0)  # resolved ones get forgotten
        cycle = Cycle(at=month_end(period), now=now, retention=36 * 3600.0)
        if step == 16:  # records read back from the store, not the ones made: another
            # replica resolved the firing ones meanwhile
            records = {k: replace(r, state=AlertState.RESOLVED, resolved_at=now,
                                  notified_state=AlertState.RESOLVED)
                       if r.state is AlertState.FIRING else replace(r)
                       for k, r in records.items()}
        got = warm.run(data, records, cycle)
        expected = Evaluator(ruleset, history=30).run(data, records, cycle)
        same(got, expected)
        records = got.records
        moves |= {(t.from_state.value, t.to_state.value) for t in got.transitions}
        removed += len(got.removed)
        if rng.random() < 0.1:
            warm.publish(got)
    # The sequence went through every kind of move the cache must follow.
    assert {("inactive", "pending"), ("pending", "firing"), ("firing", "resolved"),
            ("pending", "inactive"), ("inactive", "firing")} <= moves
    assert removed > 0


def test_an_outcome_is_judged_again_when_the_hysteresis_state_changed(tmp_path: Path
                                                                       ) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    ruleset = load_rules([path])
    end = month("2016-06")

    def one_series(latest: float) -> Dataset:
        values = np.full(30, 100.0)
        values[-1] = latest
        block = Block([{"area": "a1", "kind": "a"}], np.zeros(30, dtype=np.int64),
                      np.arange(end - 29, end + 1), values, np.full(30, np.nan),
                      np.zeros(30, dtype=bool), np.zeros(30, dtype=np.int64))
        return Dataset({"burglary": block, "robbery": block})

    warm = Evaluator(ruleset, history=30)
    at = month_end(end)
    first = warm.run(one_series(110.0), {}, Cycle(at=at, now=at))
    steady = one_series(100.0)  # between clear_above and above: active only if it was
    second = warm.run(steady, first.records, Cycle(at=at, now=at + timedelta(minutes=1)))
    key = next(k for k, r in second.records.items() if r.rule == "Hysteresis")
    assert second.records[key].state is AlertState.FIRING
    # Another replica resolved it meanwhile: with the same data it is no longer active.
    records = {**second.records, key: replace(second.records[key],
                                              state=AlertState.RESOLVED, resolved_at=at,
                                              notified_state=AlertState.RESOLVED)}
    cycle = Cycle(at=at, now=at + timedelta(minutes=2))
    got = warm.run(steady, records, cycle)
    same(got, Evaluator(ruleset, history=30).run(steady, records, cycle))
    assert got.records[key].state is AlertState.RESOLVED


def _fields(a: AlertArrays) -> dict[str, list[object]]:
    return {f.name: getattr(a, f.name).tolist() for f in fields(a)}


def test_the_moving_fields_sent_from_the_state_machine_are_the_records_own(tmp_path: Path
                                                                           ) -> None:
    """A partition's task sends its changed records' moving fields as the state machine
    stepped them (``Evaluation.moving``), not made again from the records: they must be
    the records' own, every cycle, through series vanishing (records stepped one by one,
    made from the records) and after ``changed`` was put in another order."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    engine = Engine(load_rules([path]), history=30)
    records: dict[str, AlertRecord] = {}
    start = month("2016-01")
    from_runs = from_records = 0
    for step in range(12):
        period = start + step // 2
        areas = [f"a{i}" for i in range(40) if not (step > 6 and i % 7 == 0)]
        data = dataset(np.random.default_rng(int(period)), period, areas)
        now = month_end(period) + timedelta(minutes=2 * step)
        got = engine.evaluate(data, month_end(period), records, now=now, runs=True)
        assert _fields(got.moving()) == _fields(AlertArrays.of(got.changed))
        shuffled = replace(got, changed=got.changed[::-1])
        assert _fields(shuffled.moving()) == _fields(AlertArrays.of(shuffled.changed))
        in_runs = sum(len(made) for _start, made, _arrays in got.runs or ())
        from_runs += in_runs
        from_records += len(got.changed) - in_runs
        records = got.records
    assert from_runs > 1000 and from_records > 0  # both ways were taken
    assert Engine(load_rules([path]), history=30).evaluate(
        dataset(np.random.default_rng(1), start, ["a1"]), month_end(start), {}).runs is None
