"""The series space partitioned and evaluated on Dask's distributed engine (issue #16).

Prints two tables:

- the daemon's cycle in one process (``Evaluator.run`` through ``DatasetCache``, then
  ``Evaluator.publish``: the snapshot the pages, the API and ``/metrics`` read, as
  ``RuleService`` runs them) against the same cycle on a 2-worker ``LocalCluster``
  (``[engine] scheduler = "local"``, started before the first cycle as the daemon starts
  it; the series' positions under the partition key already stored, as they are for
  every cycle but the first after a change of key, whose cost is the last line): wall
  seconds and CPU-seconds (of every process) of the first cycle, which reads
  the store, and of a steady one, which has no new data; the speed-ups; each process's
  peak RSS; the first cycle's CPU-seconds per process (the daemon's, of which its merge
  and publish after the last result, and each worker's) and the best wall time that
  split allows on 2 cores of our own (half of all the CPU, or the slowest worker then
  the merge); and the new month's tasks on the workers (Dask's task stream: each
  partition's totals, which read the new month, its evaluation and its frames, each
  with its worker and its start and end, in seconds from the cycle's start);
- the first page read after the first cycle (one series' page: on the workers, made by
  the worker that keeps its partition's matrices), then an indicator's list page (its
  default 50 rows, each a series' page: on the workers, each partition asked once for
  its rows), and whether the pages (every series' snapshot line, that page and those
  rows) are the one process's;
- simulated scale: 1/2/4/8 partitions one after another, each partition's evaluation in
  a fresh process of its own: its CPU-seconds and its memory (peak RSS over the
  process's before the task), each against 1/N of one partition's (1.00 = exactly 1/N),
  and the written-back totals' CPU share of the cycle;
- same answers: the transitions of every run against the one-process run;
- what a change of partition key costs: every series positioned again under the key
  (``store.partitions.set_key``, what the first cycle after such a reload does).

Each measurement runs in a fresh process (peak RSS is per process). The store is SQLite,
filled once: ``--series`` series (two indicators × areas) × 36 months, a composite rule
joined on ``area``, a change rule, and a rule against the London total (a total over
every area: the written-back cross-partition input).

    .venv/bin/python benchmarks/bench_distributed.py                # 100k series
    .venv/bin/python benchmarks/bench_distributed.py --million      # 1M (≈ 10 GB RAM)
    .venv/bin/python benchmarks/bench_distributed.py --store /tmp/s100k  # keep the store
    .venv/bin/python benchmarks/bench_distributed.py --per-worker 2  # 4 partitions, 2 workers
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.memory import gc_paused  # the checkout's, not an installed copy

RULES = """
indicators:
  - {id: burglary, name: Burglary, direction: down, headline: change_pct}
  - {id: robbery, name: Robbery, direction: down, headline: change_pct}
  - id: london
    name: London burglary
    direction: down
    derived: {total: burglary}
groups:
  - name: crime
    rules:
      - alert: BurglaryUpRobberyDown
        indicator: burglary
        on: [area]
        when:
          all:
            - change: {window: 12, above: 0}
            - change: {indicator: robbery, window: 12, below: 0}
      - alert: RobberyUp
        indicator: robbery
        when: {change: {window: 3, above: 5}}
      - alert: UpWhileLondonUp
        indicator: burglary
        when:
          all:
            - change: {window: 12, above: 10}
            - change: {indicator: london, window: 12, above: 0}
