"""The partitions of a cycle evaluated on Dask's ``distributed`` engine.

The daemon stays the coordinator: it decides the holds (``Evaluator.holds``), sends
each partition a task naming the store's URL and the partition (never the data), and
persists what all partitions returned in one transaction (``RuleService.evaluate``), so
the outbox stays exactly-once. A task reads its own series from the store
(``store.partitions.read_partition``), evaluates them with the one engine and returns
its alerts' changes and transitions. A worker lost mid-cycle loses nothing: Dask runs
its tasks again on another worker, and nothing is written before every task returned.

Where the tasks run (``[engine] scheduler``):

- ``in-process`` — one after another in the daemon, without Dask (the default; with
  ``partitions = 1`` the cycle is the plain ``Evaluator.run``);
- ``local`` — a ``distributed.LocalCluster`` of ``local_workers`` processes on this
  machine, started with the first cycle and stopped with the daemon;
- ``tcp://host:8786`` — the scheduler of a running Dask cluster (Kubernetes, HPC, cloud;
  deploy/compose-dask.yaml), whose workers reach the same store.

One cycle, in order (``monitor.rules.partition`` explains the cut):

1. for each stage of cross-partition totals: every partition's share, added up here,
   written back (handed to every later task as a stored series);
2. every partition evaluates its series against its alerts' records;
3. the partitions' results are merged: each alert from the partition that owns it, the
   matrices side by side for the pages; rule health adds up.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from monitor.alerts.state import AlertRecord, Transition
from monitor.logs import get_logger
from monitor.model import Frequency
from monitor.rules import sourcehealth
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.data import Block, Matrix
from monitor.rules.engine import Dataset, Engine, Evaluation, RuleStats
from monitor.rules.inputs import read_dataset
from monitor.rules.loader import LoadedRule, RuleSet
from monitor.rules.partition import PartialTotal, Plan, combine_totals, partial_total, plan
from monitor.store import Store
from monitor.store.partitions import read_partition

log = get_logger(__name__)
IN_PROCESS = "in-process"
LOCAL = "local"
RETRIES = 2  # a task that fails (not a lost worker: Dask reschedules those) runs again


@dataclass(frozen=True)
class EngineConfig:
    """``[engine]``: where a cycle's partitions are evaluated."""

    scheduler: str = IN_PROCESS  # in-process, local, or a scheduler's address
    partitions: int = 1
    local_workers: int = 2
    partition_by: tuple[str, ...] = ()


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


@dataclass
class PartitionResult:
    """One partition's evaluation, its alerts only (those whose labels it owns)."""

    index: int
    changed: list[AlertRecord]
    transitions: list[Transition]
    errors: dict[str, str]
    stats: dict[tuple[str, str], RuleStats]
    matrices: dict[str, Matrix]
    seconds: float  # CPU seconds of the task
    series: int


_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()
# A worker keeps the last blocks it read per partition: a steady cycle reads nothing.
_BLOCKS: dict[tuple[str, int, int, tuple[str, ...]], tuple[tuple[object, ...], Any]] = {}


def _store(url: str) -> Store:
    """Return this worker process's store of ``url`` (opened once, never migrated)."""
    with _STORES_LOCK:
        store = _STORES.get(url)
        if store is None:
            store = _STORES[url] = Store(url)
        return store


def _dataset(task: Task) -> tuple[RuleSet, Dataset]:
    ruleset = task.plan.partition_ruleset(task.ruleset, task.stages)
    base = [name for name, ind in ruleset.indicators.items()
            if ind.derived is None and name not in task.written]
    key = (task.store_url, task.index, task.plan.partitions, tuple(base))
    with _STORES_LOCK:
        cached = _BLOCKS.get(key)
    if cached is not None and cached[0] == task.version and task.version:
        stored = cached[1]
    else:
        stored = read_partition(_store(task.store_url), base, task.plan.keeps(task.index))
        with _STORES_LOCK:
            _BLOCKS[key] = (task.version, stored)
    blocks: dict[str, Any] = {**stored, **task.written}
    return ruleset, Dataset(blocks, task.milestones, task.sources)


def partition_totals(task: Task, names: Sequence[str]) -> dict[str, PartialTotal]:
    """Return partition ``task.index``'s share of each total in ``names`` (one stage)."""
    ruleset, dataset = _dataset(task)
    matrices, _period = Engine(ruleset, history=task.history).matrices(dataset, task.at)
    out = {}
    for name in names:
        spec = ruleset.indicators[name].derived
        assert spec is not None and spec.total is not None
        out[name] = partial_total(matrices[spec.total], spec.by)
    return out


