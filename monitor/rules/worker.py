"""What a worker of the distributed engine runs: one partition's tasks.

A task names the store's URL and its partition, never the data (``Task``): the worker
reads its partition (``store.partitions.read_partition``), keeps it, its engine and its
alerts' records between cycles (per coordinator token and partition), and returns its
share of the cross-partition totals (:func:`partition_totals`) or its alerts' changes as
columns (:func:`evaluate_partition`). ``monitor.rules.distributed`` is the coordinator.

This module is all a worker process imports (unpickling a task imports it), so it
imports only what evaluating needs: the engine, the partition's reader and the store's
connection — not the daemon's sources, source health, pages or migrations. What it does
not import a worker does not hold in memory (``tests/rules/test_worker.py``).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import compress
from typing import Any

import numpy as np

from monitor.alerts.state import AlertRecord
from monitor.memory import gc_paused
from monitor.rules import scorecard
from monitor.rules.data import Block, Matrix
from monitor.rules.engine import Dataset, Engine, RuleStats, indicator_info
from monitor.rules.loader import LoadedRule, RuleSet
from monitor.rules.partition import PartialTotal, Plan, partial_total
from monitor.rules.snapshot import IndicatorFrame, SeriesDetail
from monitor.rules.wire import Changes, encode
from monitor.store import Store
from monitor.store.observations import merge_blocks
from monitor.store.partitions import read_partition


@dataclass(frozen=True)
class Task:
    """What one partition's task is handed: where the data is and which part is its."""

    store_url: str
    ruleset: RuleSet
    plan: Plan
    index: int
    at: datetime
    history: int
    stages: int  # written-back stages in ``written``
    written: Mapping[str, Block]
    milestones: Sequence[Any] = ()
    sources: Mapping[str, frozenset[str]] = field(default_factory=dict)
    version: tuple[object, ...] = ()  # the data's version: a worker reads again when it moves
    token: str = ""  # the coordinator and its rule set: a worker keeps its state per token
    delta: Delta | None = None  # what moved the version, when the coordinator knows


@dataclass(frozen=True)
class Delta:
    """What the writes since data version ``base`` changed, as the coordinator's store
    journals its own writes (a poll): the series they touched and the earliest period
    written. A worker holding ``base`` reads only those series of its partition, from
    that period, into the blocks it holds — as ``DatasetCache`` does in one process."""

    base: tuple[object, ...]
    series: np.ndarray  # int64 ids, ascending
    first: int


@dataclass(frozen=True)
class Records:
    """The alert records a partition starts a cycle from: all of them (``base`` -1), or
    what changed since the state ``base`` the worker kept — the records that are not the
    ones it holds, and the ids it holds that are gone."""

    base: int
    epoch: int  # the state the task makes (unique per coordinator token)
    records: Mapping[str, AlertRecord]
    removed: tuple[str, ...] = ()


class StaleState(Exception):
    """The worker does not hold the state a task's records are a change of (it is new,
    or lost that state): the coordinator sends all the records again."""


@dataclass
class PartitionResult:
    """One partition's evaluation, its alerts only (those whose labels it owns)."""

    index: int
    changes: Changes
    errors: dict[str, str]
    stats: dict[tuple[str, str], RuleStats]
    # the snapshot's frames of its matrices and each one's last column with data
    # (scorecard.frame); None: the ones sent before still stand
    frames: dict[str, IndicatorFrame] | None
    ends: dict[str, int] | None
    seconds: float  # CPU seconds of the task
    series: int
    epoch: int  # the worker's state after the task (the next task's ``Records.base``)
    read: str = "none"  # how the task's data was read this cycle: "full", "changes", "none"
    worker: str = ""  # the address of the worker that holds its matrices ("" in-process)