"""
START = 12 * 2020  # Jan 2020 as a monthly ordinal
IDLE = 10.0  # seconds the local cluster is watched idle
MONTHS = 36
# the rows of an indicator's list page (its default limit: /indicators/{indicator})
LIST = [{"area": f"a{k:07d}"} for k in range(2, 52)]


def rss_mb() -> float:
    """Return this process's peak RSS in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status(field: str) -> float:
    """Return a field of /proc/self/status (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def fill(folder: Path, series: int) -> None:
    from monitor.model import Observation, labels_of
    from monitor.store import open_store

    (folder / "rules").mkdir(parents=True, exist_ok=True)
    (folder / "rules" / "r.yaml").write_text(RULES, encoding="utf-8")
    store = open_store(f"sqlite:///{folder / 'store.db'}")
    rng = np.random.default_rng(1)
    areas = series // 2
    for name in ("burglary", "robbery"):
        for lo in range(0, areas, 20_000):
            values = rng.poisson(100, (min(20_000, areas - lo), MONTHS)).astype(float)
            obs = [Observation(name, labels_of({"area": f"a{lo + i:07d}"}), START + k,
                               float(values[i, k]))
                   for i in range(values.shape[0]) for k in range(MONTHS)]
            store.observations.ingest("gen", obs, now=datetime(2026, 1, 1, tzinfo=UTC))
    store.close()


def new_month(store) -> None:  # type: ignore[no-untyped-def]
    """Ingest one more month for every series through ``store`` (the daemon's own poll:
    its store journals the series it touched), the same values in every run."""
    from monitor.model import Observation, labels_of

    rng = np.random.default_rng(2)
    areas = store.observations.read(["burglary"], since=START + MONTHS - 1)["burglary"].labels
    for name in ("burglary", "robbery"):
        values = rng.poisson(100, len(areas)).astype(float)
        store.observations.ingest("gen", [
            Observation(name, labels_of(labels), START + MONTHS, float(v))
            for labels, v in zip(areas, values, strict=True)],
            now=datetime(2026, 2, 1, tzinfo=UTC))


def _copy(folder: Path) -> Path:
    """Return a copy of the filled store and rules in a folder of its own (each run adds
    a month to its copy), removed when this process exits (2 GB at 1M series)."""
    import atexit
    import shutil

    into = Path(tempfile.mkdtemp(prefix="bench-dist-"))
    atexit.register(shutil.rmtree, into, True)
    shutil.copytree(folder / "rules", into / "rules")
    for name in ("store.db", "store.db-wal"):
        if (folder / name).exists():
            shutil.copy(folder / name, into / name)
    return into


def _setup(folder: Path):  # type: ignore[no-untyped-def]
    from monitor.rules.cycle import Cycle, Evaluator
    from monitor.rules.engine import month_end
    from monitor.rules.loader import load_rules
    from monitor.store import open_store

    store = open_store(f"sqlite:///{folder / 'store.db'}", migrate=False)
    ruleset = load_rules([str(folder / "rules")])
    at = month_end(START + MONTHS - 1)
    return store, ruleset, Evaluator(ruleset), Cycle(at=at, now=at)


def _answers(result) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(f"{t.alert_id}:{t.to_state.value}:{t.value}" for t in result.transitions)


def one_process(folder: Path) -> dict[str, object]:
    """The daemon's own path in one process: ``DatasetCache`` reads the store once, a
    steady cycle (no new data) reads nothing."""
    from monitor.rules.inputs import DatasetCache

    store, ruleset, evaluator, cycle = _setup(_copy(folder))
    cache = DatasetCache(store)
    started, cpu = time.perf_counter(), time.process_time()
    with gc_paused():  # as the rule service runs a cycle
        result = evaluator.run(cache.get(ruleset, []), {}, cycle)
        published = evaluator.publish(result)
    first, first_cpu = time.perf_counter() - started, time.process_time() - cpu
    rss_first = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    page = published.detail("burglary", {"area": "a0000001"})
    page_s, page_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    rows = published.details("burglary", LIST)
    list_s, list_cpu = time.perf_counter() - started, time.process_time() - cpu
    pages = _pages(published, page, rows)
    started, cpu = time.perf_counter(), time.process_time()
    with gc_paused():
        steady_result = evaluator.run(cache.get(ruleset, []), result.records, cycle)
        evaluator.publish(steady_result)
    steady, steady_cpu = time.perf_counter() - started, time.process_time() - cpu
    new_month(store)
    started, cpu = time.perf_counter(), time.process_time()
    with gc_paused():
        month = evaluator.run(cache.get(ruleset, []), steady_result.records, _next(cycle))
        evaluator.publish(month)
    month_s, month_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"first": first, "steady": steady, "first_cpu": first_cpu,
            "steady_cpu": steady_cpu, "month": month_s, "month_cpu": month_cpu,
            "rss": rss_first, "rss_all": rss_mb(), "answers": _answers(result),
            "month_answers": _answers(month), "reads": dict(cache.reads),
            "page": page_s, "page_cpu": page_cpu, "list": list_s, "list_cpu": list_cpu,
            "pages": pages}


def _pages(published, page, rows) -> str:  # type: ignore[no-untyped-def]
    """Return a digest of what the pages show: every series' snapshot line (headline
    value, target, status, changes, SPC) in the series' order, one series' page and the
    rows of a list page."""
    import hashlib

    lines = []
    for name, f in published.snapshot.frames.items():
        columns = [f.period, f.value, f.target, f.status, f.provisional, f.spc,
                   *[f.changes[k] for k in sorted(f.changes)]]
        lines += sorted(repr((name, sorted(lab.items()), *[c[i] for c in columns]))
                        for i, lab in enumerate(f.labels))
    lines.append(repr(page))
    lines += [repr(row) for row in rows]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _next(cycle):  # type: ignore[no-untyped-def]
    """The cycle of the month after ``cycle``'s."""
    from monitor.rules.cycle import Cycle
    from monitor.rules.engine import month_end

    at = month_end(START + MONTHS)
    return Cycle(at=at, now=at)


