"""The daemon end to end: poll → store → read → evaluate → persist → notify, at scale.

    .venv/bin/python benchmarks/bench_daemon.py [--sizes 10000 100000] [--stores sqlite postgresql]
                                                [--months 36] [--million] [--profile FILE]
                                                [--ingest-only]

The real daemon, assembled as ``monitor run`` assembles it (``App.assemble``: store
migrated, poller, rule service, notifier, rules loaded), on a movable clock and without
the scheduler, so every step is timed on its own:

- a wide CSV of N generated monthly series (half ``burglary``, half ``robbery``, one
  per ``area``; seasonal Poisson counts with a per-series level and trend) served by a
  real HTTP server on loopback and polled by a ``kind = "csv"`` source;
- ten KPI rules per indicator, like the workload of issue #15: level against the target,
  rolling year +5%, half year +10%, same month last year +20%, 12-month slope, forecast
  misses target, SPC concern, Poisson significance, Mann-Kendall trend, and a composite
  joined on ``area`` (up here while the other indicator is down there);
- notifications grouped by ``alertname`` to a real webhook receiver on loopback.

For each store and size, in a process of its own (so peak RSS is its own), it prints:

- ingest: the poll of every series (fetch, parse, store) and observations per second;
- first: the first evaluation after that poll — read the store, evaluate, persist the
  alerts and transitions, run the notifier, deliver to the webhook;
- steady: the next cycle a minute later, no new data;
- new month: the cycle after a poll that brought one new month for every series
  (its poll is the "month ingest" column);
- alerts firing after the first cycle, messages the webhook received, peak RSS;
- how many alert records the first cycle and the new month changed, and how many of
  those changed state (the rest changed only their value, texts or counters: each is
  still written and, distributed, sent to the daemon);
- ``monitor eval --at <the last month> --format json`` on the same store afterwards, as
  a user runs it (a process of its own: wall and CPU seconds, peak RSS);
- under each row, the CPU seconds (user + system) of each cycle in the process: on a
  busy machine the wall times grow with the load, the CPU seconds much less;
- and the seconds of each cycle spent in the cyclic garbage collector (its passes
  over the heap, timed by ``gc.callbacks``), with how many were full passes; then the
  full pass the daemon makes once an hour (``monitor/memory.py``), run after the three
  cycles: its seconds, and how many unreachable objects the cycles had left for it.

Under each row it also prints the peak RSS so far after the ingest, after the first
cycle and after the month's poll (the last column is the peak of the whole run).

``--million`` adds 1,000,000 series. ``MONITOR_BENCH_KEEP=DIR`` keeps the config, rules and
SQLite store of each run in DIR (the last run's), for ``monitor eval --config
DIR/config.toml`` afterwards. ``--profile FILE`` writes a cProfile of each cycle
of the largest size (first store) to ``FILE.first``, ``FILE.steady`` and ``FILE.month``
and prints the top functions of the first and new-month cycles.

``--ingest-only`` times the polls alone, as the daemon runs them (the same poller, source
and store; no rule is evaluated): the first poll of every series into an empty store
(``--sizes 200000`` is 200,000 series x 36 months = 7.2M observations), then the poll
that brings one new month for every series (every stored value diffed, one month
inserted). Beside wall seconds it prints the process's CPU seconds (user + system) of
each poll; ``--profile FILE`` then profiles the first poll. PostgreSQL runs on a database
created (and dropped) at
``MONITOR_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

# ruff: noqa: E501  (the embedded rule file reads best one rule per line)

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor import memory  # noqa: E402
from monitor.app import App  # noqa: E402
from monitor.clock import FixedClock  # noqa: E402
from monitor.model import month  # noqa: E402
from monitor.settings import load  # noqa: E402

ADMIN_URL = os.environ.get("MONITOR_BENCH_POSTGRES_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
END = "2016-12"  # the last month of the generated history
INDICATORS = ("burglary", "robbery")

RULES = """
indicators:
  - {{id: burglary, name: Burglary, direction: down, targets: {{"2016/17": {{kind: level, value: {burglary_target}}}}}}}
  - {{id: robbery, name: Robbery, direction: down, targets: {{"2016/17": {{kind: level, value: {robbery_target}}}}}}}