@dataclass
class _State:
    """What a worker keeps of one partition between cycles: the rule set it evaluates
    (one object, so the engine's per-rule caches hold), the engine itself (pivoted
    matrices, last outcomes, alert rows), the records it ended the last cycle with and
    the written-back blocks (kept while equal, so the matrices derived from them are)."""

    ruleset: RuleSet
    rules: dict[tuple[str, str], LoadedRule]
    engine: Engine
    stages: int
    records: dict[str, AlertRecord] = field(default_factory=dict)
    epoch: int = -1
    written: dict[str, Block] = field(default_factory=dict)
    # the last evaluation's matrices for the pages, and the data they are of (``data``)
    matrices: tuple[tuple[object, ...], dict[str, Matrix]] | None = None
    # per indicator, the series' labels of the frame last sent from here and their token
    # (``partition_frames``: a coordinator holding that token is not sent them again)
    sent: dict[str, tuple[str, list[dict[str, str]]]] = field(default_factory=dict)
    # the matrices of ``matrices`` with the whole rule set's indicators, as the
    # coordinator stacks them, kept so what a series' page computes over a whole matrix
    # once (``Matrix.memo``) serves the next page too (``partition_details``)
    paged: tuple[tuple[object, ...], dict[str, Matrix]] | None = None
    # per alert id (its labels make it): is it this partition's, kept between cycles (a
    # new month asked it again of every alert: 1 CPU-second a worker at 1M series)
    owned: dict[str, bool] = field(default_factory=dict)


_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()
# A worker keeps the last blocks it read per partition (with the data version and how it
# was read): a steady cycle reads nothing, a poll's changes are read alone.
_BLOCKS: dict[tuple[str, int, int, tuple[str, ...]], tuple[tuple[object, ...], Any, str]] = {}
# …and its partitions' states, per coordinator token, partition and stage count.
_STATES: dict[tuple[str, int, int, int], _State] = {}


def forget() -> None:
    """Drop what this process keeps of its partitions (benchmarks: one at a time)."""
    with _STORES_LOCK:
        _BLOCKS.clear()
        _STATES.clear()


def _store(url: str) -> Store:
    """Return this worker process's store of ``url`` (opened once, never migrated)."""
    with _STORES_LOCK:
        store = _STORES.get(url)
        if store is None:
            store = _STORES[url] = Store(url)
        return store


def _state(task: Task) -> _State:
    """Return the kept state of the task's partition, made anew when there is none."""
    key = (task.token, task.index, task.plan.partitions, task.stages)
    with _STORES_LOCK:
        state = _STATES.get(key)
        if state is None or not task.token:
            ruleset = task.plan.partition_ruleset(task.ruleset, task.stages)
            state = _State(ruleset, {}, Engine(ruleset, history=task.history), task.stages)
            if task.token:
                _STATES[key] = state
        return state


def _dataset(task: Task, state: _State, *, report: bool = False) -> tuple[Dataset, str]:
    """Return the partition's dataset: its stored series (read once per data version:
    after a poll of the coordinator's, only what it changed) and the written-back totals
    (the ones held while equal); and how its series were read since the last ``report``
    ("full", "changes" or "none": ``PartitionResult.read``)."""
    base = [name for name, ind in task.ruleset.indicators.items() if ind.derived is None]
    key = (task.store_url, task.index, task.plan.partitions, tuple(base))
    with _STORES_LOCK:
        cached = _BLOCKS.get(key)
    delta = task.delta
    if cached is not None and cached[0] == task.version and task.version:
        stored, how = cached[1], cached[2]
    elif cached is not None and delta is not None and delta.base and cached[0] == delta.base:
        changed = read_partition(_store(task.store_url), base, task.plan.partition_key,
                                 task.index, task.plan.partitions,
                                 series_ids=delta.series, since=delta.first,
                                 held=cached[1]) \
            if delta.series.size else {}
        stored = dict(cached[1])
        for name, fresh in changed.items():
            kept = stored.get(name)
            stored[name] = fresh if kept is None else merge_blocks(kept, fresh, delta.first)
        how = "changes"
        with _STORES_LOCK:
            _BLOCKS[key] = (task.version, stored, how)
    else:
        stored = read_partition(_store(task.store_url), base, task.plan.partition_key,
                                task.index, task.plan.partitions)
        how = "full"
        with _STORES_LOCK:
            _BLOCKS[key] = (task.version, stored, how)
    for name, block in task.written.items():  # the same total again: keep the one held
        held = state.written.get(name)
        if held is None or not _same_block(held, block):
            state.written[name] = block
    if report:  # said once: the next cycle on the same data read nothing
        with _STORES_LOCK:
            _BLOCKS[key] = (task.version, stored, "none")
    blocks: dict[str, Any] = {**stored, **{n: state.written[n] for n in task.written}}
    return Dataset(blocks, task.milestones, task.sources), how


