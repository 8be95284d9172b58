"""What SQLite alone costs for the rows a first cycle writes: the floor under issue #15's
100k first-cycle target.

A first cycle at 100,000 series (``bench_daemon.py``'s workload) fires 157,361 alerts.
Each is written as a row of four tables: the alert's state (``alert``), the transition
outbox (``alert_transition``, then claimed by an update), the history (``alert_event``)
and the notifier's alerts (``notify_alert``). This script makes rows of the same shape
and size (the workload's labels, annotations and explanation texts) in advance, then
times only the driver and the database: one ``executemany`` per table into the
migrated schema (``open_store`` on a fresh file), the claim's ``UPDATE``, and the
commit, with the page cache a cycle's save uses. No Python of ours runs per row while
timed, so no cycle that writes these rows can cost less.

    .venv/bin/python benchmarks/bench_floor.py            # 157,361 alerts
    .venv/bin/python benchmarks/bench_floor.py --alerts 50000
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.store import open_store  # the checkout's, not an installed copy
from monitor.store.db import BULK_CACHE_SIZE

STAMP = "2017-01-05 06:00:00.000000"


def rows(n: int) -> dict[str, list[tuple[object, ...]]]:
    """Each table's rows for ``n`` alerts, shaped as the daemon writes them."""
    out: dict[str, list[tuple[object, ...]]] = {
        "alert": [], "alert_transition": [], "alert_event": [], "notify_alert": []}
    for i in range(n):
        key = f"{i:016x}"
        area = f"a{i // 2}"
        labels = json.dumps({"alertname": "BurglaryWorseThanTarget", "area": area,
                             "indicator": "burglary", "severity": "warning"})
        text = f"Burglary is {1000 + i % 500:,} over the rolling year to Dec-16, above its " \
               "2016/17 target of 1,092."
        notes = json.dumps({"explanation": text, "period": "Dec-16", "period_id": "2016-12",
                            "series": f"{i * 7919:016x}", "sources": "generated",
                            "value_text": f"{1000 + i % 500:,}"}, sort_keys=True)
        value = float(1000 + i % 500)
        out["alert"].append((key, "BurglaryWorseThanTarget", labels, notes, "firing", value,
                             text, STAMP, STAMP, None, None, STAMP, 1, 1, 24203, "", 0,
                             "inactive", STAMP, "bench"))
        out["alert_transition"].append((i + 1, key, "BurglaryWorseThanTarget", labels, notes,
                                        "inactive", "firing", value, text, STAMP, None,
                                        None, "bench"))
        out["alert_event"].append((i + 1, key, "BurglaryWorseThanTarget", "bench", labels,
                                   "transition", "inactive", "firing", value, text,
                                   "2016-12", json.dumps({"group": "bench"}), STAMP))
        out["notify_alert"].append((key, "BurglaryWorseThanTarget", labels, notes,
                                    "firing", value, text, STAMP, None, STAMP))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=157_361)
    args = parser.parse_args()
    made = rows(args.alerts)
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        path = Path(tmp) / "floor.db"
        open_store(f"sqlite:///{path}").close()  # the migrated schema
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size = {BULK_CACHE_SIZE}")
        spent: dict[str, float] = {}
        conn.execute("BEGIN IMMEDIATE")
        for table, table_rows in made.items():
            marks = ", ".join("?" * len(table_rows[0]))
            started = time.process_time()
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", table_rows)
            spent[f"insert into {table}"] = time.process_time() - started
        started = time.process_time()
        conn.execute("UPDATE alert_transition SET claimed_by = 'bench', claimed_at = ? "
                     "WHERE claimed_by IS NULL", (STAMP,))
        spent["claim the transitions (update)"] = time.process_time() - started
        started = time.process_time()
        conn.execute("COMMIT")
        spent["commit"] = time.process_time() - started
        conn.close()
    print(f"{args.alerts:,} alerts: what SQLite alone spends writing a first cycle's rows, "
          "CPU seconds")
    for step, seconds in spent.items():
        print(f"  {step:<36}{seconds:6.2f}")
    print(f"  {'in all':<36}{sum(spent.values()):6.2f}")


if __name__ == "__main__":
    main()
