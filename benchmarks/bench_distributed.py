"""The series space partitioned and evaluated on Dask's distributed engine (issue #16).

Prints one table:

- one cycle in one process (``Evaluator.run`` on the whole dataset) against the same
  cycle on a 2-worker ``LocalCluster`` (``[engine] scheduler = "local"``): seconds per
  cycle (first and steady), the speed-up, and each process's peak RSS;
- simulated scale: 1/2/4/8 partitions evaluated one after another in one fresh process,
  each partition's CPU-seconds and the process's peak RSS (the largest partition's,
  plus the interpreter), and the cross-partition write-back's share of the cycle;
- same answers: the transitions of every run against the one-process run.

Each measurement runs in a fresh process (peak RSS is per process). The store is SQLite,
filled once: ``--series`` series (two indicators × areas) × 36 months, a composite rule
joined on ``area``, a change rule, and a rule against the London total (a total over
every area: the written-back cross-partition input).

    .venv/bin/python benchmarks/bench_distributed.py                # 100k series
    .venv/bin/python benchmarks/bench_distributed.py --million      # 1M (≈ 10 GB RAM)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
MONTHS = 36


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    from monitor.rules.inputs import read_dataset

    store, ruleset, evaluator, cycle = _setup(folder)
    started = time.perf_counter()
    result = evaluator.run(read_dataset(store, ruleset, []), {}, cycle)
    first = time.perf_counter() - started
    started = time.perf_counter()
    evaluator.run(read_dataset(store, ruleset, []), result.records, cycle)
    steady = time.perf_counter() - started
    return {"first": first, "steady": steady, "rss": rss_mb(), "answers": _answers(result)}


def local_cluster(folder: Path, workers: int) -> dict[str, object]:
    from monitor.rules.distributed import DistributedEngine, EngineConfig

    store, ruleset, evaluator, cycle = _setup(folder)
    engine = DistributedEngine(store.url, EngineConfig("local", workers, workers))
    engine.client()  # the cluster's start-up is not a cycle
    started = time.perf_counter()
    result = engine.run(evaluator, engine.inputs(store, ruleset, []), {}, cycle)
    first = time.perf_counter() - started
    started = time.perf_counter()
    engine.run(evaluator, engine.inputs(store, ruleset, []), result.records, cycle)
    steady = time.perf_counter() - started
    peaks = engine.client().run(rss_mb)
    engine.close()
    return {"first": first, "steady": steady, "rss": rss_mb(), "workers": sorted(peaks.values()),
            "answers": _answers(result), "write_back": engine.write_back_seconds}


def simulated(folder: Path, n: int) -> dict[str, object]:
    """Partitions one after another in this process, each reading only its share."""
    from monitor.rules import distributed
    from monitor.rules.distributed import DistributedEngine, EngineConfig

    store, ruleset, evaluator, cycle = _setup(folder)
    engine = DistributedEngine(store.url, EngineConfig("in-process", n, 1))
    def forgetful(original):  # type: ignore[no-untyped-def]
        def run(*args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return original(*args, **kwargs)
            finally:
                distributed.forget()  # one partition's data at a time, as on a worker
        return run

    distributed.evaluate_partition = forgetful(distributed.evaluate_partition)
    distributed.partition_totals = forgetful(distributed.partition_totals)
    started = time.perf_counter()
    result = engine.run(evaluator, engine.inputs(store, ruleset, []), {}, cycle)
    total = time.perf_counter() - started
    return {"cpu": [p.seconds for p in engine.last], "rss": rss_mb(), "cycle": total,
            "write_back": engine.write_back_seconds, "answers": _answers(result)}


def child(mode: str, folder: Path, arg: int) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--folder", str(folder),
                          "--arg", str(arg)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1,000,000 series")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child")
    parser.add_argument("--folder")
    parser.add_argument("--arg", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        import logging

        logging.disable(logging.WARNING)
        folder = Path(args.folder)
        run = {"one": lambda: one_process(folder),
               "local": lambda: local_cluster(folder, args.arg),
               "sim": lambda: simulated(folder, args.arg)}[args.child]
        print(json.dumps(run()))
        return
    series = 1_000_000 if args.million else args.series
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        fill(folder, series)
        print(f"{series:,} series × {MONTHS} months stored in "
              f"{time.perf_counter() - started:.0f} s (SQLite)")
        one = child("one", folder, 0)
        local = child("local", folder, args.workers)
        print("\n| run | first cycle s | steady cycle s | peak RSS MB |")
        print("|---|---|---|---|")
        print(f"| one process | {one['first']:.2f} | {one['steady']:.2f} | {one['rss']:.0f} |")
        workers = ", ".join(f"{w:.0f}" for w in local["workers"])  # type: ignore[attr-defined]
        print(f"| {args.workers} local workers | {local['first']:.2f} | {local['steady']:.2f} "
              f"| daemon {local['rss']:.0f}; workers {workers} |")
        print(f"\nspeed-up (steady): {one['steady'] / local['steady']:.2f}×; "  # type: ignore[operator]
              f"largest worker's peak RSS: "
              f"{max(local['workers']) / one['rss']:.0%} of one process's")  # type: ignore[arg-type, operator]
        print("\n| partitions | CPU s per partition (mean, max) | peak RSS MB | "
              "write-back share of the cycle | same answers |")
        print("|---|---|---|---|---|")
        for n in (1, 2, 4, 8):
            sim = child("sim", folder, n)
            cpu = sim["cpu"]
            share = sim["write_back"] / sim["cycle"]  # type: ignore[operator]
            print(f"| {n} | {np.mean(cpu):.2f}, {np.max(cpu):.2f} | {sim['rss']:.0f} | "
                  f"{share:.1%} | {sim['answers'] == one['answers']} |")
        print(f"\nlocal cluster same answers: {local['answers'] == one['answers']}; "
              f"transitions: {len(one['answers'])}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
