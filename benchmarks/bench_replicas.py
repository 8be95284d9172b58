"""Evaluation throughput with 1, 2 and 3 replicas (``monitor run`` processes) on one
PostgreSQL.

Run: .venv/bin/python benchmarks/bench_replicas.py [--series 5000] [--groups 24]
     [--seconds 20] [--admin postgresql://postgres@127.0.0.1:5432/postgres]

It creates a scratch database (dropped at the end), stores ``--series`` monthly series
x 36 months, writes ``--groups`` rule groups of five rules each, then for 1, 2 and 3
replicas: starts them, waits until the shards are balanced and a few cycles ran, and
counts the rule evaluations every replica made over ``--seconds`` (from each one's
``monitor_rule_group_evaluations_total``). Every replica evaluates back to back
(``evaluation_interval`` far below a cycle's duration), so the figure is the cluster's
capacity: rule evaluations per second, and series x rules per second.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.cluster import assign  # noqa: E402
from monitor.model import Observation, labels_of, month  # noqa: E402
from monitor.rules.cycle import Cycle, Evaluator  # noqa: E402
from monitor.rules.engine import month_end  # noqa: E402
from monitor.rules.inputs import read_dataset  # noqa: E402
from monitor.rules.loader import load_rules  # noqa: E402
from monitor.store import open_store  # noqa: E402

RULES = """\
  - name: {group}
    rules:
      - {{alert: Level{group}, indicator: burglary, when: {{level: {{above: 2400}}}}}}
      - {{alert: Rolling{group}, indicator: burglary, when: {{change: {{window: 12, above: 20}}}}}}
      - {{alert: Rising{group}, indicator: burglary,
         when: {{trend: {{test: consecutive, run: 6, direction: rising}}}}}}
      - {{alert: Spc{group}, indicator: burglary, when: {{spc: {{signal: concern}}}}}}
      - {{alert: Poisson{group}, indicator: burglary,
         when: {{significance: {{test: poisson, window: 12, alpha: 0.0001}}}}}}
"""
SHARDS = 64


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(url: str, series: int, months: int) -> None:
    """Store ``series`` burglary series of ``months`` months ending 2016-12."""
    rng = np.random.default_rng(7)
    end = month("2016-12")
    periods = range(end - months + 1, end + 1)
    base = rng.gamma(4.0, 25.0, size=series)
    store = open_store(url)
    try:
        batch: list[Observation] = []
        for i in range(series):
            labels = labels_of({"area": f"a{i:06d}"})
            values = rng.poisson(base[i] * (1 + 0.1 * np.sin(np.arange(months) / 2)))
            batch.extend(Observation("burglary", labels, p, float(v))
                         for p, v in zip(periods, values, strict=True))
            if len(batch) >= 50_000:
                store.observations.ingest("bench", batch, now=datetime.now(UTC))
                batch = []
        if batch:
            store.observations.ingest("bench", batch, now=datetime.now(UTC))
    finally:
        store.close()


def split(url: str, rules: Path) -> tuple[float, float]:
    """Return, in seconds, the part of one cycle every replica pays (reading every
    indicator's observations, publishing the snapshot the pages read) and the part the
    replicas share out (evaluating the rules), in this process, best of three."""
    ruleset = load_rules([rules])
    evaluator = Evaluator(ruleset, history=36)
    at = month_end(month("2016-12"))
    store = open_store(url)
    reads, evals = [], []
    try:
        for _ in range(3):
            started = time.perf_counter()
            data = read_dataset(store, ruleset, [])
            read = time.perf_counter()
            result = evaluator.run(data, {}, Cycle(at=at, now=at))
            evaluated = time.perf_counter()
            evaluator.publish(result)
            reads.append(read - started + time.perf_counter() - evaluated)
            evals.append(evaluated - read)
    finally:
        store.close()
    return min(reads), min(evals)


def config(root: Path, name: str, port: int, url: str) -> Path:
    path = root / f"{name}.toml"
    path.write_text(f"""
[server]
listen = "127.0.0.1:{port}"
[store]
url = "{url}"
[rules]
paths = ["rules"]
evaluation_interval = "0.2s"
watch = false
as_of = "2016-12"
history = 36
[logging]
level = "error"
[daemon]
instance = "{name}"
[cluster]
heartbeat_interval = "1s"
lease_ttl = "5s"
shards = {SHARDS}
""")
    return path


def evaluations(port: int) -> tuple[float, float]:
    """Return (rule evaluations so far, last cycle seconds) from a replica's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    total = sum(float(v) for v in re.findall(
        r"^monitor_rule_group_evaluations_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))
    cycle = re.search(r"^monitor_rule_evaluation_last_duration_seconds ([0-9.e+-]+)$",
                      text, re.M)
    return total, float(cycle.group(1)) if cycle else float("nan")


def balanced(url: str, names: list[str]) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT owner, count(*) FROM shard_lease WHERE owner IS NOT NULL "
                            "AND expires_at > clock_timestamp() GROUP BY owner").fetchall()
    return {r[0]: r[1] for r in rows} == {n: len(s) for n, s in assign(SHARDS, names).items()}


