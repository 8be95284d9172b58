"""The performance pack at scale: 100 indicators x 33 areas (3,300 scorecard rows).

Run: .venv/bin/python benchmarks/bench_report.py [--indicators 100] [--areas 33]

Evaluates the month and the month before (``publish_month``, the path ``monitor report``
takes), builds the pack and writes it as HTML, PDF (WeasyPrint) and Excel (XlsxWriter)
through ``monitor.report.generate.render`` — the function ``monitor report`` and the
scheduled packs call — and prints each step's wall seconds, this process's CPU seconds
and the worker process's (the workbook is written in one while the PDF is laid out).
Target: the whole pack, all three formats from one evaluation, in <= 30 s wall.
``--each`` also times each format alone.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.memory import gc_paused
from monitor.model import Frequency, month
from monitor.report.generate import FORMATS, render
from monitor.report.pack import build_pack, previous_of
from monitor.rules.cycle import Evaluator, publish_month
from monitor.rules.data import Block
from monitor.rules.engine import Dataset
from monitor.rules.loader import load_rules

T = TypeVar("T")


def rules(indicators: int) -> str:
    lines = ["indicators:"]
    for i in range(indicators):
        lines.append(f"  - {{id: kpi{i}, name: Indicator {i} of the bench, reference: "
                     f"\"B {i}\", group: Group {i // 10}, direction: down, targets: "
                     f"{{\"2016/17\": {{kind: change_pct, value: -4}}}}}}")
    lines += ["groups:", "  - name: bench", "    rules:"]
    for i in range(0, indicators, 10):
        lines.append(f"      - {{alert: Kpi{i}Spc, indicator: kpi{i}, when: "
                     "{spc: {signal: concern}}}")
    return "\n".join(lines) + "\n"


def dataset(indicators: int, areas: int, months: int, end: int,
            rng: np.random.Generator) -> Dataset:
    periods = np.arange(end - months + 1, end + 1)
    labels = [{"area": f"Area {i}"} for i in range(areas)]
    blocks = {}
    for k in range(indicators):
        base = rng.gamma(4.0, 50.0, size=(areas, 1))
        trend = 1 + rng.normal(0, 0.004, size=(areas, 1)) * np.arange(months)
        values = rng.poisson(base * trend).astype(np.float64)
        size = areas * months
        blocks[f"kpi{k}"] = Block(labels, np.repeat(np.arange(areas), months),
                                  np.tile(periods, areas), values.ravel(),
                                  np.full(size, np.nan), np.zeros(size, dtype=bool),
                                  np.zeros(size, dtype=np.int64))
    return Dataset(blocks)


def cpu_seconds() -> tuple[float, float]:
    """User + system CPU seconds of this process and of its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--indicators", type=int, default=100)
    parser.add_argument("--areas", type=int, default=33)
    parser.add_argument("--months", type=int, default=48)
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--each", action="store_true",
                        help="also write each format alone, to see what each costs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(rules(args.indicators))
        ruleset = load_rules([path])
    end = month("2016-12")
    data = dataset(args.indicators, args.areas, args.months, end, np.random.default_rng(7))
    steps: list[tuple[str, float, float, float]] = []

    def timed(name: str, step: Callable[[], T]) -> T:
        wall, (mine, children) = time.perf_counter(), cpu_seconds()
        out = step()
        after = cpu_seconds()
        steps.append((name, time.perf_counter() - wall, after[0] - mine,
                      after[1] - children))
        return out

    started, (cpu_started, _) = time.perf_counter(), cpu_seconds()
    evaluator = Evaluator(ruleset, history=args.months)
    # The steps of generate.month_pack, one by one, as it runs them: the cyclic garbage
    # collector paused.
    with gc_paused():
        _, now = timed("evaluate the month", lambda: publish_month(evaluator, data, end))
        _, before = timed("evaluate the month before",
                          lambda: publish_month(evaluator, data, end - 1))
        rows = timed("scorecard rows", now.scorecard)
        pack = timed("build the pack", lambda: build_pack(
            title="Bench", organisation="Bench", period=Frequency.MONTHLY.label(end),
            previous_period=Frequency.MONTHLY.label(end - 1),
            data_to=now.snapshot.data_to(), generated_at=datetime.now(UTC), rows=rows,
            alerts=now.snapshot.alerts, previous=previous_of(before.snapshot.frames)))
    files = timed(f"write {', '.join(args.formats)}", lambda: render(pack, args.formats))
    total = time.perf_counter() - started
    total_cpu = cpu_seconds()
    if args.each:
        for fmt in args.formats:
            timed(f"  ({fmt} alone)", lambda fmt=fmt: render(pack, [fmt]))
    print(f"{len(pack.rows):,} rows, {len(pack.exceptions):,} exceptions, "
          f"{len(pack.charts):,} chart pages; "
          + ", ".join(f"{k} {len(v) / 1e6:.1f} MB" for k, v in files.items()))
    print(f"  {'step':<28} {'wall s':>7} {'CPU s':>7} {'worker CPU s':>13}")
    for name, wall, mine, children in steps:
        print(f"  {name:<28} {wall:7.2f} {mine:7.2f} {children:13.2f}")
    print(f"  {'total (evaluation to files)':<28} {total:7.2f} {total_cpu[0] - cpu_started:7.2f} "
          f"{total_cpu[1]:13.2f}  (target <= 30 s wall)")
    print(f"(measured {datetime.now(UTC):%Y-%m-%d}; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
