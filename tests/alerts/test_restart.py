"""A real daemon killed while an alert is pending: the `for` timer is not reset and no
transition is recorded twice after the restart.

The daemon runs on a clock the test moves (tests/alerts/fileclock.py): its time stands
still while it starts, so however long a start takes on a loaded machine, the restarted
daemon evaluates with part of `for` still to run.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.alerts.fileclock import set_time
from tests.conftest import REPO, free_port

RULES = """\
indicators:
  - {id: burglary, name: Residential burglary, direction: down, window: 3}
groups:
  - name: restart
    rules:
      - alert: BurglaryHigh
        indicator: burglary
        when: {level: {above: 250}}
        for: 8s
"""


STOP_BOUND = 90.0


def start(tmp_path: Path, clock: Path) -> subprocess.Popen[str]:
    """Start ``monitor run`` on the config in ``tmp_path``, on the clock in file ``clock``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return subprocess.Popen([sys.executable, "-m", "tests.alerts.fileclock", str(clock), "run",
                             "--config", str(tmp_path / "config.toml")], cwd=tmp_path, env=env,
                            stdout=(tmp_path / "daemon.log").open("a"), stderr=subprocess.STDOUT,
                            text=True)


def stopped(daemon: subprocess.Popen[str], tmp_path: Path) -> None:
    """Wait for ``daemon`` to exit; if it does not, fail with the end of its log.

    The bound guards against a hang, not a slow stop: in .ci/run this test runs with the
    clock a year ahead in a niced lane beside the whole suite, where a stop once took over
    15 s of wall time.
    """
    try:
        daemon.wait(timeout=STOP_BOUND)
    except subprocess.TimeoutExpired:
        daemon.kill()
        tail = (tmp_path / "daemon.log").read_text(errors="replace")[-4000:]
        raise AssertionError(f"the daemon did not exit in {STOP_BOUND:.0f} s; its log "
                             f"ends:\n{tail}") from None


def alert_row(db: Path) -> tuple[str, str | None, str | None, str | None] | None:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row: tuple[str, str | None, str | None, str | None] | None = conn.execute(
                "SELECT state, active_since, fired_at, last_evaluated FROM alert").fetchone()
    except sqlite3.OperationalError:
        return None
    return row


def evaluated_at(db: Path, at: datetime) -> tuple[str, str | None, str | None, str | None]:
    """Wait until the daemon has evaluated the alert at ``at``; return the alert's row."""
    def done() -> tuple[str, str | None, str | None, str | None] | None:
        row = alert_row(db)
        return row if row and row[3] and stored(row[3]) == at else None

    found: tuple[str, str | None, str | None, str | None] = wait_for(done)
    return found


def stored(text: str) -> datetime:
    """A time as the SQLite store wrote it (UTC; without a zone)."""
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def wait_for(predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_a_kill_while_pending_neither_resets_for_nor_repeats_a_transition(
        tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "burglary.yaml").write_text(RULES)
    (tmp_path / "data.csv").write_text(
        "indicator,borough,period,value\n"
        + "".join(f"burglary,Camden,2008-{m:02d},{v}\n" for m, v in
                  [(1, 80), (2, 90), (3, 85), (4, 95), (5, 100), (6, 90)]))
    (tmp_path / "config.toml").write_text(f"""
[server]
listen = "127.0.0.1:{port}"
[store]
url = "sqlite:///{tmp_path / 'monitor.db'}"
[rules]
paths = ["rules"]
evaluation_interval = "1s"
as_of = "2008-06"
[[sources]]
name = "boroughs"
kind = "csv"
path = "data.csv"
indicator_column = "indicator"
labels = {{borough = "borough"}}
interval = "1h"
""")
    db = tmp_path / "monitor.db"
    clock = tmp_path / "clock"
    t0 = datetime.now(UTC).replace(microsecond=0)
    set_time(clock, t0)
    first = start(tmp_path, clock)
    try:
        pending = wait_for(lambda: (row := alert_row(db)) and row[0] == "pending" and row)
        active_since = pending[1]
        set_time(clock, t0 + timedelta(seconds=4))  # half of `for` spent pending
        evaluated_at(db, t0 + timedelta(seconds=4))
        first.send_signal(signal.SIGKILL)
        stopped(first, tmp_path)
    finally:
        if first.poll() is None:
            first.kill()
    restarted_at = t0 + timedelta(seconds=5)  # the daemon's time while it restarts
    set_time(clock, restarted_at)
    second = start(tmp_path, clock)
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1)
                 .status_code == 200 if _up(port) else False)
        evaluated_at(db, restarted_at)  # the restarted daemon, with 3 s of `for` to run
        set_time(clock, t0 + timedelta(seconds=8))
        firing = evaluated_at(db, t0 + timedelta(seconds=8))
    finally:
        second.send_signal(signal.SIGTERM)
        stopped(second, tmp_path)
    assert firing[0] == "firing", "not firing once `for` had passed"
    assert firing[1] == active_since, "the pending clock restarted"
    assert firing[2] is not None
    fired = stored(firing[2])
    since = stored(active_since)
    assert 8 <= (fired - since).total_seconds() < 11, "fired 8s after it became pending"
    # A restarted `for` would fire 8s or more after the restart.
    assert (fired - restarted_at).total_seconds() < 7.5, "fired a full `for` after the restart"
    with sqlite3.connect(db) as conn:
        moves = conn.execute("SELECT from_state, to_state, labels FROM alert_transition "
                             "ORDER BY id").fetchall()
    assert [(a, b) for a, b, _ in moves] == [("inactive", "pending"), ("pending", "firing")]
    assert json.loads(moves[1][2])["borough"] == "Camden"


def _up(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=1)
        return True
    except httpx.HTTPError:
        return False