def run(root: Path, url: str, libpq: str, replicas: int, seconds: float
        ) -> tuple[float, list[float]]:
    """Start ``replicas`` replicas; return (rule evaluations per second, cycle seconds)."""
    names = [f"r{i + 1}" for i in range(replicas)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    procs: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for name in names:
            port = free_port()
            log = (root / f"{name}-{replicas}.log").open("wb")
            procs.append((subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--config",
                 str(config(root, name, port, url))], cwd=root, stdout=log,
                stderr=subprocess.STDOUT, env={**env, "PYTHONPATH": str(ROOT)}), port))
        deadline = time.monotonic() + 300
        while not balanced(libpq, names):
            if time.monotonic() > deadline:
                raise SystemExit(f"{replicas} replicas never balanced; see {root}")
            time.sleep(0.5)
        time.sleep(max(5.0, seconds / 4))  # records reloaded, a few cycles run
        before = [evaluations(port)[0] for _, port in procs]
        started = time.monotonic()
        time.sleep(seconds)
        after = [evaluations(port) for _, port in procs]
        elapsed = time.monotonic() - started
        done = sum(a[0] - b for a, b in zip(after, before, strict=True))
        return done / elapsed, [a[1] for a in after]
    finally:
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=5000)
    parser.add_argument("--groups", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--admin", default=os.environ.get(
        "MONITOR_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    name = f"monitor_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    libpq = make_url(args.admin).set(database=name).render_as_string(hide_password=False)
    url = make_url(libpq).set(drivername="postgresql+psycopg").render_as_string(
        hide_password=False)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
            root = Path(tmp)
            (root / "rules").mkdir()
            (root / "rules" / "bench.yaml").write_text(
                "indicators:\n  - {id: burglary, name: Burglary, direction: down}\ngroups:\n"
                + "".join(RULES.format(group=f"g{g:02d}") for g in range(args.groups)))
            started = time.perf_counter()
            seed(url, args.series, 36)
            rules = args.groups * 5
            print(f"seeded {args.series:,} series x 36 months in "
                  f"{time.perf_counter() - started:.1f}s; {args.groups} groups x 5 rules = "
                  f"{rules} rules; {SHARDS} shards; {os.cpu_count()} CPU cores; load "
                  f"average {os.getloadavg()[0]:.1f} before the run")
            read, evaluate = split(url, root / "rules")
            print(f"one cycle in one process: {read:.2f}s reading and publishing (every "
                  f"replica pays it), {evaluate:.2f}s evaluating (shared out)")
            print(f"{'replicas':>8} {'rules/s':>9} {'series x rules/s':>17} {'speed-up':>9} "
                  f"{'ideal*':>7} {'cycle s (each replica)':>24}")
            first = None
            for replicas in (1, 2, 3):
                rate, cycles = run(root, url, libpq, replicas, args.seconds)
                first = first or rate
                ideal = (read + evaluate) / (read + evaluate / replicas)
                print(f"{replicas:>8} {rate:>9.1f} {rate * args.series:>17,.0f} "
                      f"{rate / first:>8.2f}x {ideal:>6.2f}x "
                      f"{' '.join(f'{c:.2f}' for c in cycles):>24}", flush=True)
            print("* ideal: the speed-up with a free core per replica and one for "
                  "PostgreSQL, from the split above")
    finally:
        with psycopg.connect(args.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"(measured {datetime.now(UTC):%Y-%m-%d}; PostgreSQL and every replica share "
          "this machine's cores)")


if __name__ == "__main__":
    main()