def evaluate_partition(task: Task, rules: Sequence[LoadedRule],
                       records: Mapping[str, AlertRecord], now: datetime) -> PartitionResult:
    """Evaluate ``rules`` over partition ``task.index``'s series; return its own alerts'
    changes and transitions, its matrices and the rules' health."""
    started = time.process_time()
    ruleset, dataset = _dataset(task)
    engine = Engine(ruleset, history=task.history)
    result = engine.evaluate(dataset, task.at, records, rules=rules, now=now)
    mine = task.plan.keeps(task.index)
    keep_whole = task.index == 0  # the written-back series go to the pages once
    matrices = {name: m for name, m in result.matrices.items()
                if keep_whole or name not in task.plan.whole}
    series = sum(m.n for name, m in result.matrices.items() if name not in task.plan.whole)
    return PartitionResult(
        task.index, [r for r in result.changed if mine(r.labels)],
        [t for t in result.transitions if mine(t.labels)], dict(result.errors),
        {key: engine.stats[key] for key in ((r.group, r.rule.alert) for r in rules)},
        matrices, time.process_time() - started, series)


class DistributedEngine:
    """Runs the evaluation of a cycle's partitions where ``[engine]`` says."""

    def __init__(self, store_url: str, config: EngineConfig, *, history: int = 60) -> None:
        self.store_url = store_url
        self.config = config
        self.history = history
        self._plans: dict[int, Plan] = {}
        self._client: Any = None
        self._cluster: Any = None
        self.last: list[PartitionResult] = []  # the last cycle's partitions (benchmarks)
        self.write_back_seconds = 0.0  # the last cycle's cross-partition totals, wall time
        self._generation = 0  # moved by invalidate(): the tasks read the store again
        self._inputs: tuple[tuple[object, ...], Dataset] | None = None

    @property
    def distributed(self) -> bool:
        return self.config.scheduler != IN_PROCESS

    def plan(self, ruleset: RuleSet) -> Plan:
        """Return the partitioning of ``ruleset`` (worked out once per rule set)."""
        found = self._plans.get(id(ruleset))
        if found is None:
            found = plan(ruleset, self.config.partitions, self.config.partition_by)
            if found.reason:
                log.warning("rules evaluated in one partition", reason=found.reason)
            self._plans = {id(ruleset): found}
        return found

    def inputs(self, store: Store, ruleset: RuleSet, milestone_sources: Sequence[str]
               ) -> Dataset:
        """Return what the coordinator reads: milestones and the sources feeding each
        indicator, no observations (the tasks read those). Read again, and the tasks'
        data too, when the store's data version moved (any process's write), the rules
        changed or ``invalidate`` was called — as ``DatasetCache`` does for one process."""
        version = (self._generation, id(ruleset), tuple(milestone_sources),
                   store.observations.version())
        if self._inputs is None or self._inputs[0] != version:
            self._inputs = (version, read_dataset(store, ruleset, milestone_sources,
                                                  observations=False))
        return self._inputs[1]

    def invalidate(self) -> None:
        """Read the store again next cycle (a poll in this process stored data)."""
        self._generation += 1

    # --- running the tasks -------------------------------------------------------------

    def _map(self, fn: Callable[..., Any], tasks: Sequence[Task], *args: Any) -> list[Any]:
        """Run ``fn(task, *args)`` for every task, where configured; results in order."""
        if not self.distributed:
            return [fn(task, *args) for task in tasks]
        client = self.client()
        futures = [client.submit(fn, task, *args, retries=RETRIES, pure=False)
                   for task in tasks]
        return list(client.gather(futures))

    def client(self) -> Any:
        """Return the Dask client, connecting (or starting the local cluster) on first use.
        Raises OSError when the scheduler cannot be reached."""
        if self._client is None:
            from distributed import Client, LocalCluster

            if self.config.scheduler == LOCAL:
                self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=self.config.local_workers, threads_per_worker=1,
                    processes=True, dashboard_address=None, memory_limit=0)
                self._client = Client(self._cluster)  # type: ignore[no-untyped-call]
            else:
                self._client = Client(  # type: ignore[no-untyped-call]
                    self.config.scheduler, timeout=30)
            log.info("distributed engine connected", scheduler=self._client.scheduler.address,
                     workers=len(self._client.scheduler_info()["workers"]))
        return self._client

    def close(self) -> None:
        """Disconnect, and stop the local cluster this process started."""
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    # --- one cycle ---------------------------------------------------------------------

    def run(self, evaluator: Evaluator, dataset: Dataset,
            records: Mapping[str, AlertRecord], cycle: Cycle) -> Evaluation:
        """Evaluate one cycle over the partitions; return the merged evaluation the
        daemon persists (``Evaluator.run``'s contract)."""
        ruleset = evaluator.ruleset
        holds = evaluator.holds(dataset.sources, records, cycle)
        cut = self.plan(ruleset)
        n = cut.partitions
        version = self._inputs[0] if self._inputs is not None else ()
        base = Task(self.store_url, ruleset, cut, 0, cycle.at, self.history, 0, {},
                    list(dataset.milestones), dict(dataset.sources), version)
        # 1. the cross-partition totals, stage by stage, written back for what follows
        started = time.perf_counter()
        written: dict[str, Block] = {}
        for number, stage in enumerate(cut.stages):
            tasks = [replace(base, index=i, stages=number, written=dict(written))
                     for i in range(n)]
            shares: list[dict[str, PartialTotal]] = self._map(partition_totals, tasks, stage)
            for name in stage:
                written[name] = combine_totals([share[name] for share in shares])
        self.write_back_seconds = time.perf_counter() - started
        # 2. every partition evaluates its series
        keys = {(r.group, r.rule.alert) for r in holds.evaluated}
        own: list[dict[str, AlertRecord]] = [{} for _ in range(n)]
        for key, record in records.items():
            if (record.group, record.rule) in keys and not sourcehealth.is_health_record(record):
                own[cut.partition_of(record.labels)][key] = record
        tasks = [replace(base, index=i, stages=len(cut.stages), written=written)
                 for i in range(n)]
        if self.distributed:
            results: list[PartitionResult] = list(self.client().gather([
                self.client().submit(evaluate_partition, task, holds.evaluated, own[i],
                                     cycle.now, retries=RETRIES, pure=False)
                for i, task in enumerate(tasks)]))
        else:
            results = [evaluate_partition(task, holds.evaluated, own[i], cycle.now)
                       for i, task in enumerate(tasks)]
        self.last = results
        # 3. merged, then settled as any cycle is
        merged = _merge(ruleset, results, records, holds.evaluated, cycle)
        _add_stats(evaluator, results, holds.evaluated, cycle.now)
        return evaluator.settle(merged, holds, records, cycle)


