"""A steady cycle's evaluation alone: CPU seconds of ``Evaluator.run`` then ``publish``
when nothing changed, on a store the daemon benchmark kept.

``bench_daemon.py`` times a steady cycle inside the whole daemon (store, notifier,
dispatch); this prints the evaluation's share of it alone, five cycles a minute apart
after one that starts from the stored records (as a restarted daemon does), with the
garbage collector paused as the rule service runs a cycle:

    MONITOR_BENCH_KEEP=/tmp/keep100k .venv/bin/python benchmarks/bench_daemon.py \\
        --sizes 100000 --stores sqlite
    .venv/bin/python benchmarks/bench_steady.py /tmp/keep100k

Without a folder it first runs ``bench_daemon.py --sizes N --stores sqlite`` (``--series``,
10,000 by default) keeping its store in a temporary folder.

The machine's speed moves between runs: compare two checkouts by alternating them
(``PYTHONPATH=<checkout>``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.memory import gc_paused  # the checkout's, not an installed copy
from monitor.model import Frequency
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.engine import month_end
from monitor.rules.inputs import DatasetCache
from monitor.rules.loader import load_rules
from monitor.store import open_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept", nargs="?", help="the folder MONITOR_BENCH_KEEP kept")
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--series", type=int, default=10_000,
                        help="without a folder: the series of the store made first")
    args = parser.parse_args()
    if args.kept is None:
        with tempfile.TemporaryDirectory() as tmp:
            kept = Path(tmp) / "kept"
            subprocess.run([sys.executable, str(Path(__file__).with_name("bench_daemon.py")),
                            "--sizes", str(args.series), "--stores", "sqlite"], check=True,
                           env={**os.environ, "MONITOR_BENCH_KEEP": str(kept)})
            measure(kept, args.cycles)
        return
    measure(Path(args.kept), args.cycles)


def measure(kept: Path, cycles: int) -> None:
    config = tomllib.loads((kept / "config.toml").read_text())
    store = open_store(config["store"]["url"], migrate=False)
    ruleset = load_rules(config["rules"]["paths"])
    cache = DatasetCache(store)
    records = store.alerts.load()
    evaluator = Evaluator(ruleset)
    data = cache.get(ruleset, [])
    last = max(int(block.period.max()) for block in data.blocks.values())
    at = month_end(last)
    seconds = []
    with gc_paused():
        result = evaluator.run(data, records, Cycle(at=at, now=at))
        evaluator.publish(result)
        for minute in range(1, cycles + 1):
            used = time.process_time()
            result = evaluator.run(cache.get(ruleset, []), result.records,
                                   Cycle(at=at, now=at + timedelta(minutes=minute)))
            evaluator.publish(result)
            seconds.append(time.process_time() - used)
    print(f"{len(result.records):,} alert records, evaluated as of "
          f"{Frequency.MONTHLY.label(last)}; steady cycles, CPU-s of Evaluator.run and "
          "publish: " + ", ".join(f"{s:.3f}" for s in seconds))


if __name__ == "__main__":
    main()