def local_cluster(folder: Path, workers: int, per_worker: int = 1) -> dict[str, object]:
    """The same cycles on a ``LocalCluster``, started before the first (as the daemon
    starts it), in ``per_worker`` partitions per worker; CPU-seconds are the daemon's and
    every worker's."""
    from monitor.rules.distributed import DistributedEngine, EngineConfig
    from monitor.store.partitions import set_key

    store, ruleset, evaluator, cycle = _setup(_copy(folder))
    engine = DistributedEngine(store.url, EngineConfig("local", workers * per_worker, workers))
    # Every series' position under the rules' partition key is stored once per key (the
    # first cycle after the key changes; timed on its own: "a change of partition key"),
    # not every cycle: stored here first, as for every cycle but that one.
    set_key(store, engine.plan(ruleset).partition_key)
    engine.start()
    started_rss = sorted(engine.client().run(_status, "VmRSS").values())  # imports only

    def each() -> list[float]:  # the daemon's CPU-seconds, then each worker's
        return [time.process_time(), *engine.client().run(time.process_time).values()]

    def cpu() -> float:
        return sum(each())

    started, before = time.perf_counter(), each()
    with gc_paused():  # as the rule service runs a cycle (workers pause their own)
        result = engine.run(evaluator, engine.inputs(store, ruleset, []), {}, cycle)
        merged = time.thread_time()
        published = evaluator.publish(result)
    first, after = time.perf_counter() - started, each()
    merge = engine.merge_seconds + time.thread_time() - merged
    peaks_first = engine.client().run(rss_mb)
    rss_first = rss_mb()
    split = [b - a for a, b in zip(before, after, strict=True)]
    first_cpu = sum(split)
    started, used = time.perf_counter(), cpu()
    page = published.detail("burglary", {"area": "a0000001"})  # the matrices fetched
    page_s, page_cpu = time.perf_counter() - started, cpu() - used
    started, used = time.perf_counter(), cpu()
    rows = published.details("burglary", LIST)
    list_s, list_cpu = time.perf_counter() - started, cpu() - used
    pages = _pages(published, page, rows)
    started, used = time.perf_counter(), cpu()
    with gc_paused():
        steady_result = engine.run(evaluator, engine.inputs(store, ruleset, []),
                                   result.records, cycle)
        evaluator.publish(steady_result)
    steady, steady_cpu = time.perf_counter() - started, cpu() - used
    new_month(store)
    from distributed import get_task_stream

    started, before = time.perf_counter(), each()
    begun = time.time()  # (the task stream's clock)
    with get_task_stream(client=engine.client()) as stream, gc_paused():
        month = engine.run(evaluator, engine.inputs(store, ruleset, []),
                           steady_result.records, _next(cycle))
        merged = time.thread_time()
        evaluator.publish(month)
    month_merge = engine.merge_seconds + time.thread_time() - merged
    month_s, after = time.perf_counter() - started, each()
    timeline = _timeline(stream.data, begun)
    month_split = [b - a for a, b in zip(before, after, strict=True)]
    month_cpu = sum(month_split)
    before = each()
    time.sleep(IDLE)  # the cluster between cycles: what Dask's own timers cost
    idle = [(b - a) / IDLE for a, b in zip(before, each(), strict=True)]
    peaks = engine.client().run(rss_mb)
    engine.close()
    return {"first": first, "steady": steady, "first_cpu": first_cpu,
            "steady_cpu": steady_cpu, "rss": rss_first, "rss_all": rss_mb(),
            "workers": sorted(peaks_first.values()), "workers_all": sorted(peaks.values()),
            "answers": _answers(result), "write_back": engine.write_back_seconds,
            "month": month_s, "month_cpu": month_cpu, "month_answers": _answers(month),
            "month_split": month_split, "month_merge": month_merge, "timeline": timeline,
            "reads": dict(engine.reads),
            "split": split, "merge": merge, "started": started_rss, "idle": idle,
            "page": page_s, "page_cpu": page_cpu, "list": list_s, "list_cpu": list_cpu,
            "pages": pages}