def _same_block(a: Block, b: Block) -> bool:
    return a.labels == b.labels and all(
        np.array_equal(getattr(a, name), getattr(b, name), equal_nan=name in _FLOATS)
        for name in ("row", "period", "value", "denominator", "provisional", "revisions"))


_FLOATS = ("value", "denominator")


def partition_totals(task: Task, names: Sequence[str]) -> dict[str, PartialTotal]:
    """Return partition ``task.index``'s share of each total in ``names`` (one stage),
    from the matrices of the engine its evaluation then uses (pivoted once: the totals
    of later stages are still missing here, and empty)."""
    state = _state(replace(task, stages=len(task.plan.stages)))
    matrices, _period = state.engine.matrices(_dataset(task, state)[0], task.at)
    out = {}
    for name in names:
        spec = task.ruleset.indicators[name].derived
        assert spec is not None and spec.total is not None
        out[name] = partial_total(matrices[spec.total], spec.by)
    return out


def data(task: Task) -> tuple[object, ...]:
    """Return what a partition's matrices are a function of: the data's version and the
    instant (the written-back totals are the same data's)."""
    return (task.version, task.at)


def evaluate_partition(task: Task, rules: Sequence[LoadedRule], given: Records,
                       now: datetime, frames: bool) -> PartitionResult:
    """Evaluate ``rules`` over partition ``task.index``'s series from the records
    ``given``; return its own alerts' changes and transitions as columns, the rules'
    health and (when ``frames``) the snapshot's frames of its matrices. The matrices
    stay here until the coordinator asks for them (:func:`held_matrices`). Raises
    StaleState when ``given`` is a change of a state this worker does not hold.

    The cyclic garbage collector is paused meanwhile, as the daemon's rule service pauses
    it for a cycle: the records and texts made are not in cycles."""
    with gc_paused():
        return _evaluate_partition(task, rules, given, now, frames)


def _evaluate_partition(task: Task, rules: Sequence[LoadedRule], given: Records,
                        now: datetime, frames: bool) -> PartitionResult:
    started = time.process_time()
    state = _state(task)
    if given.base >= 0 and given.base != state.epoch:
        raise StaleState(f"partition {task.index}: no state {given.base} here")
    records = dict(given.records) if given.base < 0 else state.records
    for key in given.removed:
        records.pop(key, None)
    if given.base >= 0:
        records.update(given.records)
    state.epoch = -1  # until this task finishes, no later one may build on it
    mine_rules = [state.rules.setdefault((r.group, r.rule.alert), r) for r in rules]
    dataset, how = _dataset(task, state, report=True)
    result = state.engine.evaluate(dataset, task.at, records, rules=mine_rules, now=now,
                                   runs=True)
    owned = state.owned

    def mine(key: str, labels: Mapping[str, str]) -> bool:
        found = owned.get(key)
        if found is None:
            found = owned[key] = task.plan.partition_of(labels) == task.index
        return found

    # A rule on a partitioned indicator alerts only on this partition's series (and on
    # the records it was given, which are this partition's): all its alerts are ours,
    # asked of none, unless its or its indicator's labels set a label of the partition
    # key (its alerts' key is then not their series'). Only those, and a rule on a whole
    # indicator or on milestones, which every partition evaluates, are asked alert by
    # alert.
    key_names = set(task.plan.key)
    ours = {(r.group, r.rule.alert) for r in mine_rules
            if r.rule.indicator is not None and r.rule.indicator not in task.plan.whole
            and not key_names & (set(r.rule.labels)
                           | set(task.ruleset.indicators[r.rule.indicator].labels))}
    keep = [(r.group, r.rule) in ours or mine(r.id, r.labels) for r in result.changed]
    changed = list(compress(result.changed, keep))
    moving = result.moving().take(np.flatnonzero(np.array(keep, dtype=bool)))
    transitions = [t for t in result.transitions
                   if (t.group, t.rule) in ours or mine(t.alert_id, t.labels)]
    order = {(r.group, r.rule.alert): i for i, r in enumerate(rules)}
    # the coordinator holds the records this cycle started from (``given``): a changed
    # record of an id among them goes without its labels, which it takes from there
    changes = encode(changed, transitions, order, moving, held=records)
    for record in changed:
        records[record.id] = record
    state.records = records
    if len(owned) > 2 * len(records) + 10_000:  # alerts long gone: asked again if back
        state.owned = {key: found for key, found in owned.items() if key in records}
    state.epoch = given.epoch
    series = sum(m.n for name, m in result.matrices.items() if name not in task.plan.whole)
    pages = _for_pages(task, result.matrices)
    state.matrices = (data(task), pages)
    made, ends = _frames(task, pages) if frames else (None, None)
    return PartitionResult(
        task.index, changes, dict(result.errors),
        {key: state.engine.stats[key] for key in order}, made, ends,
        time.process_time() - started, series, state.epoch, how, _address())


