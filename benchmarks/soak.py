"""Time-compressed soak: 15 simulated days of warm-up, then 30 measured, for 100,000 series.

    .venv/bin/python benchmarks/soak.py [--series 100000] [--days 45] [--warmup 15]

The daemon's own subsystems — poller (real CSV files), SQLite store, rule service,
notifier with a webhook receiver on loopback — run on a clock that moves one simulated
day per cycle (``--cycles-per-day`` turns each). Half the series are monthly, half
weekly (the product has no daily frequency); every day a new extract arrives with each
series' period-to-date value (provisional, so a revision a day), new periods start at
week and month boundaries, and the values random-walk around alert thresholds so alerts
fire and resolve and notifications flow every day. The first extract carries the whole
evaluation window (``--window`` periods, ``rules.history``) of every series, as a daemon
that has run for a while holds, so the data each evaluation reads stays the same size
over the month and what grows is what the daemon keeps (``--history`` starts shorter).

After each simulated day it samples the resident memory (VmRSS) and prints one line.
At the end it prints the growth after warm-up: the highest RSS of the days after
``--warmup`` against the RSS at the end of the warm-up (target: at most 5%,
``--target``), and the same for Python's own heap (``sys.getallocatedblocks()`` after
the daemon's full collection, ``memory.collect``, which a simulated day is long enough
for; 0 under ``PYTHONMALLOC=malloc``, where Python's objects come from glibc) and
for pymalloc's 1 MiB arenas, with their highwater mark. The warm-up is 15 days because
that is how long the allocator takes to settle: the first day's poll and cycle (a whole
evaluation window of every series) set the highwater mark, the arenas freed after it are
taken back, a few a day, as long-lived alert state lands among each cycle's short-lived
objects, and by about day 15 the count is within a few arenas of where it stays
(docs/reliability.md, "Memory over a month", shows both warm-ups).
``--no-trim`` runs without the ``malloc_trim`` the daemon does after every evaluation,
to see what it is worth. ``--probe``, ``--tracemalloc`` and ``--census`` show where
the resident memory is (docs/reliability.md, "Memory over a month").
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import os
import random
import sys
import tempfile
import threading
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry

from monitor import logs, memory
from monitor.clock import FixedClock
from monitor.model import Frequency
from monitor.notify.notifier import Notifier
from monitor.rules.engine import Evaluation
from monitor.rules.service import RuleService
from monitor.settings import load
from monitor.sources.poller import Poller
from monitor.store import open_store
from monitor.store.alerts import Saved

START = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)  # a Monday
INDICATORS = 5  # per frequency
REGIONS = 20
THRESHOLD = 110.0  # alerts fire above it; values start around 100 and random-walk

RULES = """
indicators:
{indicators}
groups:
  - name: soak
    rules:
{rules}
"""


def rule_file(freqs: dict[str, str]) -> str:
    indicators = "\n".join(f"  - {{id: {i}, name: {i}, frequency: {f}, aggregation: last, "
                           f"window: 1, direction: down}}" for i, f in freqs.items())
    rules = "\n".join(f"      - {{alert: {i.title().replace('_', '')}High, indicator: {i}, "
                      f"when: {{level: {{above: {THRESHOLD}}}}}}}" for i in freqs)
    return RULES.format(indicators=indicators, rules=rules)


def sqlite_mb() -> float:
    """Return the memory SQLite's own allocator holds (page caches, schemas) in MiB."""
    import _sqlite3
    import ctypes

    used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    used.restype = ctypes.c_int64
    return float(used()) / 2**20


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33+), summed over every malloc arena."""

    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo2() -> Any:
    name = ctypes.util.find_library("c")
    try:
        function = ctypes.CDLL(name).mallinfo2 if name else None
    except AttributeError:  # not glibc, or glibc older than 2.33
        return None
    if function is not None:
        function.restype = MallInfo2
    return function


MALLINFO2 = _mallinfo2()


def probe(store: Any) -> str:
    """Return one line that splits the resident size: anonymous, file-backed and shared
    pages (``/proc/self/status``); glibc's heap in use, freed but held, and in
    mmap()ed chunks (``mallinfo2``); and pymalloc's arenas in use (1 MiB each in
    Python 3.11, from ``sys._debugmallocstats``)."""
    status = dict(line.split(":", 1) for line in
                  Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kib = {k: int(status[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile", "RssShmem")}
    parts = [f"anon {kib['RssAnon']:.1f}", f"file {kib['RssFile']:.1f}",
             f"shmem {kib['RssShmem']:.1f}"]
    if MALLINFO2 is not None:
        info = MALLINFO2()
        parts += [f"malloc in use {info.uordblks / 2**20:.1f}",
                  f"free held {info.fordblks / 2**20:.1f}",
                  f"mmapped {info.hblkhd / 2**20:.1f}"]
    current, highwater = pymalloc_arenas()
    parts.append(f"pymalloc arenas {current} (highwater {highwater})")
    parts.append(f"journal ids {store.observations.journal_series():,}")
    if tracemalloc.is_tracing():
        numpy_bytes = sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)]).statistics("filename"))
        parts.append(f"numpy traced {numpy_bytes / 2**20:.1f}")
    return "MiB: " + ", ".join(parts)


def pymalloc_arenas() -> tuple[int, int]:
    """Return the pymalloc arenas allocated now and the most ever allocated at once (the
    highwater mark); (0, 0) under ``PYTHONMALLOC=malloc``. ``sys._debugmallocstats``
    writes its report to the C stderr, so it is read back from a temporary file."""
    with tempfile.TemporaryFile() as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        counts = {line.split("=")[0].strip("# ").strip(): int(line.split("=")[1].replace(",", ""))
                  for line in out.read().decode().splitlines()
                  if line.startswith("# arenas ") and "=" in line}
    return counts.get("arenas allocated current", 0), counts.get("arenas highwater mark", 0)


def census(sparse: int = 256) -> str:
    """Return which kinds of object live in the sparsely used MiB regions of the heap.

    The objects the cycle collector tracks (containers and instances; not str or int),
    of up to 512 bytes (pymalloc's), are grouped by the MiB of address space they are
    in (``id() >> 20``, about one pymalloc arena); a region holding fewer than
    ``sparse`` of them is nearly empty, and what it holds keeps it resident."""
    regions: dict[int, list[str]] = {}
    for obj in tracked():
        if sys.getsizeof(obj) <= 512:
            regions.setdefault(id(obj) >> 20, []).append(type(obj).__qualname__)
    thin = [kinds for kinds in regions.values() if len(kinds) < sparse]
    kinds: dict[str, int] = {}
    for names in thin:
        for name in names:
            kinds[name] = kinds.get(name, 0) + 1
    top = ", ".join(f"{name} {count:,}" for name, count in
                    sorted(kinds.items(), key=lambda kv: -kv[1])[:12])
    return (f"{len(regions)} MiB regions hold tracked objects; {len(thin)} hold fewer than "
            f"{sparse} ({sum(map(len, thin)):,} objects): {top}")


def tracked() -> list[object]:
    """Every object the collector tracks, after the daemon's full pass: the frozen ones
    too (``monitor/memory.py`` freezes what each cycle leaves; ``gc.get_objects`` alone
    would not list them)."""
    memory.collect()
    gc.unfreeze()
    try:
        return gc.get_objects()
    finally:
        gc.freeze()


def object_kinds() -> dict[str, int]:
    """Return how many objects of each type the cycle collector tracks (containers and
    instances, not str or int), after a collection."""
    counts: dict[str, int] = {}
    for obj in tracked():
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        counts[name] = counts.get(name, 0) + 1
    return counts


def rss_mb() -> float:
    """Return the resident set size of this process in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Sink:
    """A webhook receiver that counts and discards, like a busy chat service."""

    def __init__(self) -> None:
        sink = self
        self.requests = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink.lock:
                    sink.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


class Feed:
    """The series and their random walks; writes each day's extract as CSV."""

    def __init__(self, series: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        per = max(1, series // (2 * INDICATORS))
        self.areas = [f"a{n:05d}" for n in range(per)]
        self.freqs = {f"monthly_{k}": "monthly" for k in range(INDICATORS)}
        self.freqs.update({f"weekly_{k}": "weekly" for k in range(INDICATORS)})
        self.level = {name: self.rng.normal(100.0, 6.7, per) for name in self.freqs}
        self.series = per * len(self.freqs)

    def step(self) -> None:
        """One day: each value reverts towards 100 and takes a random step, so about one
        series in fourteen is above the threshold on any day, a different few each day."""
        for values in self.level.values():
            values += 0.1 * (100.0 - values) + self.rng.normal(0.0, 3.0, values.shape)

    def extract(self, day: datetime, freq: str, history: int = 0) -> str:
        """Return the CSV of ``day`` for the ``freq`` indicators: every series' current
        period-to-date value (and the ``history`` periods before it, final)."""
        lines = ["indicator,area,region,period,value,provisional"]
        for name, kind in self.freqs.items():
            if kind != freq:
                continue
            frequency = Frequency(freq)
            current = frequency.ordinal(day.date())
            values = self.level[name]
            for back in range(history, -1, -1):
                label = frequency.label(current - back)
                provisional = "true" if back == 0 else "false"
                shift = 0.0 if back == 0 else float(back)
                lines.extend(f"{name},{area},r{i % REGIONS:02d},{label},{v - shift:.1f},"
                             f"{provisional}" for i, (area, v) in
                             enumerate(zip(self.areas, values.tolist(), strict=True)))
        return "\n".join(lines) + "\n"


def config(folder: Path, sink: Sink, history: int) -> str:
    return f"""
[store]
url = "sqlite:///{folder / 'soak.db'}"
[rules]
paths = ["{folder / 'soak.yaml'}"]
history = {history}
watch = false
[notify]
[notify.route]
receiver = "chat"
group_by = ["alertname", "region"]
group_wait = "0s"
group_interval = "1h"
repeat_interval = "1000h"
[[notify.receivers]]
name = "chat"
[[notify.receivers.webhook]]
url = "{sink.url}"
max_alerts = 50
[[sources]]
name = "monthly-extract"
kind = "csv"
path = "{folder / 'monthly.csv'}"
indicator_column = "indicator"
labels = {{area = "area", region = "region"}}
provisional_column = "provisional"
interval = "1d"
[[sources]]
name = "weekly-extract"
kind = "csv"
path = "{folder / 'weekly.csv'}"
frequency = "weekly"
indicator_column = "indicator"
labels = {{area = "area", region = "region"}}
provisional_column = "provisional"
interval = "1d"
"""


def trim(_result: Evaluation, _saved: Saved) -> None:
    memory.trim()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=45,
                        help="simulated days in all, warm-up included")
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--cycles-per-day", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--window", type=int, default=12,
                        help="periods each evaluation reads (rules.history, at least 12)")
    parser.add_argument("--history", type=int, default=None,
                        help="final periods in the first extract, before the current one "
                             "(default: the window's, so the data each evaluation holds "
                             "stays the same size and growth is what the daemon keeps)")
    parser.add_argument("--no-trim", action="store_true",
                        help="leave freed heap pages to glibc (no malloc_trim after each "
                             "evaluation), to compare with the daemon's default")
    parser.add_argument("--probe", action="store_true",
                        help="after each day, also print where the resident memory is: "
                             "anonymous/file/shared pages, glibc heap in use/free "
                             "held/mmapped, pymalloc arenas")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="trace Python and numpy allocations (slow) and print the "
                             "largest growth between the end of warm-up and the last day, "
                             "grouped by traceback of FRAMES frames")
    parser.add_argument("--census", action="store_true",
                        help="at the end, print the kinds of object in nearly empty MiB "
                             "regions of the heap (what pins pymalloc's arenas)")
    parser.add_argument("--types", action="store_true",
                        help="count the objects the cycle collector tracks by type at the "
                             "end of warm-up and on the last day; print the kinds that grew")
    parser.add_argument("--target", type=float, default=5.0,
                        help="largest growth after warm-up, in percent, that passes")
    args = parser.parse_args()
    if args.history is None:
        args.history = args.window - 1
    logs.setup("warning")
    if args.tracemalloc:
        tracemalloc.start(args.tracemalloc)
    snapshots: dict[int, tracemalloc.Snapshot] = {}
    kinds: dict[int, dict[str, int]] = {}

    with tempfile.TemporaryDirectory(prefix="monitor-soak-") as name:
        folder = Path(name)
        feed = Feed(args.series, args.seed)
        (folder / "soak.yaml").write_text(rule_file(feed.freqs))
        sink = Sink()
        (folder / "config.toml").write_text(config(folder, sink, args.window))
        settings = load(folder / "config.toml", environ={})
        clock = FixedClock(START)
        registry = CollectorRegistry()
        store = open_store(settings.store.url.get_secret_value())
        poller = Poller(store, settings.sources, clock, registry)
        rules = RuleService(store, settings.rules.paths, clock, registry,
                            history=settings.rules.history, sources=lambda: settings.sources,
                            on_evaluated=None if args.no_trim else trim)  # as App does
        rules.load()
        notifier = Notifier(store, settings.notify, clock, registry, instance="soak",
                            rng=random.Random(args.seed))
        def deliver(history: int = 0) -> None:
            for freq in ("monthly", "weekly"):
                (folder / f"{freq}.csv").write_text(feed.extract(clock.now(), freq, history))

        deliver(history=args.history)
        print(f"soak: {feed.series:,} series ({INDICATORS} monthly and {INDICATORS} weekly "
              f"indicators), {args.days} simulated days, warm-up {args.warmup} days, "
              f"seed {args.seed}, window {args.window} periods, {args.history + 1} in the first "
              f"extract, malloc_trim {'off' if args.no_trim else 'on'}, "
              f"PYTHONMALLOC={os.environ.get('PYTHONMALLOC', '(unset: pymalloc)')}")
        print(f"{'day':>4} {'rss MiB':>8} {'sqlite':>7} {'blocks':>10} {'polled':>8} "
              f"{'firing':>7} "
              f"{'records':>8} {'changes':>8} {'messages':>9} {'seconds':>8}")
        samples: list[float] = []
        cache: list[float] = []
        blocks: list[int] = []
        arenas: list[tuple[int, int]] = []
        started = time.perf_counter()
        for day in range(args.days + 1):
            tick = time.perf_counter()
            changes = 0
            rows = 0
            for cycle in range(args.cycles_per_day):
                if day or cycle:
                    clock.advance(timedelta(days=1) / args.cycles_per_day)
                    feed.step()
                    deliver()
                rows += sum(r.rows for r in poller.poll_all())
                result = rules.evaluate()
                changes += len(result.transitions) if result is not None else 0
                notifier.process_transitions()
                notifier.dispatch()
            firing = sum(r.state.value == "firing" for r in rules.records.values())
            rss = rss_mb()
            samples.append(rss)
            cache.append(sqlite_mb())
            # The daemon's own full pass (hourly; a simulated day is longer), which also
            # frees the garbage in cycles that the cycles' freezes kept.
            memory.collect()
            blocks.append(sys.getallocatedblocks())  # Python's own heap, in objects
            arenas.append(pymalloc_arenas())
            print(f"{day:>4} {rss:>8.1f} {cache[-1]:>7.1f} {blocks[-1]:>10,} {rows:>8,} "
                  f"{firing:>7,} "
                  f"{len(rules.records):>8,} "
                  f"{changes:>8,} {sink.requests:>9,} {time.perf_counter() - tick:>8.1f}",
                  flush=True)
            if args.probe:
                print(f"     {probe(store)}", flush=True)
            if args.tracemalloc and day in (args.warmup, args.days):
                snapshots[day] = tracemalloc.take_snapshot()
            if args.types and day in (args.warmup, args.days):
                kinds[day] = object_kinds()
        memory.collect()
        if args.census:
            print(f"census: {census()}", flush=True)
        notifier.stop(2.0)
        poller.close()
        store.close()
        base = samples[args.warmup]
        after = samples[args.warmup + 1:]
        peak = max(after) if after else base
        growth = (peak - base) / base * 100
        print(f"\nresident memory: {samples[0]:.0f} MiB after the first day, {base:.0f} MiB "
              f"at the end of warm-up (day {args.warmup}), at most {peak:.0f} MiB after it, "
              f"{samples[-1]:.0f} MiB at the end")
        block_base = blocks[args.warmup]
        block_peak = max(blocks[args.warmup + 1:], default=block_base)
        print(f"growth after warm-up: {growth:+.1f}% (target <= {args.target:g}%): "
              f"{'OK' if growth <= args.target else 'OVER TARGET'}; SQLite's own memory "
              f"{cache[args.warmup]:.1f} -> {cache[-1]:.1f} MiB")
        print(f"Python heap (sys.getallocatedblocks after the full pass): {block_base:,} blocks "
              f"at the end of warm-up, at most {block_peak:,} after it "
              f"({(block_peak - block_base) / block_base * 100:+.1f}%)")
        if arenas[-1][1]:
            settled = max(a for a, _ in arenas[args.warmup:])
            print(f"pymalloc arenas (1 MiB each): {arenas[0][0]} after the first day, whose "
                  f"poll and cycle had {arenas[0][1]} at once (the highwater mark); "
                  f"{arenas[args.warmup][0]} at the end of warm-up, at most {settled} after it, "
                  f"{arenas[-1][0]} at the end (highwater {arenas[-1][1]})")
        if len(kinds) == 2:
            print(f"\nobjects by type, day {args.warmup} -> day {args.days}, largest growth:")
            grown = {k: n - kinds[args.warmup].get(k, 0) for k, n in kinds[args.days].items()}
            for name, n in sorted(grown.items(), key=lambda kv: -kv[1])[:12]:
                print(f"  {name:<40} {n:+,} (now {kinds[args.days][name]:,})")
        if len(snapshots) == 2:
            print(f"\ntracemalloc, day {args.warmup} -> day {args.days}, largest growth:")
            diff = snapshots[args.days].compare_to(snapshots[args.warmup], "traceback")
            for stat in diff[:15]:
                print(f"  {stat.size_diff / 2**20:+.2f} MiB ({stat.count_diff:+,} blocks), "
                      f"now {stat.size / 2**20:.2f} MiB")
                for line in stat.traceback.format()[-2 * args.tracemalloc:]:
                    print(f"      {line}")
        print(f"{sink.requests:,} webhook messages delivered; "
              f"{time.perf_counter() - started:.0f} s in all")
    return 0 if growth <= args.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