def _timeline(tasks: list[dict[str, Any]], begun: float) -> list[tuple[str, int, float, float]]:
    """Return each task's computation in a cycle (Dask's task stream): its function, its
    worker (numbered in address order) and when it started and stopped, in seconds from
    the cycle's start; in order of start."""
    workers = sorted({t["worker"] for t in tasks})
    out = [(str(t["key"]).rsplit("-", 5)[0], workers.index(t["worker"]) + 1,
            part["start"] - begun, part["stop"] - begun)
           for t in tasks for part in t["startstops"] if part["action"] == "compute"]
    return sorted(out, key=lambda row: row[2])


def simulated(folder: Path, n: int) -> dict[str, object]:
    """``n`` partitions one after another: the written-back totals here (each
    partition's share computed twice, the second time from the blocks already read, so
    that the write-back's own cost is apart from the read the evaluation needs anyway),
    then each partition's evaluation in a fresh process of its own (``part``)."""
    import pickle

    from monitor.rules import worker
    from monitor.rules.distributed import DistributedEngine, EngineConfig
    from monitor.rules.partition import combine_totals
    from monitor.rules.worker import Records, Task, partition_totals

    store, ruleset, evaluator, cycle = _setup(folder)
    engine = DistributedEngine(store.url, EngineConfig("in-process", n, 1))
    dataset = engine.inputs(store, ruleset, [])
    cut = engine.plan(ruleset)
    version = (0, "bench")  # the workers' caches hold within one measurement
    base = Task(store.url, ruleset, cut, 0, cycle.at, 60, 0, {}, [], dict(dataset.sources),
                version)
    write_back = 0.0
    written: dict[str, object] = {}
    for number, stage in enumerate(cut.stages):
        shares = []
        for i in range(n):
            task = replace(base, index=i, stages=number, written=dict(written))
            partition_totals(task, stage)  # reads the partition (as its evaluation will)
            used = time.process_time()
            shares.append(partition_totals(task, stage))
            write_back += time.process_time() - used
            worker.forget()
        used = time.process_time()
        for name in stage:
            written[name] = combine_totals([share[name] for share in shares])
        write_back += time.process_time() - used
    rules = evaluator.holds(dataset.sources, {}, cycle).evaluated
    parts = []
    for i in range(n):
        task = replace(base, index=i, stages=len(cut.stages), written=written)
        path = folder / f"part{n}-{i}.pickle"
        path.write_bytes(pickle.dumps((task, rules, Records(-1, 1, {}), cycle.now)))
        parts.append(child("part", folder, 0, str(path)))
        path.unlink()
    cpu = [p["cpu"] for p in parts]
    answers = sorted(a for p in parts for a in p["answers"])  # type: ignore[attr-defined]
    return {"cpu": cpu, "rss": [p["rss"] for p in parts], "base": [p["base"] for p in parts],
            "write_back": write_back, "cycle": write_back + sum(cpu),  # type: ignore[arg-type]
            "answers": answers}


def key(folder: Path) -> dict[str, object]:
    """Position every series under the rules' partition key (after another key, so that
    it is a change of key, as a reload that changes the rules' ``on:`` labels makes)."""
    from monitor.rules.partition import plan
    from monitor.store.partitions import set_key
    from monitor.store.partkey import PartitionKey

    store, ruleset, _evaluator, _cycle = _setup(folder)
    cut = plan(ruleset, 2)
    set_key(store, PartitionKey(("another",)))
    started, used = time.perf_counter(), time.process_time()
    series = set_key(store, cut.partition_key)
    return {"series": series, "wall": time.perf_counter() - started,
            "cpu": time.process_time() - used}