def _frames(task: Task, pages: Mapping[str, Matrix]
            ) -> tuple[dict[str, IndicatorFrame], dict[str, int]]:
    """Return the snapshot's frames of the partition's matrices ``pages`` and each one's
    last column with data (``PartitionResult.frames`` and ``ends``)."""
    return ({name: scorecard.frame(m, indicator_info(task.ruleset.indicators[name]),
                                   keep=False, charts=True) for name, m in pages.items()},
            {name: m.last_column() for name, m in pages.items() if m.n})


def partition_frames(task: Task, evaluated: PartitionResult, held: Mapping[str, str]
                     ) -> tuple[dict[str, IndicatorFrame], dict[str, int], dict[str, str],
                                bool]:
    """Return the snapshot's frames of partition ``task.index``'s matrices, which the
    evaluation that returned ``evaluated`` left here, their ends (as ``_frames``), a
    token per frame for its series' labels, and whether the frames are of the data
    ``task`` evaluated.

    The coordinator asks for them in a task of their own, run after the evaluation on its
    worker (``evaluated`` is that task's result, handed over in memory), so that it merges
    the partition's alerts while the worker still makes the frames. ``held`` is the
    labels' token the coordinator holds per indicator: a frame whose labels are those
    (the series did not change: most cycles) comes without them, its token the one
    held, and the coordinator puts them back. A worker that does not hold the matrices
    (the evaluation ran elsewhere) reads them again from the store; False then when the
    store was written since (they are of the newer data)."""
    del evaluated  # only orders this task after the evaluation, on its worker
    key = (task.token, task.index, task.plan.partitions, task.stages)
    with _STORES_LOCK:
        state = _STATES.get(key)
    try:
        pages, same = held_matrices(task), True
    except NotHeld:
        pages, same, state = *read_matrices(task), None
    with gc_paused():
        made, ends = _frames(task, pages)
    tokens = {}
    for name, frame in made.items():
        kept = state.sent.get(name) if state is not None else None
        if kept is not None and kept[1] == frame.labels:  # the same series as last sent
            tokens[name] = kept[0]
            if held.get(name) == kept[0]:
                made[name] = replace(frame, labels=[])
            continue
        tokens[name] = uuid.uuid4().hex
        if state is not None:
            state.sent[name] = (tokens[name], frame.labels)
    return made, ends, tokens, same


