"""The partitions of a cycle evaluated on Dask's ``distributed`` engine.

The daemon stays the coordinator: it decides the holds (``Evaluator.holds``), sends
each partition a task naming the store's URL and the partition (never the data), and
persists what all partitions returned in one transaction (``RuleService.evaluate``), so
the outbox stays exactly-once. A task (``monitor.rules.worker``, all a worker imports)
reads its own series from the store, evaluates them with the one engine and returns its
alerts' changes and transitions. A worker lost mid-cycle loses nothing: Dask runs
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
   snapshot's frames end to end; rule health adds up.

A partition returns what the cycle needs: its alerts' changes, then (a task of their
own on the same worker, while the daemon makes those changes' records) the frames of its
matrices (``scorecard.frame``: every series' headline value, target, status, changes,
provisional flag, SPC variation; the function the one-process snapshot calls), their
series' labels only when the daemon does not hold them already. Its matrices stay on
its worker, and are fetched only when something reads them — the
scorecard, a series' page, ``monitor eval`` (``Gathered``) — then stacked once and kept
for as long as the data holds. A worker that no longer keeps them (lost, or already
evaluating newer data) says so, and they are read again from the store by the same
reader and pivot, by a task of their own; when the store was written since (a poll
landed after the cycle), those are of the newer data, and a warning says so.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np

from monitor.alerts.state import AlertRecord, Transition
from monitor.logs import get_logger
from monitor.model import Frequency
from monitor.rules import sourcehealth
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.data import Block, Matrix
from monitor.rules.engine import Dataset, Evaluation, Gathered, RuleStats
from monitor.rules.inputs import read_dataset
from monitor.rules.loader import LoadedRule, RuleSet
from monitor.rules.partition import PartialTotal, Plan, combine_totals, plan
from monitor.rules.recordindex import RecordIndex
from monitor.rules.scorecard import join_frames
from monitor.rules.snapshot import IndicatorFrame, SeriesDetail
from monitor.rules.wire import merge
from monitor.rules.worker import (
    Delta,
    NotHeld,
    PartitionResult,
    Records,
    StaleState,
    Task,
    evaluate_partition,
    held_matrices,
    partition_details,
    partition_frames,
    partition_totals,
    read_matrices,
    warm,
)
from monitor.store import Store
from monitor.store.partitions import set_key

log = get_logger(__name__)
Made = tuple[list[AlertRecord], list[Transition]]  # a partition's records and transitions
IN_PROCESS = "in-process"
LOCAL = "local"
PAGES_KEPT = 10_000  # series' pages made by the workers, kept per cycle
RETRIES = 2  # a task that fails (not a lost worker: Dask reschedules those) runs again
# The local cluster's Dask settings. Dask's defaults are for a notebook with a dashboard:
# each process wakes every 20 ms to check its event loop, samples its tasks' stacks every
# 10 ms (holding the GIL the task needs) and polls its memory every 100 ms. Idle, the
# daemon and two workers burned 7% of a core that way, and more beside a running task.
# Results come straight from the workers, not relayed by the scheduler (which runs in
# the daemon: each result crossed its event loop twice), and sending to the relay was a
# worker's peak, ~90 MB over what it holds at 100,000 series.
#
# Dask also starts its workers with MALLOC_TRIM_THRESHOLD_=65536, so that freed memory
# goes back to the system at once (for its memory monitor's sake). Setting it also stops
# glibc from raising its mmap threshold as it does in any other process: every array over
# 128 KB then came from the system, fresh pages faulted in, and went back when freed. A
# worker keeps its partition's state between cycles and makes and frees the same large
# arrays every cycle: at 1M series that was 6 CPU-s of kernel time per worker in a first
# cycle and 3.8 in a new month, against 3.4-4.0 and 2.1-2.3 without it. The workers get
# the rest of Dask's environment (one thread per numerical library), not that.
LEAN = {"distributed.admin.tick.interval": "1s",
        "distributed.admin.system-monitor.interval": "5s",
        "distributed.worker.memory.monitor-interval": "2s",
        "distributed.worker.profile.enabled": False,
        "distributed.client.direct-to-workers": True,
        "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1,
                                                "OPENBLAS_NUM_THREADS": 1}}


@dataclass(frozen=True)
class EngineConfig:
    """``[engine]``: where a cycle's partitions are evaluated."""

    scheduler: str = IN_PROCESS  # in-process, local, or a scheduler's address
    partitions: int = 1
    local_workers: int = 2
    partition_by: tuple[str, ...] = ()