def part(path: Path) -> dict[str, object]:
    """One partition's evaluation in this fresh process: its CPU-seconds, the process's
    RSS before it (interpreter, imports, the task) and its peak RSS during it."""
    import pickle

    from monitor.rules.wire import Changes
    from monitor.rules.worker import evaluate_partition

    task, rules, given, now = pickle.loads(path.read_bytes())
    Path("/proc/self/clear_refs").write_text("5", encoding="ascii")  # peak RSS := RSS now
    base = _status("VmRSS")
    used = time.process_time()
    result = evaluate_partition(task, rules, given, now, False)
    cpu = time.process_time() - used
    peak = _status("VmHWM")
    changes: Changes = result.changes
    _records, transitions = changes.build(now)
    return {"cpu": cpu, "rss": peak, "base": base,
            "answers": sorted(f"{t.alert_id}:{t.to_state.value}:{t.value}"
                              for t in transitions)}


def child(mode: str, folder: Path, arg: int, path: str = "", per_worker: int = 1
          ) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--folder", str(folder),
                          "--arg", str(arg), "--path", path, "--per-worker", str(per_worker)],
                         capture_output=True, text=True, check=False)
    if out.returncode:  # what went wrong, not only that it did
        sys.exit(f"the {mode} run failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1,000,000 series")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--per-worker", type=int, default=1,
                        help="partitions per worker in the cluster's run (default 1)")
    parser.add_argument("--store", help="a folder to keep the filled store in (reused when "
                        "it holds one)")
    parser.add_argument("--partitions", default="1,2,4,8",
                        help="the simulated partition counts ('' for none)")
    parser.add_argument("--child")
    parser.add_argument("--folder")
    parser.add_argument("--path", default="")
    parser.add_argument("--arg", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        import logging

        logging.disable(logging.WARNING)
        folder = Path(args.folder)
        run = {"one": lambda: one_process(folder),
               "local": lambda: local_cluster(folder, args.arg, args.per_worker),
               "sim": lambda: simulated(folder, args.arg),
               "part": lambda: part(Path(args.path)),
               "key": lambda: key(folder)}[args.child]
        print(json.dumps(run()))
        return
    series = 1_000_000 if args.million else args.series
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.store) if args.store else Path(tmp)
        started = time.perf_counter()
        if (folder / "store.db").exists():
            print(f"{series:,} series × {MONTHS} months: the store in {folder} reused")
        else:
            fill(folder, series)
            print(f"{series:,} series × {MONTHS} months stored in "
                  f"{time.perf_counter() - started:.0f} s (SQLite)")
        measure(folder, args.workers, args.per_worker,
                [int(n) for n in args.partitions.split(",") if n.strip()])


def _split(cycle: str, split: list[float], merge: float, alone: float) -> None:
    """Print a cycle's CPU-seconds per process and the best wall time that split allows
    on 2 cores of our own: all the CPU shared by both cores, and never less than the
    slowest worker followed by the daemon's merge (and publish)."""
    daemon, *workers = split
    ideal = max((daemon + sum(workers)) / 2, max(workers) + merge)
    print(f"{cycle} CPU-s: daemon {daemon:.2f} (merge and publish after the last result "
          f"{merge:.2f}), "
          "workers " + ", ".join(f"{w:.2f}" for w in workers)
          + f"; on 2 free cores at best {ideal:.2f} s, {alone / ideal:.2f}× the one "
          "process's CPU-s")


