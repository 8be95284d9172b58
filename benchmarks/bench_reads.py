"""The store reads a cycle starts from, alone: CPU seconds of reading every series, and
of reading and merging what a new month for every series changed.

Prints four figures on ``bench_distributed.py``'s store (two indicators × areas, 36
months; filled into ``--store DIR`` when it is not there, and a copy of it used):

- one process: ``DatasetCache.get`` reading the store whole (the daemon's first cycle);
- one partition of two, as a worker reads it in its first cycle: the partition's series
  read whole (``read_partition``);
- one process: the same cache after a new month for every series was stored through
  the same store (the daemon's own poll): what the poll changed read and merged into the
  blocks held (``read_changes``, ``merge_blocks``);
- one partition of two, as a worker reads it: what the poll changed in partition 0
  (``read_partition`` of the changed series, from the month written) merged into that
  partition's blocks.

Each figure is CPU seconds of this process with the garbage collector paused, as the
daemon and the workers run a cycle. The machine's speed moves between runs: compare two
checkouts by alternating them.

    .venv/bin/python benchmarks/bench_reads.py --store /tmp/reads100k            # 100k
    .venv/bin/python benchmarks/bench_reads.py --store /tmp/reads1m --million    # 1M
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_distributed as bench

from monitor.memory import gc_paused
from monitor.rules.inputs import DatasetCache
from monitor.store.observations import merge_blocks
from monitor.store.partitions import read_partition, set_key
from monitor.store.partkey import PartitionKey

NAMES = ["burglary", "robbery"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="a folder keeping the filled store (filled there "
                        "first when absent; default: a temporary folder)")
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1,000,000 series")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reads-") as tmp:
        measure(Path(args.store or tmp), 1_000_000 if args.million else args.series)


def measure(folder: Path, series: int) -> None:
    """Fill ``folder``'s store when it has none, then print the four figures."""
    if not (folder / "store.db").exists():
        bench.fill(folder, series)
    store, ruleset, _evaluator, _cycle = bench._setup(bench._copy(folder))
    key = PartitionKey(("area",))
    set_key(store, key)
    with gc_paused():
        started = time.process_time()
        held = read_partition(store, NAMES, key, 0, 2)
        whole = time.process_time() - started
        started = time.process_time()
        cache = DatasetCache(store)
        cache.get(ruleset, [])
        full = time.process_time() - started
        before = store.observations.version()
        bench.new_month(store)
        changed = store.observations.changed_ids(before, store.observations.version())
        assert changed is not None
        ids, first = changed
        started = time.process_time()
        # ``held`` (the labels of the series held not read again) since 2026-12-06: run on
        # an older checkout (a copy of this file there) the read goes without it.
        kept = {"held": held} if "held" in inspect.signature(read_partition).parameters \
            else {}
        fresh = read_partition(store, NAMES, key, 0, 2, series_ids=np.asarray(ids),
                               since=first, **kept)
        merged = {name: merge_blocks(held[name], fresh[name], first) for name in fresh}
        part = time.process_time() - started
        del merged, fresh, held
        started = time.process_time()
        cache.get(ruleset, [])
        month = time.process_time() - started
    assert dict(cache.reads) == {"full": 1, "changes": 1}, cache.reads
    print(f"{len(ids):,} series, 36 months, then one more for each; CPU seconds:")
    print(f"  one process, the store read whole:               {full:6.2f}")
    print(f"  partition 0 of 2, read whole:                    {whole:6.2f}")
    print(f"  one process, the new month read and merged:      {month:6.2f}")
    print(f"  partition 0 of 2, the new month read and merged: {part:6.2f}")


if __name__ == "__main__":
    main()
