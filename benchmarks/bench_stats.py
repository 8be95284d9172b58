"""Time the vectorised statistics on 100,000 random Poisson series of 36 months.

Run from the repository root: ``python benchmarks/bench_stats.py [n_series]``.
Prints one line per statistic (best of three runs) and the totals; the target is
well under 1.5 s for everything on a 2-core machine. The counts are integers, so
Sen's slope takes its exact float32 path; one line shows decimal values, which
take the float64 path.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.rules import stats

N_PERIODS = 36


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Return the fastest of ``repeat`` wall-clock timings of ``fn()``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    n_series = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rng = np.random.default_rng(20080701)
    rates = rng.gamma(2.0, 40.0, size=(n_series, 1))
    x = rng.poisson(rates, size=(n_series, N_PERIODS)).astype(np.float64)
    direction = rng.choice(np.array([-1, 0, 1]), size=n_series)
    rates_x = x / 7.0

    mk, mk2, mk_bare = "mann_kendall + Sen", "mann_kendall + Sen, 2 threads", "mann_kendall, no Sen"
    cases: list[tuple[str, Callable[[], object]]] = [
        (mk, lambda: stats.mann_kendall(x)),
        (mk2, lambda: stats.mann_kendall(x, workers=2)),
        (mk_bare, lambda: stats.mann_kendall(x, with_slope=False)),
        # Non-integer values take the float64 partition path for Sen's slope.
        ("mann_kendall + Sen, decimal values", lambda: stats.mann_kendall(rates_x)),
        ("seasonal_mann_kendall + Sen", lambda: stats.seasonal_mann_kendall(x)),
        ("spc", lambda: stats.spc(x, direction=direction)),
        ("ls_slope", lambda: stats.ls_slope(x)),
        ("period_change (12 vs previous 12)", lambda: stats.period_change(x, -1, 12, 12)),
        ("rolling_sum (12)", lambda: stats.rolling_sum(x, 12)),
        ("consecutive_runs", lambda: stats.consecutive_runs(x)),
    ]
    core = [
        "seasonal_mann_kendall + Sen",
        "spc",
        "ls_slope",
        "period_change (12 vs previous 12)",
    ]
    print(f"{n_series:,} series x {N_PERIODS} periods (best of 3)")
    timings = {}
    for name, fn in cases:
        timings[name] = best_of(fn)
        print(f"  {name:<40} {timings[name] * 1000:8.1f} ms")
    rest = sum(timings[name] for name in core)
    print("MK, seasonal MK, SPC, ls_slope, period_change together:")
    for label, variant in [("1 thread", mk), ("MK on 2 threads", mk2), ("MK without Sen", mk_bare)]:
        print(f"  {label:<40} {(rest + timings[variant]) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
