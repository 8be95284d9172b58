"""Ingest benchmark: the real London files, repeated with shifted periods, into both stores.

    .venv/bin/python benchmarks/bench_ingest.py [--rounds 3] [--backend sqlite|postgresql]

Each round ingests the three London Datastore files of ``../shared/data`` (397,484
observations) with their period columns moved 20 years further on per round, so every
round brings new periods of the same series — the shape of real monthly publishing.
Three rounds make 1,192,452 observations. For each backend (each in its own process, so
peak memory is its own) it prints:

- parse: CSV bytes -> observations (``parse_csv``, the wide layout);
- store: ``ObservationStore.ingest`` including the diff against stored values — the
  figure the targets apply to (>= 200,000 obs/s SQLite, >= 100,000 obs/s PostgreSQL);
- end to end: parse + store;
- re-ingest: the last round again, every value unchanged (the diff alone);
- read: ``ObservationStore.read()`` of everything, as the rules engine loads it;
- peak RSS of the process.

Each backend runs ``--repeat`` times (default 3) and the best figure of each is printed:
other work on the machine can only slow a run down.

SQLite runs on a temporary file; PostgreSQL on a database created (and dropped) at
``MONITOR_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.sources.config import CsvSource  # noqa: E402
from monitor.sources.csv import parse_csv  # noqa: E402
from monitor.store import open_store  # noqa: E402

DATA = Path(os.environ.get("MONITOR_SHARED_DATA", REPO.parent / "shared" / "data"))
ADMIN_URL = os.environ.get("MONITOR_BENCH_POSTGRES_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
OLD = {"borough": "Borough", "major": "Major Category", "minor": "Minor Category"}
NEW = {"borough": "LookUp_BoroughName", "major": "MajorText", "minor": "MinorText"}
FILES = [("mps-borough-crime-2008-01-to-2016-12.csv", "recorded_crime_2008_taxonomy", OLD),
         ("mps-borough-crime-2010-04-to-2022-01.csv", "recorded_crime", NEW),
         ("mps-borough-crime-2022-02-to-2024-01.csv", "recorded_crime", NEW)]


def shifted(body: bytes, years: int) -> bytes:
    """Return the CSV with every YYYYMM header column moved ``years`` on."""
    header, rest = body.split(b"\n", 1)
    moved = re.sub(rb"(?<![\d])(\d{4})(\d{2})(?![\d])",
                   lambda m: b"%d%s" % (int(m.group(1)) + years, m.group(2)), header)
    return moved + b"\n" + rest


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(url: str, rounds: int) -> dict[str, Any]:
    """Ingest every round into the store at ``url``; return the figures."""
    configs = {name: CsvSource.model_validate({
        "name": "london", "kind": "csv", "path": name, "layout": "wide", "indicator": indicator,
        "labels": labels}) for name, indicator, labels in FILES}
    bodies = {name: (DATA / name).read_bytes() for name, _i, _l in FILES}
    store = open_store(url)
    repo = store.observations
    parse_s = store_s = 0.0
    total = 0
    now = datetime(2024, 2, 1, tzinfo=UTC)
    last_round: list[Any] = []
    for k in range(rounds):
        for name, _indicator, _labels in FILES:
            body = shifted(bodies[name], 20 * k)
            t0 = time.perf_counter()
            parsed = parse_csv(configs[name], body, origin=name)
            t1 = time.perf_counter()
            result = repo.ingest("london", parsed.batch, now=now)  # columns, as the poller
            t2 = time.perf_counter()
            assert not parsed.problems and result.inserted == parsed.count(), result
            parse_s += t1 - t0
            store_s += t2 - t1
            total += parsed.count()
            if k == rounds - 1:
                last_round.append(parsed.batch)
    t0 = time.perf_counter()
    unchanged = 0
    for observations in last_round:
        unchanged += repo.ingest("london", observations, now=now).unchanged
    reingest_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    blocks = repo.read()
    read_s = time.perf_counter() - t0
    read_rows = sum(len(b) for b in blocks.values())
    series = sum(len(b.series_ids) for b in blocks.values())
    store.close()
    return {"observations": total, "series": series, "parse": total / parse_s,
            "store": total / store_s, "end_to_end": total / (parse_s + store_s),
            "reingest": unchanged / reingest_s, "read": read_rows / read_s,
            "read_rows": read_rows, "store_seconds": store_s, "rss_mib": rss_mib()}


def child(backend: str, rounds: int) -> dict[str, Any]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            return run(f"sqlite:///{Path(tmp) / 'bench.db'}", rounds)
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"monitor_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(ADMIN_URL).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
        return run(url.render_as_string(hide_password=False), rounds)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TARGETS = {"sqlite": 200_000, "postgresql": 100_000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per backend; the best figure of each is shown, since other "
                             "processes on the machine only ever slow a run down")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"])
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        figures = child(args.backend, args.rounds)
        print(json.dumps(figures) if args.json else figures)
        return 0
    rows: dict[str, dict[str, Any]] = {}
    for backend in ("sqlite", "postgresql"):
        for _ in range(args.repeat):
            done = subprocess.run([sys.executable, __file__, "--backend", backend, "--rounds",
                                   str(args.rounds), "--json"], capture_output=True, text=True,
                                  check=False)
            if done.returncode != 0:
                print(f"{backend}: failed\n{done.stderr}", file=sys.stderr)
                return 1
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            best = rows.setdefault(backend, figures)
            for key in ("parse", "store", "end_to_end", "reingest", "read"):
                best[key] = max(best[key], figures[key])
            best["rss_mib"] = max(best["rss_mib"], figures["rss_mib"])
    first = rows["sqlite"]
    load = os.getloadavg()[0]
    print(f"ingest benchmark: {first['observations']:,} observations in {first['series']:,} "
          f"series (3 London files x {args.rounds} rounds of shifted periods), "
          f"{os.cpu_count()} CPUs, load average {load:.1f}, best of {args.repeat} runs")
    print(f"{'backend':<11}{'parse':>12}{'store':>12}{'end to end':>13}{'re-ingest':>12}"
          f"{'read':>12}{'peak RSS':>11}   target (store)")
    for backend, f in rows.items():
        target = TARGETS[backend]
        verdict = "met" if f["store"] >= target else "MISSED"
        print(f"{backend:<11}{f['parse']:>12,.0f}{f['store']:>12,.0f}{f['end_to_end']:>13,.0f}"
              f"{f['reingest']:>12,.0f}{f['read']:>12,.0f}{f['rss_mib']:>8,.0f} MiB"
              f"   >= {target:,} obs/s: {verdict}")
    print("figures are observations per second; store includes the diff against stored "
          "values; re-ingest = the last round again, all unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