groups:
  - name: bench
    rules:
{rules}
"""

RULE_LINES = """      - {{alert: {X}WorseThanTarget, indicator: {x}, when: {{level: {{worse_than_target: true}}}}}}
      - {{alert: {X}RollingYearUp, indicator: {x}, when: {{change: {{window: 12, above: 5}}}}}}
      - {{alert: {X}HalfYearUp, indicator: {x}, when: {{change: {{window: 6, above: 10}}}}}}
      - {{alert: {X}SameMonthLastYear, indicator: {x}, when: {{change: {{window: 1, compare: last_year, above: 20}}}}}}
      - {{alert: {X}Slope, indicator: {x}, when: {{trend: {{test: slope, periods: 12, direction: rising, min_slope: 0.5}}}}}}
      - {{alert: {X}ForecastMiss, indicator: {x}, when: {{forecast: {{misses_target: true}}}}}}
      - {{alert: {X}Spc, indicator: {x}, when: {{spc: {{signal: concern}}}}}}
      - {{alert: {X}Significant, indicator: {x}, when: {{significance: {{test: poisson, window: 12, alpha: 0.01}}}}}}
      - {{alert: {X}Trend, indicator: {x}, when: {{trend: {{test: mann_kendall, periods: 36, direction: rising, alpha: 0.05}}}}}}
      - alert: {X}UpWhile{Y}Down
        indicator: {x}
        on: [area]
        when:
          all:
            - change: {{window: 12, above: 5}}
            - change: {{indicator: {y}, window: 12, below: 0}}
"""


# --- the workload ------------------------------------------------------------------------


def yyyymm(period: int) -> str:
    """Return a monthly ordinal as ``YYYYMM``."""
    year, index = divmod(period, 12)
    return f"{year:04d}{index + 1:02d}"


class Workload:
    """N generated series as a wide CSV table, one column per month, grown month by month."""

    def __init__(self, n: int, months: int, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.half = max(1, n // 2)
        self.first = month(END) - months + 1
        self.level = self.rng.gamma(4.0, 25.0, size=(len(INDICATORS), self.half, 1))
        self.slope = self.rng.normal(0.0, 0.004, size=(len(INDICATORS), self.half, 1))
        self.values = self._months(self.first, months)

    def _months(self, first: int, count: int) -> np.ndarray:
        periods = np.arange(first, first + count)
        season = 1 + 0.1 * np.sin(2 * np.pi * (periods % 12) / 12)
        trend = 1 + self.slope * (periods - self.first)
        return self.rng.poisson(self.level * season * trend).astype(np.int64)

    def add_month(self) -> None:
        last = self.first + self.values.shape[2]
        self.values = np.concatenate([self.values, self._months(last, 1)], axis=2)

    @property
    def last(self) -> int:
        return self.first + self.values.shape[2] - 1

    @property
    def observations(self) -> int:
        return int(self.values.size)

    def target(self, which: int) -> int:
        """The level target half the series miss: the median rolling-year sum."""
        return int(np.median(self.values[which, :, -12:].sum(axis=1)))

    def csv(self) -> bytes:
        """Return the table as CSV bytes, written 10,000 rows at a time: formatting every
        cell at once peaked at 0.4 GB at 100,000 series, in the process whose peak RSS
        the benchmark reports as the daemon's."""
        header = ["indicator", "area"] + [yyyymm(p) for p in range(self.first,
                                                                     self.last + 1)]
        out = io.BytesIO()
        out.write((",".join(header) + "\n").encode())
        for which, name in enumerate(INDICATORS):
            table = self.values[which]
            for start in range(0, self.half, 10_000):
                cells = np.char.mod("%d", table[start:start + 10_000])
                out.write("".join(f"{name},a{row},{','.join(cells[row - start])}\n"
                                  for row in range(start, min(self.half, start + 10_000))
                                  ).encode())
        return out.getvalue()

    def rules(self) -> str:
        lines = "".join(RULE_LINES.format(X=x.title(), x=x, Y=y.title(), y=y)
                        for x, y in (INDICATORS, INDICATORS[::-1]))
        return RULES.format(burglary_target=self.target(0), robbery_target=self.target(1),
                            rules=lines.rstrip("\n"))