class DistributedEngine:
    """Runs the evaluation of a cycle's partitions where ``[engine]`` says."""

    def __init__(self, store_url: str, config: EngineConfig, *, history: int = 60) -> None:
        self.store_url = store_url
        self.config = config
        self.history = history
        self._plans: dict[int, tuple[Plan, str]] = {}
        self._client: Any = None
        self._cluster: Any = None
        self.last: list[PartitionResult] = []  # the last cycle's partitions (benchmarks)
        # the last cycle's cross-partition totals, wall time (the records shared out meanwhile)
        self.write_back_seconds = 0.0
        self.merge_seconds = 0.0  # the last cycle's step 3 here, CPU (after every result)
        self.resent = 0  # partitions whose records were sent whole again (a worker lost)
        self._generation = 0  # moved by invalidate(): the tasks read the store again
        self._inputs: tuple[tuple[object, ...], Dataset] | None = None
        self._name = uuid.uuid4().hex  # this coordinator: workers keep state per token
        self._epochs = itertools.count(1)
        # per partition: the state its worker holds (epoch, records as sent and returned)
        self._held: dict[int, tuple[int, dict[str, AlertRecord]]] = {}
        self._home: dict[str, int] = {}  # alert id -> its partition
        # the written-back totals, and each partition's frames (for the snapshot) and the
        # task they came from (to fetch its matrices: ``_fetch``), per data version
        self._written: tuple[tuple[object, ...], dict[str, Block]] | None = None
        self._frames: dict[int, tuple[tuple[object, ...], PartitionResult, Task]] = {}
        self._merged: tuple[tuple[PartitionResult, ...], Gathered,
                            dict[str, IndicatorFrame] | None] | None = None
        self._fetched: dict[int, tuple[tuple[object, ...], dict[str, Matrix]]] = {}
        # per partition and indicator, the series' labels of its last frame and their
        # token: a worker sends them again only when they changed (``partition_frames``)
        self._labels: dict[int, dict[str, tuple[str, list[dict[str, str]]]]] = {}
        self.fetched: Counter[str] = Counter()  # how partitions' matrices were fetched
        # how series' pages were made: on a worker, or why not (then from them all)
        self.paged: Counter[str] = Counter()
        self.asked: Counter[str] = Counter()  # the calls made of workers, by function
        # how each cycle found the partitions' records (``_shares``): "held" (what the
        # workers hold, without what the last cycle forgot) or "found" (record by record)
        self.shares: Counter[str] = Counter()
        self._keyed: tuple[str, str] | None = None  # (store URL, key) the store holds
        # the records the last cycle returned, its evaluated rules, its partitioning and
        # the ids it forgot (``_shares``)
        self._last: tuple[Mapping[str, AlertRecord], tuple[tuple[str, str], ...], Plan,
                          Sequence[str]] | None = None
        # what moved the data version since the last one read, when this process wrote it
        self._delta: Delta | None = None
        self.reads: Counter[str] = Counter()  # how the partitions read each cycle's data

    @property
    def distributed(self) -> bool:
        return self.config.scheduler != IN_PROCESS

    def plan(self, ruleset: RuleSet) -> Plan:
        """Return the partitioning of ``ruleset`` (worked out once per rule set)."""
        return self._plan(ruleset)[0]

    def _plan(self, ruleset: RuleSet) -> tuple[Plan, str]:
        """Return the partitioning of ``ruleset`` and its token (what workers keep their
        state under); a new rule set gets a new token, and the workers start afresh."""
        found = self._plans.get(id(ruleset))
        if found is None:
            cut = plan(ruleset, self.config.partitions, self.config.partition_by)
            if cut.reason:
                log.warning("rules evaluated in one partition", reason=cut.reason)
            found = (cut, f"{self._name}:{next(self._epochs)}")
            self._plans = {id(ruleset): found}
            self._held.clear()
            self._home.clear()
            self._last = None
            self._frames.clear()
            self._fetched.clear()
            self._labels.clear()
            self._merged = None
            self._written = None
        return found

    def inputs(self, store: Store, ruleset: RuleSet, milestone_sources: Sequence[str]
               ) -> Dataset:
        """Return what the coordinator reads: milestones and the sources feeding each
        indicator, no observations (the tasks read those). Read again, and the tasks'
        data too, when the store's data version moved (any process's write), the rules
        changed or ``invalidate`` was called — as ``DatasetCache`` does for one process."""
        self._store_key(store, self._plan(ruleset)[0])
        version = (self._generation, id(ruleset), tuple(milestone_sources),
                   store.observations.version())
        if self._inputs is None or self._inputs[0] != version:
            self._delta = _delta(store, self._inputs[0] if self._inputs else None, version)
            self._inputs = (version, read_dataset(store, ruleset, milestone_sources,
                                                  observations=False))
        return self._inputs[1]

    def _store_key(self, store: Store, cut: Plan) -> None:
        """Make the store keep every series' position under ``cut``'s key (once per key:
        all series again when the rules' key changed), so each task reads its partition
        as an index range."""
        if cut.partitions <= 1:
            return
        spec = cut.partition_key.spec()
        if self._keyed == (store.url, spec):
            return
        started = time.perf_counter()
        moved = set_key(store, cut.partition_key)
        if moved:
            log.info("partition key stored", key=list(cut.key), series=moved,
                     seconds=round(time.perf_counter() - started, 2))
        self._keyed = (store.url, spec)

    def invalidate(self) -> None:
        """Read the store again next cycle (a poll in this process stored data)."""
        self._generation += 1

    # --- running the tasks -------------------------------------------------------------

    def _start(self, fn: Callable[..., Any], tasks: Sequence[Task], *args: Any
               ) -> Callable[[], list[Any]]:
        """Start ``fn(task, *args)`` for every task, where configured; return what waits
        for their results, in order (in-process: runs them then)."""
        if not self.distributed:
            return lambda: [fn(task, *args) for task in tasks]
        futures = [self._submit(fn, task, *args) for task in tasks]
        return lambda: [f.result() for f in futures]

    def _totals(self, cut: Plan, base: Task) -> Callable[[], dict[str, Block]]:
        """Start the cross-partition totals' first stage; return what adds up every
        stage's partial sums (a later stage's tasks are handed the earlier ones' totals)
        and returns the totals."""
        written: dict[str, Block] = {}

        def stage(number: int) -> Callable[[], list[dict[str, PartialTotal]]]:
            tasks = [replace(base, index=i, stages=number, written=dict(written))
                     for i in range(cut.partitions)]
            return self._start(partition_totals, tasks, cut.stages[number])

        first = stage(0) if cut.stages else None

        def finish() -> dict[str, Block]:
            for number, names in enumerate(cut.stages):
                shares = first() if number == 0 and first is not None else stage(number)()
                for name in names:
                    written[name] = combine_totals([share[name] for share in shares])
            return written

        return finish

    def _submit(self, fn: Callable[..., Any], task: Task, *args: Any) -> Any:
        """Submit ``fn(task, *args)`` to the worker that keeps partition ``task.index``
        (another one if it is gone); return its future."""
        client = self.client()
        workers = sorted(client.scheduler_info()["workers"])
        home = [workers[task.index % len(workers)]] if workers else None
        # No worker known at this moment (one was lost, its replacement not yet joined):
        # any worker, when one is there. Dask refuses allow_other_workers without workers.
        return client.submit(fn, task, *args, retries=RETRIES, pure=False, workers=home,
                             allow_other_workers=home is not None)

    def start(self) -> None:
        """Start the local cluster, or connect to the scheduler, before the first cycle
        (with the daemon, so a cycle never waits for workers to start). A scheduler that
        cannot be reached is logged; the first cycle tries again."""
        if not self.distributed:
            return
        try:
            self.client()
        except OSError as exc:
            log.error("distributed engine not reachable; the first cycle retries",
                      scheduler=self.config.scheduler, error=str(exc))

    def client(self) -> Any:
        """Return the Dask client, connecting (or starting the local cluster) on first use.
        Raises OSError when the scheduler cannot be reached."""
        if self._client is None:
            import dask
            from distributed import Client, LocalCluster

            if self.config.scheduler == LOCAL:
                # The scheduler's HTTP server on a free loopback port: None meant port
                # 8787, taken by any other cluster on the machine (a warning each start).
                with dask.config.set(LEAN):  # read as the processes start
                    self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                        n_workers=self.config.local_workers, threads_per_worker=1,
                        processes=True, dashboard_address="127.0.0.1:0", memory_limit=0)
                    self._client = Client(self._cluster)  # type: ignore[no-untyped-call]
            else:
                self._client = Client(  # type: ignore[no-untyped-call]
                    self.config.scheduler, timeout=30)
            # The workers import the engine now, not in the first cycle's tasks.
            self._client.run(warm)
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
        self._held.clear()
        self._last = None

    # --- one cycle ---------------------------------------------------------------------

    def run(self, evaluator: Evaluator, dataset: Dataset,
            records: Mapping[str, AlertRecord], cycle: Cycle) -> Evaluation:
        """Evaluate one cycle over the partitions; return the merged evaluation the
        daemon persists (``Evaluator.run``'s contract)."""
        ruleset = evaluator.ruleset
        holds = evaluator.holds(dataset.sources, records, cycle)
        cut, token = self._plan(ruleset)
        version = self._inputs[0] if self._inputs is not None else ()
        base = Task(self.store_url, ruleset, cut, 0, cycle.at, self.history, 0, {},
                    list(dataset.milestones), dict(dataset.sources), version, token,
                    self._delta)
        # 1. the cross-partition totals, stage by stage, written back for what follows
        # (the same data as of the same time: the same totals, asked of no worker)
        started = time.perf_counter()
        data = (version, cycle.at) if version else None
        kept = self._written if data is not None and self._written is not None \
            and self._written[0] == data else None
        finish = self._totals(cut, base) if kept is None else None
        # 2. every partition evaluates its series, from its records (shared out while the
        # workers add up the totals)
        # (each evaluated rule's records from the records' index, carried from the last
        # cycle: not a pass over every record asking each whether its rule is evaluated,
        # 0.4 CPU-s of the daemon's a cycle at 1M series)
        index = evaluator.carrying(records)
        evaluated = tuple(key for key in dict.fromkeys((r.group, r.rule.alert)
                                                       for r in holds.evaluated)
                          if key[0] != sourcehealth.GROUP)
        own, changes = self._shares(cut, index, records, evaluated)
        if finish is not None:
            kept = (data or (), finish())
            self._written = kept if data is not None else None
        assert kept is not None
        self.write_back_seconds = time.perf_counter() - started
        epoch = next(self._epochs)
        task = replace(base, stages=len(cut.stages), written=kept[1])
        made: dict[int, Made] = {}
        # each partition's records put in the records' index (above) as they arrive (in
        # partition order: the merged order within a rule), not all of them after the last
        results = self._evaluate(task, holds.evaluated, own, changes, epoch, cycle.now, data,
                                 made, index)
        self.last = results
        self.reads.update(result.read for result in results)
        # 3. merged, then settled as any cycle is
        started = time.thread_time()
        merged = self._merge(ruleset, results, [made[r.index] for r in results], records,
                             holds.evaluated, cycle)
        for result in results:  # what each worker now holds: its records and its changes
            self._held[result.index] = (result.epoch, own[result.index])
            own[result.index].update(zip(result.changes.ids, made[result.index][0],
                                         strict=True))
        _add_stats(evaluator, results, holds.evaluated, cycle.now)
        settled = evaluator.settle(merged, holds, records, cycle, carried=index)
        self.merge_seconds = time.thread_time() - started
        self._last = (settled.records, evaluated, cut, settled.removed)
        return settled

    def _shares(self, cut: Plan, index: RecordIndex, records: Mapping[str, AlertRecord],
                evaluated: tuple[tuple[str, str], ...]
                ) -> tuple[list[dict[str, AlertRecord]],
                           list[tuple[str, ...] | None]]:
        """Return each partition's records of the ``evaluated`` rules, and what changed
        in them since the state its worker holds: the ids gone, when only those (None:
        compare them with what it holds, ``_evaluate``).

        When ``records`` are the ones the last cycle returned, of the same rules and
        partitions (every cycle but the first, a reload or records read again), a
        partition's records are the ones its worker holds without those the last cycle
        forgot: copied, not found again record by record (at 1M series two passes in
        Python over 1.6 million records before any partition could start)."""
        n = cut.partitions
        # taken, and set again only by a cycle that returns: one that fails half-way may
        # have left the workers' states ahead of the records the next cycle starts from
        last, self._last = self._last, None
        if last is not None and last[0] is records and last[1] == evaluated \
                and last[2] is cut and all(i in self._held for i in range(n)):
            gone: list[list[str]] = [[] for _ in range(n)]
            for key in last[3]:
                i = self._home.get(key)
                if i is not None:
                    gone[i].append(key)
            own = []
            for i in range(n):
                mine = self._held[i][1].copy()
                for key in gone[i]:
                    mine.pop(key, None)
                own.append(mine)
            self.shares["held"] += 1
            return own, [tuple(keys) for keys in gone]
        self.shares["found"] += 1
        own = [{} for _ in range(n)]
        home = self._home
        for rule in evaluated:
            for key, record in index.by_rule.get(rule, {}).items():
                i = home.get(key)
                own[self._partition(cut, record) if i is None else i][key] = record
        return own, [None] * n

    def _partition(self, cut: Plan, record: AlertRecord) -> int:
        """Return the partition that owns ``record`` (worked out once per alert)."""
        home = self._home.get(record.id)
        if home is None:
            home = self._home[record.id] = cut.partition_of(record.labels)
        return home

    def _evaluate(self, task: Task, rules: Sequence[LoadedRule],
                  own: Sequence[dict[str, AlertRecord]],
                  changes: Sequence[tuple[str, ...] | None], epoch: int, now: datetime,
                  data: tuple[object, ...] | None, made: dict[int, Made],
                  carry: RecordIndex) -> list[PartitionResult]:
        """Run every partition's evaluation; return their results in partition order,
        and put each one's records and transitions in ``made`` as its result arrives
        (made here while the other partitions still evaluate), and its records into the
        records' index (``carry``: those replacing a held record at once, the new ones
        in partition order).

        Each is sent only what changed in its records since the state its worker keeps,
        and asked for its matrices only when the data moved since it last sent them. A
        worker that does not keep that state (new, or it took over from a lost one) says
        so, and is sent all its records. ``changes``: per partition, the ids gone since
        that state when they are the only change (``_shares``), else None."""
        def given(i: int, whole: bool) -> Records:
            held = None if whole else self._held.get(i)
            if held is None:
                return Records(-1, epoch, own[i])
            gone = changes[i]
            if gone is not None:
                return Records(held[0], epoch, {}, gone)
            before = held[1]
            return Records(held[0], epoch,
                           {k: r for k, r in own[i].items() if before.get(k) is not r},
                           tuple(k for k in before if k not in own[i]))

        def wants(i: int) -> bool:
            kept = self._frames.get(i)
            return data is None or kept is None or kept[0] != data

        tasks = [replace(task, index=i) for i in range(len(own))]
        out: dict[int, PartitionResult] = {}
        framed_out: dict[int, tuple[dict[str, IndicatorFrame], dict[str, int]]] = {}

        rest: dict[int, list[AlertRecord]] = {}  # each partition's records yet to carry
        carried = 0  # the partitions before this one were carried

        def arrived(result: PartitionResult) -> None:
            nonlocal carried
            out[result.index] = result
            # (the records it started from: those whose labels it did not send)
            made[result.index] = result.changes.made(now, own[result.index])
            # a partition sends only the records it owns
            self._home.update(dict.fromkeys(result.changes.ids, result.index))
            # its records that replace one held now, whatever the order they arrive in;
            # the new ones in partition order
            rest[result.index] = carry.carry_held(made[result.index][0])
            while carried in rest:
                carry.carry(rest.pop(carried))
                carried += 1

        if not self.distributed:
            for i, t in enumerate(tasks):
                try:
                    arrived(evaluate_partition(t, rules, given(i, False), now, wants(i)))
                except StaleState:
                    self.resent += 1
                    arrived(evaluate_partition(t, rules, given(i, True), now, wants(i)))
        else:
            from distributed import as_completed

            # Each partition's frames come from a task of their own, run after its
            # evaluation on the same worker (where its matrices are): its alerts' changes
            # arrive, and are made here, while the worker still makes the frames. Every
            # result is fetched as soon as its task ends, beside the others (Dask's
            # as_completed with results), not one after another as this loop asks: a
            # result waiting for the loop waited for the records made before it (1.5 s
            # of a cycle at 1M series), and each partition's frames for the one before.
            current: dict[tuple[str, int], Any] = {}  # each partition's latest tasks
            pending: Any = as_completed(  # type: ignore[no-untyped-call]
                loop=self.client().loop, with_results=True, raise_errors=False)

            def submit(i: int, whole: bool) -> None:
                future = self._submit(evaluate_partition, tasks[i], rules, given(i, whole),
                                      now, False)
                current["evaluation", i] = future
                pending.add(future)
                if wants(i):
                    held = {name: kept[0] for name, kept in self._labels.get(i, {}).items()}
                    # (after any evaluation queued on its worker: with more partitions
                    # than workers, the next partition's alerts before these pages)
                    framed = self.client().submit(partition_frames, tasks[i], future, held,
                                                  retries=RETRIES, pure=False, priority=-1)
                    current["frames", i] = framed
                    pending.add(framed)

            for i in range(len(tasks)):
                submit(i, False)
            for future, value in pending:
                kind, i = next((key for key, f in current.items() if f is future),
                               ("superseded", -1))
                if kind == "superseded":
                    continue  # the frames of an evaluation sent again (made anew)
                if future.status != "finished":
                    if not isinstance(future.exception(), StaleState):
                        future.result()  # raises what the task raised, with its traceback
                    if kind == "evaluation":  # (its frames' task fails with it)
                        self.resent += 1  # sent whole again, its frames' task made anew
                        submit(i, True)
                elif kind == "evaluation":
                    arrived(value)
                else:
                    made_frames, ends, tokens, same = value
                    if not same:
                        log.warning("a partition's frames were made from its matrices "
                                    "read again, and the store was written since: the "
                                    "pages show its newer data until the next cycle",
                                    partition=i)
                    framed_out[i] = (self._labelled(i, made_frames, tokens), ends)
            for i, (frames, ends) in framed_out.items():
                out[i] = replace(out[i], frames=frames, ends=ends)
        results = [out[i] for i in range(len(tasks))]
        for result in results:
            if result.frames is not None:  # its matrices: on its worker, of this data
                self._frames[result.index] = (data or (), result, tasks[result.index])
                self._fetched.pop(result.index, None)
            elif result.index in self._frames \
                    and self._frames[result.index][1].worker != result.worker:
                kept = self._frames[result.index]  # the same data, now on another worker
                self._frames[result.index] = (kept[0], replace(kept[1], worker=result.worker),
                                              kept[2])
        return results

    def _labelled(self, i: int, frames: dict[str, IndicatorFrame], tokens: Mapping[str, str]
                  ) -> dict[str, IndicatorFrame]:
        """Return partition ``i``'s frames with their series' labels: those sent without
        them (their token is the one held here) get the labels held."""
        held = self._labels.setdefault(i, {})
        out = {}
        for name, frame in frames.items():
            kept = held.get(name)
            if kept is not None and kept[0] == tokens[name]:
                frame = replace(frame, labels=kept[1])
            else:
                held[name] = (tokens[name], frame.labels)
            out[name] = frame
        return out

    def _merge(self, ruleset: RuleSet, results: Sequence[PartitionResult],
               made: Sequence[Made], records: Mapping[str, AlertRecord],
               rules: Sequence[LoadedRule], cycle: Cycle) -> Evaluation:
        """Return the partitions' results as one evaluation: their records and
        transitions (``made`` as each arrived) in the rules' order; the matrices side by
        side (the last ones again when no partition sent new ones)."""
        out = Evaluation(cycle.at, Frequency.MONTHLY.ordinal(cycle.at.date()), {},
                         dict(records), evaluated_at=cycle.now)
        changes = [part.changes for part in results]
        out.changed, out.transitions = merge(changes, made)
        if any(c.odd for c in changes):  # in the rules' order, as one process steps them
            order = {(r.group, r.rule.alert): i for i, r in enumerate(rules)}
            out.transitions.sort(key=lambda t: order.get((t.group, t.rule), len(order)))
        for record in out.changed:
            out.records[record.id] = record
        for part in results:
            for rule, error in part.errors.items():
                out.errors.setdefault(rule, error)
        out.matrices, out.frames = self._pages(ruleset, len(results))
        return out

    def _pages(self, ruleset: RuleSet, n: int
               ) -> tuple[Gathered, dict[str, IndicatorFrame] | None]:
        """Return what the pages read of the cycle: every partition's matrices side by
        side, fetched from the workers when first read (``Gathered``), and the snapshot's
        frames, the partitions' end to end — made anew only when a partition sent new
        ones. When the partitions' matrices do not end at the same period, the frames are
        made here from the whole matrices (fetched now), as one process makes them."""
        held = {i: self._frames[i] for i in range(n) if i in self._frames}
        parts = [kept[1] for kept in held.values()]
        # the same results as last time: compared as objects, which ``_merged`` keeps
        # alive (compared by ``id`` alone, a result freed since could have its id taken by
        # a later one, and an earlier cycle's pages come back)
        if self._merged is not None and len(self._merged[0]) == len(parts) \
                and all(a is b for a, b in zip(self._merged[0], parts, strict=True)):
            return self._merged[1], self._merged[2]
        names = [name for name in ruleset.indicators
                 if any(p.frames is not None and name in p.frames for p in parts)]
        pages: dict[tuple[str, tuple[tuple[str, str], ...]], SeriesDetail | None] = {}
        gathered = Gathered(names, lambda: self._gather(ruleset, held),
                            lambda name, labels: self._details(ruleset, held, pages, name,
                                                               labels))
        frames = joined(names, [p.frames or {} for p in parts], [p.ends or {} for p in parts])
        if frames is None:
            gathered.matrices()
        self._merged = (tuple(parts), gathered, frames)
        return gathered, frames

    def _gather(self, ruleset: RuleSet,
                held: Mapping[int, tuple[tuple[object, ...], PartitionResult, Task]]
                ) -> dict[str, Matrix]:
        """Return every partition's matrices side by side, fetched (``_fetch``)."""
        parts = [self._fetch(i, *kept) for i, kept in held.items()]
        out = {}
        for name in ruleset.indicators:
            pieces = [p[name] for p in parts if name in p]
            if pieces:
                out[name] = replace(stack(pieces), indicator=ruleset.indicators[name])
        return out

    def _details(self, ruleset: RuleSet,
                 held: Mapping[int, tuple[tuple[object, ...], PartitionResult, Task]],
                 pages: dict[tuple[str, tuple[tuple[str, str], ...]], SeriesDetail | None],
                 name: str, labels: Sequence[Mapping[str, str]]) -> list[SeriesDetail | None]:
        """Return the pages of the series ``labels`` names, in their order, each made by
        the worker that keeps its partition's matrices (``partition_details``; kept here
        for the cycle), not from every partition's matrices fetched: at 1M series the
        first page read after a cycle fetched them all into the daemon (8.7-9.7 s; its
        peak 4.0 GB against 1.9). Each partition is asked once for all its series, the
        partitions side by side: a list page of 50 rows was 50 round trips, one after
        another. None for a page — read it from the matrices side by side — that reads
        across partitions: a rank among the indicator's series, or partitions whose
        matrices end at different columns (the headline's window then is the latest one
        of all); or for a series that is not where its labels place it, or whose worker
        no longer keeps its matrices."""
        keys = [(name, tuple(sorted(one.items()))) for one in labels]
        wanted = {key: one for key, one in zip(keys, labels, strict=True) if key not in pages}
        if wanted:
            made = self._details_of(ruleset, held, name, list(wanted.values()))
            for key, (page, how) in zip(wanted, made, strict=True):
                self.paged[how] += 1
                if len(pages) < PAGES_KEPT:
                    pages[key] = page
            found = dict(zip(wanted, (page for page, _how in made), strict=True))
        else:
            found = {}
        return [pages[key] if key in pages else found[key] for key in keys]

    def _details_of(self, ruleset: RuleSet,
                    held: Mapping[int, tuple[tuple[object, ...], PartitionResult, Task]],
                    name: str, labels: Sequence[Mapping[str, str]]
                    ) -> list[tuple[SeriesDetail | None, str]]:
        """``_details`` asked of the workers: each page, or None and why."""
        ind = ruleset.indicators.get(name)
        if ind is None or ind.rank.over is not None or ind.rank.parts:
            return [(None, "ranked")] * len(labels)
        ends = set()
        for _data, result, _task in held.values():
            if result.ends is None:
                return [(None, "no ends")] * len(labels)
            if name in result.ends:  # (a partition without its series has no end)
                ends.add(result.ends[name])
        if len(ends) != 1:
            return [(None, "ends differ")] * len(labels)
        cut = next(iter(held.values()))[2].plan
        out: list[tuple[SeriesDetail | None, str]] = [(None, "no partition")] * len(labels)
        asked: dict[int, list[int]] = {}  # partition -> positions of its series
        for k, one in enumerate(labels):
            i = 0 if name in cut.whole else cut.partition_of(one)
            if i in held:
                asked.setdefault(i, []).append(k)
        calls = [(partition_details, held[i][2], held[i][1].worker, name,
                  [dict(labels[k]) for k in ks]) for i, ks in asked.items()]
        for ks, answer in zip(asked.values(), self._calls(calls), strict=True):
            if isinstance(answer, NotHeld):
                for k in ks:
                    out[k] = (None, "not held")
                continue
            for k, page in zip(ks, answer, strict=True):
                out[k] = (page, "worker" if page is not None else "not there")
        return out

    def _fetch(self, i: int, data: tuple[object, ...], result: PartitionResult, task: Task
               ) -> dict[str, Matrix]:
        """Return partition ``i``'s matrices of ``data``, which ``task`` evaluated: from
        the worker that keeps them; when it does not (lost, or already evaluating newer
        data), read again from the store by a task of their own. A store written since
        (a poll landed after the cycle) makes those of the newer data, logged."""
        kept = self._fetched.get(i)
        if kept is not None and kept[0] == data and data:
            return kept[1]
        matrices: dict[str, Matrix]
        try:
            matrices = self._call(held_matrices, task, result.worker)
            how = "kept"
        except NotHeld:
            matrices, same = self._call(read_matrices, task, "")
            how = "read again" if same else "read again, newer data"
            if not same:
                log.warning("a partition's matrices were read again after its worker let "
                            "them go, and the store was written since: the pages show its "
                            "newer data until the next cycle", partition=i)
        self.fetched[how] += 1
        self._fetched[i] = (data, matrices)
        return matrices

    def _call(self, fn: Callable[..., Any], task: Task, worker: str, *args: Any) -> Any:
        """Return ``fn(task, *args)``: here in-process, else on ``worker`` (any when
        gone)."""
        answer = self._calls([(fn, task, worker, *args)])[0]
        if isinstance(answer, NotHeld):
            raise answer
        return answer

    def _calls(self, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Return ``fn(task, *args)`` of each ``(fn, task, worker, *args)``: here
        in-process, one after another; else each on its ``worker`` (any when gone), all
        at once. A call that raised NotHeld gives that exception in its place; any other
        is raised."""
        self.asked.update(fn.__name__ for fn, *_rest in calls)
        if not self.distributed:
            out = []
            for fn, task, _worker, *args in calls:
                try:
                    out.append(fn(task, *args))
                except NotHeld as exc:
                    out.append(exc)
            return out
        client = self.client()
        workers = client.scheduler_info()["workers"]
        # Another worker when that one is gone meanwhile: it says NotHeld, and is asked
        # to read them again.
        futures = [client.submit(fn, task, *args, pure=False,
                                 workers=[worker] if worker in workers else None,
                                 allow_other_workers=worker in workers)
                   for fn, task, worker, *args in calls]
        out = []
        for future in futures:
            try:
                out.append(future.result())
            except NotHeld as exc:
                out.append(exc)
        return out



def _delta(store: Store, held: tuple[object, ...] | None, version: tuple[object, ...]
           ) -> Delta | None:
    """Return what moved the data from version ``held`` (the tasks' last) to ``version``:
    the series this process's writes touched and the earliest period written (its store
    journals them, as for ``DatasetCache``); None when the rules or milestones changed,
    or another process wrote (then every partition is read again). The journal is let
    go as far as it was read."""
    if held is None or held[1:3] != version[1:3]:
        return None
    before, now = held[3], version[3]
    assert isinstance(before, int) and isinstance(now, int)
    changed = store.observations.changed_ids(before, now)
    store.observations.forget_changes(now)
    if changed is None:
        return None
    return Delta(held, changed[0], changed[1])


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


def joined(names: Sequence[str], parts: Sequence[Mapping[str, IndicatorFrame]],
           ends: Sequence[Mapping[str, int]]) -> dict[str, IndicatorFrame] | None:
    """Return the partitions' frames of each indicator end to end (the frame of the
    stacked matrix: ``scorecard.join_frames``); None when, for an indicator, the
    partitions holding series end at different columns (the whole matrix's frame is
    then made from it)."""
    out = {}
    for name in names:
        pieces = [(p[name], e.get(name)) for p, e in zip(parts, ends, strict=True)
                  if name in p]
        full = [(f, end) for f, end in pieces if end is not None]
        if not full:  # no series anywhere: the first partition's (empty) frame
            out[name] = pieces[0][0]
            continue
        whole = join_frames([f for f, _end in full], [end for _f, end in full])
        if whole is None:
            return None
        out[name] = whole
    return out


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
