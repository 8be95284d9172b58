"""What each libfaketime build costs a clock read, as ``make test-future`` runs it.

Run from the repository root: ``python benchmarks/bench_faketime.py [--reads 200000]``.
Four threads each read the wall clock (``time.time()``) ``--reads`` times in a fresh
Python process, without libfaketime, under ``libfaketime.so.1`` (what the Makefile
preloads) and under ``libfaketimeMT.so.1`` (the multi-threaded build), with the
Makefile's settings (``FAKETIME=+365d``, the monotonic clock left real). Prints the
wall-clock seconds of each, best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import sys, threading, time
reads = int(sys.argv[1])
def work():
    clock = time.time
    for _ in range(reads):
        clock()
threads = [threading.Thread(target=work) for _ in range(4)]
start = time.perf_counter()
for t in threads:
    t.start()
for t in threads:
    t.join()
print(time.perf_counter() - start, time.time())
"""


def library(name: str) -> Path | None:
    found = sorted(Path("/usr/lib").glob(f"*/faketime/{name}"))
    return found[0] if found else None


def run(preload: Path | None, reads: int) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")}
    if preload is not None:
        env.update(LD_PRELOAD=str(preload), FAKETIME="+365d", FAKETIME_DONT_FAKE_MONOTONIC="1",
                   PYTHONPATH=str(REPO / "tests" / "faketime"))
    done = subprocess.run([sys.executable, "-c", CHILD, str(reads)], env=env,
                          capture_output=True, text=True, check=True)
    seconds, now = done.stdout.split()
    return float(seconds), float(now)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reads", type=int, default=200_000, help="clock reads per thread")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import time

    print(f"4 threads x {args.reads:,} wall-clock reads, best of {args.repeat}:")
    for label, lib in (("no libfaketime", None), ("libfaketime.so.1", library("libfaketime.so.1")),
                       ("libfaketimeMT.so.1", library("libfaketimeMT.so.1"))):
        if label != "no libfaketime" and lib is None:
            print(f"{label:<20} not installed (apt-get install libfaketime)")
            continue
        results = [run(lib, args.reads) for _ in range(args.repeat)]
        best = min(seconds for seconds, _ in results)
        ahead = (results[0][1] - time.time()) / 86400
        print(f"{label:<20} {best:6.2f} s   (clock {ahead:+.0f} days)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
