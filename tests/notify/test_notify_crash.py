"""A real notifier process killed with SIGKILL mid-delivery delivers after a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.store import open_store
from monitor.store.notify import OUTBOX
from tests.notify.helpers import record
from tests.notify.loopback import LoopbackReceiver

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def start_worker(config: Path, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    return subprocess.Popen([sys.executable, "-m", "monitor.notify_worker", "--config",
                             str(config)], cwd=cwd, env={**env, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def rows(url: str) -> list[tuple[str, int]]:
    store = open_store(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            return [(r[0], r[1]) for r in conn.execute(
                select(OUTBOX.c.status, OUTBOX.c.attempts).order_by(OUTBOX.c.id))]
    finally:
        store.close()


def wait_until(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_notification_in_flight_when_the_process_is_killed_arrives_after_restart(
        tmp_path: Path, hook: LoopbackReceiver) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    config = tmp_path / "config.toml"
    config.write_text(f"""
[store]
url = "{url}"

[notify]
poll_interval = "0.2s"
[notify.retry]
timeout = "20s"
lease = "60s"
[notify.route]
receiver = "ops"
group_wait = "0s"
[[notify.receivers]]
name = "ops"
[[notify.receivers.webhook]]
url = "{hook.url()}"
""")
    store = open_store(url)
    record(store, "camden", "firing", datetime.now(UTC), 6.1)
    store.close()

    hook.hold.clear()  # the receiver takes the request and does not answer
    first = start_worker(config, tmp_path)
    try:
        assert hook.wait_for(1, timeout=30), first.stdout.read() if first.stdout else ""
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    # Committed, leased, attempted once, never acknowledged.
    assert rows(url) == [("pending", 1)]
    hook.hold.set()  # the answer goes nowhere: its client is dead

    second = start_worker(config, tmp_path)
    try:
        assert wait_until(lambda: rows(url) == [("delivered", 2)], timeout=30)
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    finally:
        if second.poll() is None:
            second.kill()
    output = second.stdout.read() if second.stdout else ""
    assert "took back messages a previous process was sending" in output
    # Delivered after the restart, with at most one duplicate: the same message twice.
    assert len(hook.requests) == 2
    first_body, second_body = (json.loads(r.body) for r in hook.requests)
    assert first_body == second_body
    assert first_body["alerts"][0]["labels"]["borough"] == "camden"