class Server:
    """A loopback HTTP server: GET serves the current CSV; POST counts webhook messages."""

    def __init__(self) -> None:
        self.body = b""
        self.messages = 0
        self.alerts = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The reply's headers and body leave in two writes: with Nagle's algorithm the
            # second waits for the client's delayed ACK, 40 ms a message (about 0.8 s of
            # a cycle's 20 messages). Real receivers (Go's net/http, Slack's) send at once.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                body = server.body
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.messages += 1
                    server.alerts += len(payload.get("alerts", []))
                    server.alerts += int(payload.get("truncatedAlerts", 0))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def config(workdir: Path, url: str, port: int) -> str:
    return f"""
[store]
url = "{url}"
busy_timeout = "30s"

[rules]
paths = ["{workdir / 'rules'}"]
evaluation_interval = "1m"
watch = false

[notify]
poll_interval = "1s"
[notify.retry]
timeout = "60s"
lease = "120s"
[notify.route]
receiver = "hook"
group_by = ["alertname"]
group_wait = "0s"
group_interval = "1m"
repeat_interval = "1000h"
[[notify.receivers]]
name = "hook"
send_resolved = true
[[notify.receivers.webhook]]
url = "http://127.0.0.1:{port}/hook"
max_alerts = 100

[[sources]]
name = "generated"
kind = "csv"
url = "http://127.0.0.1:{port}/series.csv"
layout = "wide"
indicator_column = "indicator"
labels = {{area = "area"}}
interval = "1h"
timeout = "600s"
max_bytes = 4_000_000_000
"""


