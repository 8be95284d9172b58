"""Rule evaluation at scale: N monthly series x 36 months x 10 rules, one full cycle.

Run: .venv/bin/python benchmarks/bench_engine.py [--sizes 10000 100000 1000000]

Prints the time of one evaluation cycle (matrices, every rule, state machine for the
matching rows) at each size and the peak RSS. Target: <= 2 s and <= 2 GB at 100,000.
"""

# ruff: noqa: E501  (the embedded rule file reads best one rule per line)

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.model import month
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.data import Block
from monitor.rules.engine import Dataset, month_end
from monitor.rules.loader import load_rules

RULES = """
indicators:
  - {id: burglary, name: Burglary, direction: down, targets: {"2016/17": {kind: change_pct, value: 15}}}
  - {id: robbery, name: Robbery, direction: down}
  - id: acquisitive
    name: Acquisitive crime
    direction: down
    derived: {sum: [burglary, robbery], on: [area]}
groups:
  - name: bench
    rules:
      - {alert: BurglaryAboveLevel, indicator: burglary, when: {level: {above: 2400}}}
      - {alert: BurglaryWorseThanTarget, indicator: burglary, when: {level: {worse_than_target: true}}}
      - {alert: BurglaryRollingYearUp, indicator: burglary, when: {change: {window: 12, above: 20}}}
      - {alert: BurglarySameMonthLastYear, indicator: burglary, when: {change: {window: 1, compare: last_year, above: 45}}}
      - {alert: BurglaryTrend, indicator: burglary, when: {trend: {test: mann_kendall, periods: 36, direction: rising, alpha: 0.001}}}
      - {alert: BurglarySlope, indicator: burglary, when: {trend: {test: slope, periods: 24, direction: rising, min_slope: 1}}}
      - {alert: BurglaryRising6, indicator: burglary, when: {trend: {test: consecutive, run: 6, direction: rising}}}
      - {alert: BurglarySpc, indicator: burglary, when: {spc: {signal: concern}}}
      - {alert: BurglaryPoisson, indicator: burglary, when: {significance: {test: poisson, window: 12, alpha: 0.0001}}}
      - alert: BurglaryUpWhileAcquisitiveDown
        indicator: burglary
        on: [area]
        when:
          all:
            - change: {window: 12, above: 10}
            - change: {indicator: acquisitive, window: 12, below: -2}
"""


def dataset(n: int, months: int, end: int, rng: np.random.Generator) -> Dataset:
    periods = np.arange(end - months + 1, end + 1)
    blocks = {}
    labels = [{"area": f"a{i}"} for i in range(n)]
    for name, level in (("burglary", 100.0), ("robbery", 60.0)):
        base = rng.gamma(4.0, level / 4.0, size=(n, 1))
        season = 1 + 0.1 * np.sin(2 * np.pi * (periods % 12) / 12)
        trend = 1 + rng.normal(0, 0.002, size=(n, 1)) * np.arange(months)
        values = rng.poisson(base * season * trend).astype(np.float64)
        rows = np.repeat(np.arange(n), months)
        blocks[name] = Block(labels, rows, np.tile(periods, n), values.ravel(),
                             np.full(n * months, np.nan), np.zeros(n * months, dtype=bool),
                             np.zeros(n * months, dtype=np.int64))
    return Dataset(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(RULES)
        ruleset = load_rules([path])
    end = month("2016-12")
    rng = np.random.default_rng(7)
    print(f"{'series':>10} {'rules':>6} {'cycle s':>9} {'firing':>8} {'steady s':>9} "
          f"{'peak RSS MB':>12}")
    for n in args.sizes:
        data = dataset(n, args.months, end, rng)
        evaluator = Evaluator(ruleset, history=args.months)
        at = month_end(end)
        cycle = Cycle(at=at, now=at)
        evaluator.run(data, {}, cycle)  # warm-up: imports, first allocations
        started = time.perf_counter()
        result = evaluator.run(data, {}, cycle)
        elapsed = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        firing = sum(1 for r in result.records.values() if r.state.value == "firing")
        # The next cycle on the same data: what the daemon does every minute in between.
        started = time.perf_counter()
        evaluator.run(data, result.records, cycle)
        steady = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n:>10,} {len(ruleset.rules):>6} {elapsed:>9.2f} {firing:>8,} {steady:>9.2f} "
              f"{rss:>12,.0f}")
        del data, result
    print(f"(measured {datetime.now(UTC):%Y-%m-%d}, {args.months} months per series)")


if __name__ == "__main__":
    main()