def _merge(ruleset: RuleSet, results: Sequence[PartitionResult],
           records: Mapping[str, AlertRecord], rules: Sequence[LoadedRule],
           cycle: Cycle) -> Evaluation:
    order = {(r.group, r.rule.alert): i for i, r in enumerate(rules)}
    out = Evaluation(cycle.at, Frequency.MONTHLY.ordinal(cycle.at.date()), {}, dict(records),
                     evaluated_at=cycle.now)
    for part in results:
        for record in part.changed:
            out.records[record.id] = record
        out.changed.extend(part.changed)
        out.transitions.extend(part.transitions)
        for rule, error in part.errors.items():
            out.errors.setdefault(rule, error)
    # In the rules' order, as one process steps them.
    out.transitions.sort(key=lambda t: order.get((t.group, t.rule), len(order)))
    out.changed.sort(key=lambda r: order.get((r.group, r.rule), len(order)))
    names = list(ruleset.indicators)
    for name in names:
        parts = [p.matrices[name] for p in results if name in p.matrices]
        if parts:
            out.matrices[name] = replace(stack(parts), indicator=ruleset.indicators[name])
    return out


def _add_stats(evaluator: Evaluator, results: Sequence[PartitionResult],
               rules: Sequence[LoadedRule], now: datetime) -> None:
    """Add the partitions' rule health into the coordinator's: an error in any partition
    is the rule's error; durations add up (CPU spent on the rule)."""
    for loaded in rules:
        key = (loaded.group, loaded.rule.alert)
        mine = evaluator.engine.stats.setdefault(key, RuleStats())
        theirs = [p.stats[key] for p in results if key in p.stats]
        errors = [s.last_error for s in theirs if s.health == "err"]
        mine.evaluations += 1
        mine.failures += 1 if errors else 0
        mine.health = "err" if errors else "ok"
        mine.last_error = errors[0] if errors else ""
        mine.duration = sum(s.duration for s in theirs)
        mine.template_errors = sum(s.template_errors for s in theirs)
        mine.last_evaluation = now


def stack(parts: Sequence[Matrix]) -> Matrix:
    """Return the partitions' matrices of one indicator as one (rows side by side)."""
    first = parts[0]
    if len(parts) == 1:
        return first
    labels = [lab for p in parts for lab in p.labels]

    def rows(get: Callable[[Matrix], Any], fill: Any, dtype: Any) -> Any:
        arrays = [get(p) for p in parts]
        if all(a is None for a in arrays):
            return None
        return np.vstack([a if a is not None else np.full((p.n, p.grid.size), fill, dtype)
                          for a, p in zip(arrays, parts, strict=True)])

    pieces = None
    if first.parts is not None:
        pieces = (stack([p.parts[0] for p in parts if p.parts is not None]),
                  stack([p.parts[1] for p in parts if p.parts is not None]))
    return Matrix(first.indicator, labels, first.grid,
                  rows(lambda m: m.values, np.nan, np.float64),
                  rows(lambda m: m.denominators, np.nan, np.float64),
                  rows(lambda m: m.provisional, False, bool),
                  rows(lambda m: m.revisions, 0, np.int64), pieces)


def worker_pid() -> int:
    """Return the process id of the worker that runs it (tests stop one by its pid)."""
    return os.getpid()