# --- one run -------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process so far: the cycle's own work, whatever
    else the machine runs (the PostgreSQL server's work is not in it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Collector:
    """The cyclic garbage collector's own seconds in this process, from ``gc.callbacks``:
    a pass it makes inside a cycle is part of that cycle's time, and one over a heap of
    millions of objects takes seconds."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.passes = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.passes[info["generation"]] += 1

    def mark(self) -> tuple[float, list[int]]:
        return self.seconds, list(self.passes)

    def since(self, mark: tuple[float, list[int]]) -> str:
        seconds, passes = mark
        full = self.passes[2] - passes[2]
        return f"{self.seconds - seconds:.2f} s ({full} full)"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def server_cpu_seconds(url: str) -> float | None:
    """Return the CPU seconds the PostgreSQL server processes serving the database at
    ``url`` have used so far (from /proc; the server runs on this machine), or None
    when they cannot be read. Only backends alive at both readings count."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            pids = [int(r[0]) for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall()]
    except psycopg.Error:
        return None
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _less(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def run(kind: str, url: str, n: int, months: int, profile: str | None,
        ingest_only: bool = False) -> dict[str, Any]:
    """Run the daemon on ``n`` series at ``url``; return the figures."""
    workload = Workload(n, months)
    server = Server()
    server.body = workload.csv()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if kind == "sqlite":
            url = f"sqlite:///{workdir / 'monitor.db'}"
        (workdir / "rules").mkdir()
        (workdir / "rules" / "bench.yaml").write_text(workload.rules())
        path = workdir / "config.toml"
        path.write_text(config(workdir, url, server.port))
        start = datetime.strptime(yyyymm(workload.last + 1) + "05", "%Y%m%d").replace(
            hour=6, tzinfo=UTC)
        clock = FixedClock(start)
        app = App(load(path, environ={}), path, clock=clock)
        app.assemble()
        assert app.poller is not None and app.rules is not None and app.notifier is not None
        poller, rules, notifier = app.poller, app.rules, app.notifier
        # What each cycle changed, as the rule service hands it on (its ``last`` keeps
        # the records, not the cycle's changes): how many alert records, and how many of
        # them changed state (made a transition).
        changed: list[tuple[int, int]] = []
        handed = rules.on_evaluated

        def counting(result: Any, saved: Any) -> None:
            changed.append((len(result.changed), len({t.alert_id for t in result.transitions})))
            if handed is not None:
                handed(result, saved)

        rules.on_evaluated = counting
        figures: dict[str, Any] = {"store": kind, "series": n,
                                   "observations": workload.observations}

        def server_cpu(at: str) -> float | None:
            return server_cpu_seconds(at) if kind == "postgresql" else None

        def poll() -> float:
            started = time.perf_counter()
            results = [poller.poll(name) for name in poller.names]
            elapsed = time.perf_counter() - started
            for result in results:
                if result.error:
                    raise SystemExit(f"the poll failed: {result.error}")
            return elapsed

        def cycle(profiler: cProfile.Profile | None = None) -> float:
            used, collected = cpu_seconds(), collector.mark()
            started = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            rules.evaluate()
            notifier.process_transitions()
            notifier.dispatch()
            if profiler is not None:
                profiler.disable()
            cpu.append(cpu_seconds() - used)
            gcs.append(collector.since(collected))
            return time.perf_counter() - started

        cpu: list[float] = []
        gcs: list[str] = []
        collector = Collector()
        try:
            if ingest_only:
                profiler = cProfile.Profile() if profile else None
                app.store.observations.count()  # opens the pool's connection first
                cpu0, db_cpu = cpu_seconds(), server_cpu(url)
                if profiler is not None:
                    profiler.enable()
                figures["ingest"] = poll()
                if profiler is not None:
                    profiler.disable()
                figures["ingest_cpu"] = cpu_seconds() - cpu0
                figures["ingest_db_cpu"] = _less(server_cpu(url), db_cpu)
                figures["stored"] = app.store.observations.count()
                workload.add_month()
                server.body = workload.csv()
                clock.advance(timedelta(days=31))
                cpu0, db_cpu = cpu_seconds(), server_cpu(url)
                figures["month_ingest"] = poll()
                figures["month_cpu"] = cpu_seconds() - cpu0
                figures["month_db_cpu"] = _less(server_cpu(url), db_cpu)
                figures["month_observations"] = workload.observations
                figures["rss"] = peak_rss_mb()
                if profiler is not None and profile:
                    profiler.dump_stats(profile)
                return figures
            figures["ingest"] = poll()
            figures["rss_ingest"] = peak_rss_mb()
            profilers = {name: cProfile.Profile() for name in ("first", "steady", "month")} \
                if profile else {}
            figures["first"] = cycle(profilers.get("first"))
            figures["rss_first"] = peak_rss_mb()
            last = rules.last
            figures["firing"] = sum(1 for r in last.records.values()
                                    if r.state.value == "firing") if last else 0
            figures["changed_first"] = changed[-1] if changed else (0, 0)
            clock.advance(timedelta(minutes=1))
            figures["steady"] = cycle(profilers.get("steady"))
            workload.add_month()
            server.body = workload.csv()
            clock.advance(timedelta(days=31))
            figures["month_ingest"] = poll()
            figures["rss_month_ingest"] = peak_rss_mb()
            figures["month"] = cycle(profilers.get("month"))
            figures["changed_month"] = changed[-1] if changed else (0, 0)
            figures["messages"] = server.messages
            figures["rss"] = peak_rss_mb()
            figures["cpu_first"], figures["cpu_steady"], figures["cpu_month"] = cpu
            figures["gc"] = gcs
            # The full pass the daemon makes once an hour (monitor/memory.py), after the
            # three cycles: its seconds, and the cyclic garbage they left for it.
            started = time.perf_counter()
            figures["collect_found"] = memory.collect()
            figures["collect"] = time.perf_counter() - started
            figures.update(eval_command(path, workload.last))
            if keep := os.environ.get("MONITOR_BENCH_KEEP"):
                _keep(workdir, Path(keep))
            for name, profiler in profilers.items():
                profiler.dump_stats(f"{profile}.{name}")
        finally:
            app.stop()
            server.close()
    return figures


def _keep(workdir: Path, into: Path) -> None:
    """Copy the config, rules and (SQLite) store to ``into``, the config's paths moved
    there, to run ``monitor eval`` (or profile it) on them afterwards."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(workdir, into)
    config_file = into / "config.toml"
    config_file.write_text(config_file.read_text().replace(str(workdir), str(into)))
    print(f"kept in {into}: monitor eval --config {config_file}", file=sys.stderr, flush=True)


def eval_command(config_path: Path, last: int) -> dict[str, Any]:
    """Run ``monitor eval --at <the last month> --format json`` on the daemon's store, as
    a user would, in a process of its own; return its wall and CPU seconds and peak RSS
    (the JSON goes to /dev/null, after it was written)."""
    at = yyyymm(last)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", EVAL_PEAK, "eval", "--config",
                           str(config_path), "--at", f"{at[:4]}-{at[4:]}", "--format", "json"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False, cwd=Path(__file__).resolve().parents[1])
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:  # 1: a rule failed to evaluate
        raise SystemExit(f"monitor eval failed ({done.returncode}): {done.stderr[-500:]}")
    peak = [line for line in done.stderr.splitlines() if line.startswith("VmHWM:")]
    return {"eval": elapsed,
            "eval_cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            "eval_rss": int(peak[-1].split()[1]) / 1024 if peak else float("nan")}


# ``monitor <args>``, then its own peak resident size (VmHWM) on stderr: the children's
# ru_maxrss would count the pages of this large process that the fork shared.
EVAL_PEAK = """
import sys
from pathlib import Path
from monitor.cli import main
code = main(sys.argv[1:])
print(next(l for l in Path("/proc/self/status").read_text().splitlines()
           if l.startswith("VmHWM:")), file=sys.stderr)
sys.exit(code)
"""


def _postgres_database() -> tuple[str, str]:
    """Create a scratch database; return (its URL, its name)."""
    import psycopg

    name = f"bench_daemon_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}", name


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def child(kind: str, n: int, months: int, profile: str | None, ingest_only: bool) -> None:
    """One store and size, in this process; prints one JSON line of figures."""
    if kind == "postgresql":
        url, name = _postgres_database()
        try:
            figures = run(kind, url, n, months, profile, ingest_only)
        finally:
            _drop(name)
    else:
        figures = run(kind, "", n, months, profile, ingest_only)
    print(json.dumps(figures), flush=True)


def _child_figures(args: argparse.Namespace, kind: str, n: int, profile: str | None
                   ) -> dict[str, Any] | str:
    """Run one store and size in a child process; return its figures or why it failed."""
    command = [sys.executable, __file__, "--child", kind, str(n), str(args.months)]
    if profile:
        command += ["--profile", profile]
    if args.ingest_only:
        command += ["--ingest-only"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return (done.stderr.strip().splitlines() or ["?"])[-1]
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def _cpu(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def _each_run(args: argparse.Namespace, sizes: list[int]
              ) -> Iterator[tuple[str, int, dict[str, Any], str | None]]:
    """Run one child per store and size (the largest size of the first store profiled
    when ``--profile`` is given); yield the figures (and profile path) of each that
    finished, after printing a line for each that failed."""
    for kind in args.stores:
        for n in sizes:
            profile = args.profile if args.profile and kind == args.stores[0] \
                and n == sizes[-1] else None
            f = _child_figures(args, kind, n, profile)
            if isinstance(f, str):
                print(f"{kind:<11}{n:>10,}  failed: {f}", flush=True)
                continue
            yield kind, n, f, profile


def ingest_table(args: argparse.Namespace, sizes: list[int]) -> None:
    """Print the ingest-only table: first poll and new-month poll per store and size."""
    print(f"{'store':<11}{'series':>10}{'obs':>12}{'ingest s':>10}{'cpu s':>8}{'db cpu':>8}"
          f"{'obs/s':>11}{'month obs':>12}{'month s':>9}{'cpu s':>8}{'db cpu':>8}"
          f"{'peak MB':>9}", flush=True)
    for kind, n, f, _profile in _each_run(args, sizes):
        if f["stored"] != f["observations"]:
            print(f"{kind:<11}{n:>10,}  stored {f['stored']:,} of "
                  f"{f['observations']:,} observations", flush=True)
        print(f"{kind:<11}{n:>10,}{f['observations']:>12,}{f['ingest']:>10.2f}"
              f"{f['ingest_cpu']:>8.2f}{_cpu(f['ingest_db_cpu']):>8}"
              f"{f['observations'] / f['ingest']:>11,.0f}"
              f"{f['month_observations']:>12,}{f['month_ingest']:>9.2f}"
              f"{f['month_cpu']:>8.2f}{_cpu(f['month_db_cpu']):>8}{f['rss']:>9,.0f}",
              flush=True)
    load = os.getloadavg()
    print(f"(measured {datetime.now(UTC):%Y-%m-%d}, {args.months} months per series, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f}; cpu s = the "
          "daemon process's user + system seconds; db cpu = the PostgreSQL backends' serving "
          "it, from /proc; SQLite runs inside the daemon process)")
    if args.profile:
        print_phases(args.profile)


# The stages of a poll, by the function that does each (cumulative time under cProfile).
PHASES = (("fetch (HTTP read over loopback)", ("fetch_file_or_url",)),
          ("parse (CSV -> values, validation)", ("parse_csv",)),
          ("store: group, deduplicate, sort values", ("_collect", "_prepare")),
          ("store: resolve and create series", ("_resolve_series",)),
          ("store: read stored values for the diff", ("_existing",)),
          ("store: write new rows", ("_insert_new",)),
          ("store: commit", ("commit",)))


def _is_phase(names: tuple[str, ...], file: str, func: str) -> bool:
    """Whether a profiled function is the stage's: ours by name; the commit is the
    driver's (sqlite3's method, or psycopg's), not SQLAlchemy's wrappers around it."""
    if names != ("commit",):
        return func in names and "/monitor/" in file
    return func == "<method 'commit' of 'sqlite3.Connection' objects>" or \
        (func == "commit" and "/psycopg/" in file)


def print_phases(path: str) -> None:
    """Print where a profiled first poll's time went, stage by stage, then the top
    functions by own time."""
    stats = pstats.Stats(path)
    table: dict[tuple[str, int, str], Any] = stats.stats
    total = max(cumulative for _cc, _nc, _tt, cumulative, _callers in table.values())
    print(f"\nwhere the first poll's time went (cProfile, {total:.1f} s under the profiler):")
    for label, names in PHASES:
        spent = sum(entry[3] for (file, _line, func), entry in table.items()
                    if _is_phase(names, file, func))
        print(f"  {label:<42}{spent:>8.1f} s {spent / total:>6.0%}")
    stats.sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"])
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--million", action="store_true", help="add 1,000,000 series")
    parser.add_argument("--profile", help="write a cProfile of the largest size's cycles here")
    parser.add_argument("--ingest-only", action="store_true",
                        help="time the polls alone: the first, then one new month")
    parser.add_argument("--child", nargs=3, metavar=("STORE", "N", "MONTHS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, n, months = args.child
        child(kind, int(n), int(months), args.profile, args.ingest_only)
        return
    sizes = sorted(set(args.sizes + ([1_000_000] if args.million else [])))
    if args.ingest_only:
        ingest_table(args, sizes)
        return
    print(f"{'store':<11}{'series':>10}{'obs':>11}{'ingest s':>9}{'obs/s':>10}{'first s':>9}"
          f"{'steady s':>9}{'month s':>9}{'m.ingest':>9}{'firing':>9}{'msgs':>6}"
          f"{'peak MB':>9}", flush=True)
    for kind, n, f, _profile in _each_run(args, sizes):
        print(f"{kind:<11}{n:>10,}{f['observations']:>11,}{f['ingest']:>9.2f}"
              f"{f['observations'] / f['ingest']:>10,.0f}{f['first']:>9.2f}"
              f"{f['steady']:>9.2f}{f['month']:>9.2f}{f['month_ingest']:>9.2f}"
              f"{f['firing']:>9,}{f['messages']:>6}{f['rss']:>9,.0f}", flush=True)
        print(f"{'':<21}CPU s: first {f['cpu_first']:.2f}, steady {f['cpu_steady']:.2f}, "
              f"new month {f['cpu_month']:.2f}", flush=True)
        for name, (changed, moved) in (("first cycle", f["changed_first"]),
                                       ("new month", f["changed_month"])):
            print(f"{'':<21}alert records changed by the {name}: {changed:,}, of which "
                  f"{moved:,} changed state and {changed - moved:,} only their value, texts "
                  "or counters", flush=True)
        print(f"{'':<21}garbage collector within: first {f['gc'][0]}, steady {f['gc'][1]}, "
              f"new month {f['gc'][2]}; the hourly full pass after them {f['collect']:.2f} s, "
              f"{f['collect_found']:,} unreachable objects found", flush=True)
        print(f"{'':<21}monitor eval --format json, whole process: {f['eval']:.2f} s "
              f"(CPU {f['eval_cpu']:.2f} s), peak RSS {f['eval_rss']:,.0f} MB", flush=True)
        print(f"{'':<21}peak RSS after the ingest {f['rss_ingest']:,.0f} MB, after the first "
              f"cycle {f['rss_first']:,.0f} MB, after the month's poll "
              f"{f['rss_month_ingest']:,.0f} MB", flush=True)
    load = os.getloadavg()
    print(f"(measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.months} months per series, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f})")
    if args.profile:
        for name in ("first", "month"):
            print(f"--- {name} cycle ({args.profile}.{name}) ---")
            stats = pstats.Stats(f"{args.profile}.{name}")
            summary(stats)
            stats.sort_stats("cumulative").print_stats(30)
            stats.sort_stats("tottime").print_stats(20)


# Where a cycle's time goes: (what, module path suffix, function) summed over the profile.
STEPS = (
    ("read the store (DatasetCache.get)", "rules/inputs.py", "get"),
    ("engine: conditions (Engine._judge)", "rules/engine.py", "_judge"),
    ("engine: texts of changed alerts (observed)", "rules/engine.py", "observed"),
    ("engine: identity of new alerts (record)", "rules/engine.py", "record"),
    ("engine: in all (Engine.evaluate)", "rules/engine.py", "evaluate"),
    ("persist: AlertStore.save", "store/alerts.py", "save"),
    ("notifier: process_transitions", "notify/notifier.py", "process_transitions"),
    ("  claim transitions", "store/notify.py", "claim_transitions"),
    ("  save the notifier's alerts", "store/notify.py", "save_alerts"),
    ("  read the notifier's alerts", "store/notify.py", "load_alerts"),
    ("  pipeline stages", "notify/pipeline.py", "run"),
    ("  outbox payloads (_messages)", "notify/notifier.py", "_messages"),
    ("  history of the messages", "store/notify.py", "record_history"),
    ("dispatch (decode, render, POST)", "notify/notifier.py", "dispatch"),
)


def summary(stats: pstats.Stats) -> None:
    """Print the profiled cycle's time per step, in seconds and as a share of the cycle
    (``RuleService.evaluate``, which runs the notifier, plus the dispatch)."""
    table = stats.stats  # type: ignore[attr-defined]

    def spent(path: str, function: str) -> float:
        return float(sum(v[3] for k, v in table.items()
                         if k[0].endswith(path) and k[2] == function))

    total = spent("rules/service.py", "evaluate") + spent("notify/notifier.py", "dispatch")
    print(f"the cycle, profiled: {total:.1f} s")
    for label, path, function in STEPS:
        seconds = spent(path, function)
        print(f"  {label:<46}{seconds:8.1f} s {100 * seconds / (total or 1):6.1f}%")


if __name__ == "__main__":
    main()