def measure(folder: Path, workers: int, per_worker: int, partitions: list[int]) -> None:
    one = child("one", folder, 0)
    local = child("local", folder, workers, per_worker=per_worker)
    print("\nA cycle: first (reads the store), steady (no new data), and the cycle after one "
          "new month for every series, polled by the daemon's own store (each reads only "
          "what that poll changed); wall seconds, CPU-seconds of every process in "
          "brackets.\n")
    print("| run | first cycle s | steady cycle s | new month s | peak RSS MB after the "
          "first cycle | peak RSS MB of the run (incl. the month's ingest) |")
    print("|---|---|---|---|---|---|")
    print(f"| one process | {one['first']:.2f} [{one['first_cpu']:.1f}] | "
          f"{one['steady']:.2f} [{one['steady_cpu']:.2f}] | "
          f"{one['month']:.2f} [{one['month_cpu']:.2f}] | {one['rss']:.0f} | "
          f"{one['rss_all']:.0f} |")
    peaks = ", ".join(f"{w:.0f}" for w in local["workers"])  # type: ignore[attr-defined]
    peaks_all = ", ".join(f"{w:.0f}" for w in local["workers_all"])  # type: ignore[attr-defined]
    print(f"| {workers} local workers, {workers * per_worker} partitions | "
          f"{local['first']:.2f} [{local['first_cpu']:.1f}] | "
          f"{local['steady']:.2f} [{local['steady_cpu']:.2f}] | "
          f"{local['month']:.2f} [{local['month_cpu']:.2f}] | daemon {local['rss']:.0f}; "
          f"workers {peaks} | daemon {local['rss_all']:.0f}; workers {peaks_all} |")
    print(f"\nspeed-up: first cycle {one['first'] / local['first']:.2f}×, "  # type: ignore[operator]
          f"steady {one['steady'] / local['steady']:.2f}×, "  # type: ignore[operator]
          f"new month {one['month'] / local['month']:.2f}×; largest worker's peak RSS after "  # type: ignore[operator]
          "the first cycle: "
          f"{max(local['workers']) / one['rss']:.0%} of one process's")  # type: ignore[arg-type, operator]
    print(f"reads: one process {one['reads']}; workers {local['reads']}")
    print(f"first page read after the first cycle (one series' page; distributed: made "
          f"by the worker of its partition): one process {one['page']:.2f} s "
          f"[{one['page_cpu']:.2f}], {workers} local workers {local['page']:.2f} s "
          f"[{local['page_cpu']:.2f}]; then an indicator's list page ({len(LIST)} rows, "
          f"each a series' page; distributed: each partition asked once): one process "
          f"{one['list']:.2f} s [{one['list_cpu']:.2f}], {workers} local workers "
          f"{local['list']:.2f} s [{local['list_cpu']:.2f}]; pages the same: "
          f"{one['pages'] == local['pages']}")
    print("workers' RSS once started (before any task): "
          + ", ".join(f"{w:.0f}" for w in local["started"]) + " MB")  # type: ignore[attr-defined]
    print("idle between cycles, share of a core: daemon "  # the client's and scheduler's
          + ", workers ".join(f"{w:.1%}" for w in local["idle"][:2]) + ", "  # type: ignore[index]
          + ", ".join(f"{w:.1%}" for w in local["idle"][2:]))  # type: ignore[index]
    _split("first cycle", local["split"], local["merge"], one["first_cpu"])  # type: ignore[arg-type]
    _split("new month", local["month_split"], local["month_merge"], one["month_cpu"])  # type: ignore[arg-type]
    print(f"new month on the workers, seconds from the cycle's start (it returned at "
          f"{local['month']:.2f}): " + "; ".join(
              f"worker {w}: {name} {start:.2f}-{stop:.2f}"
              for name, w, start, stop in local["timeline"]))  # type: ignore[attr-defined]
    print("\nSimulated: each partition evaluated in a fresh process of its own; its "
          "memory is the process's peak RSS during the task over its RSS before.\n")
    print("| partitions | CPU s per partition (mean, max) | × 1/N of one | partition "
          "memory MB (mean, max) | × 1/N of one | write-back share of the cycle (CPU) | "
          "same answers |")
    print("|---|---|---|---|---|---|---|")
    alone: tuple[float, float] | None = None
    for n in partitions:
        sim = child("sim", folder, n)
        cpu = np.array(sim["cpu"])
        mem = np.array(sim["rss"]) - np.array(sim["base"])
        if alone is None:
            alone = (float(cpu.max()), float(mem.max()))
        share = sim["write_back"] / sim["cycle"]  # type: ignore[operator]
        print(f"| {n} | {cpu.mean():.2f}, {cpu.max():.2f} | {cpu.max() * n / alone[0]:.2f} | "
              f"{mem.mean():.0f}, {mem.max():.0f} | {mem.max() * n / alone[1]:.2f} | "
              f"{share:.1%} | {sim['answers'] == one['answers']} |")
    print(f"\nlocal cluster same answers: {local['answers'] == one['answers']}; "
          f"transitions: {len(one['answers'])}; new month: "  # type: ignore[arg-type]
          f"{local['month_answers'] == one['month_answers']}, "
          f"{len(one['month_answers'])}")  # type: ignore[arg-type]
    moved = child("key", folder, 0)
    print(f"a change of partition key: {moved['series']:,} series positioned again in "
          f"{moved['wall']:.2f} s [{moved['cpu']:.2f} CPU-s]")


if __name__ == "__main__":
    main()
