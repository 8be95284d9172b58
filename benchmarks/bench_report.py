"""The performance pack at scale: 100 indicators x 33 areas (3,300 scorecard rows).

Run: .venv/bin/python benchmarks/bench_report.py [--indicators 100] [--areas 33]

Evaluates the month and the month before (``publish_month``, the path ``monitor report``
takes), builds the pack and writes it as HTML, PDF (WeasyPrint) and Excel (XlsxWriter);
prints the seconds of each step and the total. Target: the whole pack in <= 30 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.model import Frequency, month
from monitor.report import html, pdf, xlsx
from monitor.report.pack import build_pack
from monitor.rules.cycle import Evaluator, publish_month
from monitor.rules.data import Block
from monitor.rules.engine import Dataset
from monitor.rules.loader import load_rules


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--indicators", type=int, default=100)
    parser.add_argument("--areas", type=int, default=33)
    parser.add_argument("--months", type=int, default=48)
    parser.add_argument("--formats", nargs="+", default=["html", "pdf", "xlsx"],
                        choices=["html", "pdf", "xlsx"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(rules(args.indicators))
        ruleset = load_rules([path])
    end = month("2016-12")
    data = dataset(args.indicators, args.areas, args.months, end, np.random.default_rng(7))
    steps: list[tuple[str, float]] = []
    started = time.perf_counter()
    evaluator = Evaluator(ruleset, history=args.months)
    _, now = publish_month(evaluator, data, end)
    _, before = publish_month(evaluator, data, end - 1)
    rows, previous = now.scorecard(), before.scorecard()
    steps.append(("evaluate both months", time.perf_counter() - started))
    t = time.perf_counter()
    pack = build_pack(title="Bench", organisation="Bench", period=Frequency.MONTHLY.label(end),
                      previous_period=Frequency.MONTHLY.label(end - 1),
                      data_to=now.snapshot.data_to(), generated_at=datetime.now(UTC),
                      rows=rows, alerts=now.snapshot.alerts, previous_rows=previous)
    steps.append(("build the pack", time.perf_counter() - t))
    sizes = {}
    writers = (("html", lambda: html.render(pack).encode()), ("pdf", lambda: pdf.render(pack)),
               ("xlsx", lambda: xlsx.render(pack)))
    for name, render in writers:
        if name not in args.formats:
            continue
        t = time.perf_counter()
        sizes[name] = len(render())
        steps.append((f"write {name}", time.perf_counter() - t))
    total = time.perf_counter() - started
    print(f"{len(pack.rows):,} rows, {len(pack.exceptions):,} exceptions, "
          f"{len(pack.charts):,} chart pages; "
          + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))
    for name, seconds in steps:
        print(f"  {name:<22} {seconds:6.2f} s")
    print(f"  {'total':<22} {total:6.2f} s  (target <= 30 s)")
    print(f"(measured {datetime.now(UTC):%Y-%m-%d})")


if __name__ == "__main__":
    main()
