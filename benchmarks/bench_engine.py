"""Rule evaluation at scale: N monthly series x 36 months x ten KPI rules.

Run: .venv/bin/python benchmarks/bench_engine.py [--sizes 10000 100000] [--million]
     [--profile]

The rules are issue 15's: level against a per-series target, rolling year +5% (here
+2%), half year +10% on last year, same month last year +20%, 12-month slope, forecast,
SPC, half-year mean below 90% of target, volatility (a month's change larger than
chance) and a composite joined on ``area`` — about 2.4 alerts firing per series.

Prints, per size, the first cycle (every alert new: ids, labels, texts, records,
transitions), a steady cycle on the same data (what the daemon does between polls) and
the cycle after one new month for every series, each with the snapshot the daemon
publishes, and the process's peak RSS. The engine's share of issue 15's targets: well
under 3 s first and 0.5 s steady at 100,000 series.
"""

# ruff: noqa: E501  (the embedded rule file reads best one rule per line)

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.alerts.state import AlertRecord
from monitor.model import AlertState, month
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.data import Block
from monitor.rules.engine import Dataset, Evaluation, month_end
from monitor.rules.loader import load_rules

RULES = """
indicators:
  - {id: burglary, name: Burglary, direction: down, targets: {"2016/17": {kind: change_pct, value: -5}}}
  - {id: burglary_target, name: Burglary target, direction: down}
  - {id: robbery, name: Robbery, direction: down}
  - id: burglary_gap
    name: Burglary above its target
    direction: down
    window: 1
    derived: {difference: [burglary, burglary_target]}
  - id: burglary_attainment
    name: Burglary against its target
    unit: percent
    direction: down
    window: 6
    derived: {ratio: {numerator: burglary, denominator: burglary_target}}
  - id: acquisitive
    name: Acquisitive crime
    direction: down
    derived: {sum: [burglary, robbery], on: [area]}
groups:
  - name: bench
    rules:
      - {alert: BurglaryAboveTarget, indicator: burglary_gap, when: {level: {above: 0}}, annotations: {summary: "{{ labels.area }} is {{ value | number }} above its target"}}
      - {alert: BurglaryRollingYearUp, indicator: burglary, when: {change: {window: 12, above: 2}}, annotations: {summary: "Burglary in {{ labels.area }} is up over the rolling year"}}
      - {alert: BurglaryHalfYearUp, indicator: burglary, when: {change: {window: 6, compare: last_year, above: 10}}}
      - {alert: BurglarySameMonthLastYear, indicator: burglary, when: {change: {window: 1, compare: last_year, above: 20}}}
      - {alert: BurglarySlope, indicator: burglary, when: {trend: {test: slope, periods: 12, direction: rising, min_slope: 0.2}}}
      - {alert: BurglaryForecast, indicator: burglary, when: {forecast: {misses_target: true}}}
      - {alert: BurglarySpc, indicator: burglary, when: {spc: {signal: concern}}}
      - {alert: BurglaryHalfYearBelowTarget, indicator: burglary_attainment, when: {level: {below: 90}}}
      - {alert: BurglaryVolatile, indicator: burglary, when: {significance: {test: poisson, window: 1, alpha: 0.2, direction: any}}}
      - alert: BurglaryUpWhileAcquisitiveDown
        indicator: burglary
        on: [area]
        when:
          all:
            - change: {window: 12, above: 2}
            - change: {indicator: acquisitive, window: 12, below: 0}
"""


def dataset(n: int, months: int, end: int, rng: np.random.Generator) -> Dataset:
    """Burglary and robbery for ``n`` areas over ``months`` months to ``end``, and a
    per-area burglary target near each area's level (so about a third of them miss it)."""
    periods = np.arange(end - months + 1, end + 1)
    labels = [{"area": f"a{i}"} for i in range(n)]
    rows = np.repeat(np.arange(n), months)
    blocks = {}

    def block(values: np.ndarray) -> Block:
        return Block(labels, rows, np.tile(periods, n), values.ravel(),
                     np.full(n * months, np.nan), np.zeros(n * months, dtype=bool),
                     np.zeros(n * months, dtype=np.int64))

    for name, level in (("burglary", 100.0), ("robbery", 60.0)):
        base = rng.gamma(4.0, level / 4.0, size=(n, 1))
        season = 1 + 0.1 * np.sin(2 * np.pi * (periods % 12) / 12)
        trend = 1 + rng.normal(0, 0.01, size=(n, 1)) * np.arange(months)
        values = rng.poisson(base * season * np.clip(trend, 0.2, None)).astype(np.float64)
        blocks[name] = block(values)
        if name == "burglary":
            target = np.round(values[:, -13:-1].mean(axis=1, keepdims=True)
                              * rng.uniform(0.85, 1.15, size=(n, 1)))
            blocks["burglary_target"] = block(np.repeat(target, months, axis=1))
    return Dataset(blocks)


def timed(evaluator: Evaluator, data: Dataset, records: Mapping[str, AlertRecord],
          period: int, profile: bool) -> tuple[float, Evaluation]:
    at = month_end(period)
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = evaluator.run(data, records, Cycle(at=at, now=at))
    evaluator.publish(result)  # the snapshot pages, API and metrics read, as the daemon does
    elapsed = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return elapsed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="add 1,000,000 series")
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile summary of each cycle")
    args = parser.parse_args()
    sizes = [*args.sizes, *([1_000_000] if args.million else [])]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(RULES)
        ruleset = load_rules([path])
    end = month("2016-12")
    rng = np.random.default_rng(7)
    warm = Evaluator(ruleset, history=args.months)  # imports, template compilation
    warm.run(dataset(100, args.months, end, rng), {}, Cycle(at=month_end(end),
                                                              now=month_end(end)))
    print(f"{'series':>10} {'rules':>6} {'first s':>8} {'firing':>9} {'steady s':>9} "
          f"{'new month s':>12} {'changed':>8} {'peak RSS MB':>12}")
    for n in sizes:
        # One month more than the grid: the first cycles see up to end - 1, the last the
        # new month for every series.
        data = dataset(n, args.months + 1, end, rng)
        evaluator = Evaluator(ruleset, history=args.months)
        first, result = timed(evaluator, data, {}, end - 1, args.profile)
        firing = sum(1 for r in result.records.values() if r.state is AlertState.FIRING)
        steady, result = timed(evaluator, data, result.records, end - 1, args.profile)
        fresh, result = timed(evaluator, data, result.records, end, args.profile)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{n:>10,} {len(ruleset.rules):>6} {first:>8.2f} {firing:>9,} {steady:>9.2f} "
              f"{fresh:>12.2f} {len(result.changed):>8,} {rss:>12,.0f}", flush=True)
        del data, result, evaluator
    print(f"(measured {datetime.now(UTC):%Y-%m-%d}, {args.months} months per series; "
          "peak RSS is the process's so far)")


if __name__ == "__main__":
    main()
