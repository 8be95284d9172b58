"""Where bench_daemon's process holds memory: resident size at each stage of a poll and a cycle.

    .venv/bin/python benchmarks/rss_stages.py STORE N [--ingest-only]

Runs ``bench_daemon.run`` (the daemon end to end, one store, N series, 36 months) in
this process with the stages below wrapped, a thread sampling the resident size
(``/proc/self/statm``) every 5 ms, and prints one line per stage call, nested as the
calls were: the resident size when the stage started and ended, and the highest sampled
while it ran. Top-level calls are numbered (1: the first poll, 2: the first cycle, …;
with ``--ingest-only`` 1 and 2 are the two polls). The sampler and the wrappers cost
little memory, but the figures are samples: a peak shorter than 5 ms can be missed.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_daemon

from monitor.notify import notifier
from monitor.rules import engine, inputs, service
from monitor.sources import csv, poller
from monitor.store import alerts, observations

PAGE = os.sysconf("SC_PAGE_SIZE")
# (owner, attribute, label): the stages of a poll, then of a cycle.
STAGES: tuple[tuple[Any, str, str], ...] = (
    (poller.Poller, "poll", "poll"),
    (csv.CsvKind, "fetch", "fetch"),
    (csv.CsvKind, "parse", "parse"),
    (csv, "_wide_columns", "columnar read (Arrow)"),
    (observations.ObservationStore, "ingest", "store"),
    (observations, "_prepare", "prepare"),
    (observations.ObservationStore, "_resolve_series", "resolve series"),
    (observations.ObservationStore, "_apply", "diff and write"),
    (observations.ObservationStore, "_existing", "read stored values"),
    (observations.ObservationStore, "_insert_new", "insert new rows"),
    (service.RuleService, "evaluate", "cycle"),
    (inputs.DatasetCache, "get", "read the dataset"),
    (engine.Engine, "evaluate", "engine"),
    (alerts.AlertStore, "save", "save alerts"),
    (notifier.Notifier, "process_transitions", "notifier"),
    (notifier.Notifier, "dispatch", "dispatch"),
)


class Sampler:
    """The resident size, sampled in a thread; ``peak`` since the last ``reset``."""

    def __init__(self) -> None:
        self.peak = 0.0
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def rss() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * PAGE / 2**20

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", choices=["sqlite", "postgresql"])
    parser.add_argument("n", type=int)
    parser.add_argument("--ingest-only", action="store_true")
    args = parser.parse_args()
    sampler = Sampler()
    depth = [0]
    calls = [0]
    lines: list[str] = []

    def wrap(owner: Any, attribute: str, label: str) -> None:
        function = getattr(owner, attribute)

        @functools.wraps(function)
        def staged(*a: Any, **k: Any) -> Any:
            name = label
            if depth[0] == 0:
                calls[0] += 1
                name = f"{calls[0]}: {label}"
            outer, sampler.peak = sampler.peak, 0.0
            before = sampler.rss()
            at = len(lines)
            lines.append("")
            depth[0] += 1
            try:
                return function(*a, **k)
            finally:
                depth[0] -= 1
                peak = max(sampler.peak, sampler.rss())
                lines[at] = (f"{'  ' * depth[0]}{name:<{34 - 2 * depth[0]}}{before:>8,.0f} MB"
                             f" -> {sampler.rss():>6,.0f} MB, peak {peak:>6,.0f} MB")
                sampler.peak = max(outer, peak)

        setattr(owner, attribute, staged)

    for owner, attribute, label in STAGES:
        wrap(owner, attribute, label)
    url, name = bench_daemon._postgres_database() if args.store == "postgresql" else ("", "")
    try:
        figures = bench_daemon.run(args.store, url, args.n, 36, None, args.ingest_only)
    finally:
        if name:
            bench_daemon._drop(name)
    print(f"{args.store}, {args.n:,} series: stage, resident size at its start -> end, "
          "and the highest sampled during it")
    print("\n".join(lines))
    print(f"peak RSS of the process: {figures['rss']:,.0f} MB")


if __name__ == "__main__":
    main()