def partition_details(task: Task, indicator: str, labels: Sequence[Mapping[str, str]]
                      ) -> list[SeriesDetail | None]:
    """Return the pages (``scorecard.details``) of the series ``labels`` names, in their
    order, made here from partition ``task.index``'s matrices of the data ``task``
    evaluated, each with the whole rule set's indicator as the coordinator's side-by-side
    matrices have it; None for a series not among them. Raises NotHeld when this worker
    does not keep them.

    The coordinator asks this of each series' own partition only when the pages read
    nothing across partitions (no rank among the indicator's series, every partition's
    matrix ending at the same column): then each figure on a page is the row's own, and
    the page is the one the whole matrices make (``tests/rules/test_distributed.py``).
    A list page asks for all its rows of one partition at once: one round trip, not
    one a row."""
    pages = held_matrices(task)
    key = (task.token, task.index, task.plan.partitions, task.stages)
    with _STORES_LOCK:
        state = _STATES.get(key)
    if state is None:
        raise NotHeld(f"partition {task.index}: no matrices of that data here")
    paged = state.paged
    if paged is None or paged[0] != data(task):
        # (the matrix itself when its indicator is the rule set's, as it is but for the
        # written-back ones: what its frames computed of it, the headline and the chart,
        # is not computed again; a copy starts without them)
        paged = state.paged = (data(task), {
            name: m if m.indicator == task.ruleset.indicators[name]
            else replace(m, indicator=task.ruleset.indicators[name])
            for name, m in pages.items()})
    matrices = paged[1]
    m = matrices.get(indicator)
    if m is None:
        return [None] * len(labels)
    index = m.index()
    rows = [index.get(tuple(sorted(one.items()))) for one in labels]
    with gc_paused():
        made = iter(scorecard.details(m, [row for row in rows if row is not None], matrices,
                                      task.ruleset))
    return [next(made) if row is not None else None for row in rows]


def _for_pages(task: Task, matrices: Mapping[str, Matrix]) -> dict[str, Matrix]:
    """Return the partition's matrices the pages show: the written-back series once (in
    partition 0's)."""
    return {name: m for name, m in matrices.items()
            if task.index == 0 or name not in task.plan.whole}


def _address() -> str:
    """Return this worker's address ("" when not on a Dask worker: in-process)."""
    try:
        from distributed import get_worker
    except ImportError:  # pragma: no cover - the in-process engine without Dask
        return ""
    try:
        return str(get_worker().address)
    except ValueError:
        return ""


class NotHeld(Exception):
    """This worker does not hold the matrices asked for (it is not the one that
    evaluated them, lost them, or evaluated newer data since)."""


def held_matrices(task: Task) -> dict[str, Matrix]:
    """Return partition ``task.index``'s matrices of the data ``task`` evaluated, kept
    here since; raises NotHeld when this worker does not keep them."""
    key = (task.token, task.index, task.plan.partitions, task.stages)
    with _STORES_LOCK:
        state = _STATES.get(key)
    if state is None or state.matrices is None or state.matrices[0] != data(task):
        raise NotHeld(f"partition {task.index}: no matrices of that data here")
    return state.matrices[1]


def read_matrices(task: Task) -> tuple[dict[str, Matrix], bool]:
    """Return partition ``task.index``'s matrices read again from the store, by the
    engine's own reader and pivot, on an engine of their own (what this worker keeps is
    not touched); and whether the store's data is still the version ``task`` evaluated
    (False: another write landed since, and these matrices are of the newer data)."""
    store = _store(task.store_url)
    before = store.observations.version()
    base = [name for name, ind in task.ruleset.indicators.items() if ind.derived is None]
    stored = read_partition(store, base, task.plan.partition_key, task.index,
                            task.plan.partitions)
    same = bool(task.version) and before == task.version[-1] \
        and store.observations.version() == before
    ruleset = task.plan.partition_ruleset(task.ruleset, task.stages)
    blocks: dict[str, Any] = {**stored, **task.written}
    matrices, _period = Engine(ruleset, history=task.history).matrices(
        Dataset(blocks, task.milestones, task.sources), task.at)
    return _for_pages(task, matrices), same


def warm() -> int:
    """Return the worker's process id. Run on every worker as the pool starts: unpickling
    it imports this module and with it the engine, which the first cycle's tasks would
    otherwise wait for."""
    return os.getpid()
