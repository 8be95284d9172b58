"""The crash loop: the daemon on the bundled example, SIGKILLed at random moments many
times in a row — while polling, evaluating, notifying and delivering — and restarted
each time, while the data keeps changing under it.

Afterwards: the store passes SQLite's integrity check (after every kill too), the alert
state equals a clean evaluation of the final data, the notifier's view agrees with it,
every transition was claimed, every message was delivered (none pending, none dead) or,
superseded, either reached the receiver before it was or was replaced by a newer message
of its group that was delivered, every alert's last notification tells its final state,
and each kill caused at most one duplicate: the request in flight when it struck.

``MONITOR_CRASH_KILLS`` (default 4, about 20 s) sets the number of kills and
``MONITOR_CRASH_SEED`` the random seed; docs/reliability.md gives the figures of a long
run: ``MONITOR_CRASH_KILLS=200 pytest tests/reliability/test_reliability_crash_loop.py -s
--timeout=0``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.notify.channels.webhook import payload
from monitor.notify.notification import Notification
from tests.conftest import free_port
from tests.reliability.example_daemon import Variants, daemon_config, install, settle
from tests.reliability.processes import (
    Hook,
    integrity,
    query,
    start_daemon,
    stop,
    wait_for_text,
)
from tests.reliability.rig import copy_example

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("MONITOR_CRASH_KILLS", "4"))
SEED = int(os.environ.get("MONITOR_CRASH_SEED", "20080731"))


PHASES = (  # the last line logged before the kill -> what the daemon was doing
    ('msg="notification sent"', "delivering"),
    ('msg="notifications queued"', "delivering"),
    ('msg="alerts changed state"', "notifying"),
    ('msg="source polled"', "evaluating"),
    ('msg="daemon started"', "polling"),
    ('msg="rules loaded"', "polling"),
)


def phase_of(log_tail: str, inflight: int) -> str:
    """Return what the daemon was doing when it was killed."""
    if inflight:
        return "delivering"
    for line in reversed(log_tail.splitlines()):
        for needle, phase in PHASES:
            if needle in line:
                return phase
    return "starting"


def canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True)


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook(delay=0.03)
    try:
        yield receiver
    finally:
        receiver.close()


def test_it_survives_random_sigkills_with_nothing_lost(
        tmp_path: Path, hook: Hook,
        example_variants: tuple[Variants, dict[str, set[str]]]) -> None:
    rng = random.Random(SEED)
    data, expected = example_variants
    assert expected["A"] != expected["B"]
    workdir = copy_example(tmp_path / "daemon")
    port = free_port()
    config = workdir / "config.toml"
    config.write_text(daemon_config(workdir, port, hook))
    db = workdir / "monitor.db"
    log_path = workdir / "daemon.log"
    phases: Counter[str] = Counter()
    runs: list[int] = []  # index of each run's first request in hook.deliveries
    current = "A"
    started = time.monotonic()

    for kill in range(KILLS):
        if kill % 2 == 1 or rng.random() < 0.5:  # change the data under it, often
            current = "B" if current == "A" else "A"
            install(workdir, data[current])
        offset = log_path.stat().st_size if log_path.exists() else 0
        with hook.lock:
            runs.append(len(hook.deliveries))
        proc = start_daemon(config, workdir, log_path)
        try:
            # A start takes a few seconds; on a loaded machine much longer.
            assert wait_for_text(log_path, 'msg="rules loaded"', offset, timeout=120,
                                 proc=proc), \
                log_path.read_text()[offset:]
            time.sleep(rng.uniform(0.0, 1.5))
            with hook.lock:
                inflight = hook.inflight
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        phases[phase_of(log_path.read_text()[offset:], inflight)] += 1
        assert integrity(db) == ("ok", []), f"after kill {kill + 1}"

    # The last run: let it finish its work, then stop it cleanly.
    offset = log_path.stat().st_size
    with hook.lock:
        runs.append(len(hook.deliveries))
    proc = start_daemon(config, workdir, log_path)
    try:
        assert wait_for_text(log_path, 'msg="daemon started"', offset, proc=proc)
        assert wait_for_text(log_path, 'msg="source polled" source=mps-2008-09', offset,
                             proc=proc)
        settled = settle(db, hook, expected[current])
        status = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text()[offset:]
    assert settled, output
    assert status == 0, output

    verdict, foreign = integrity(db)
    assert (verdict, foreign) == ("ok", [])
    firing = {r[0] for r in query(db, "SELECT id FROM alert WHERE state = 'firing'")}
    assert firing == expected[current]
    notifier_view = {r[0] for r in query(
        db, "SELECT alert_id FROM notify_alert WHERE status = 'firing'")}
    assert notifier_view == firing
    assert query(db, "SELECT COUNT(*) FROM alert_transition WHERE claimed_by IS NULL") == [(0,)]
    statuses = dict(query(db, "SELECT status, COUNT(*) FROM notification GROUP BY status"))
    assert set(statuses) <= {"delivered", "superseded"}, statuses

    missing, unreplaced, duplicated = match_deliveries(db, hook)
    assert missing == []
    assert unreplaced == [], "superseded messages neither received nor replaced"
    per_run = Counter(run_of(runs, index) for index in duplicated)
    assert per_run.get(KILLS, 0) == 0, "the clean stop left a delivery unrecorded"
    assert max(per_run.values(), default=0) <= 1, f"duplicates per kill: {per_run}"
    # The one request a kill can duplicate is the one in flight: its run's last.
    assert all(index == runs[run_of(runs, index) + 1] - 1 for index in duplicated), \
        (duplicated, runs)
    duplicates = len(duplicated)
    last = last_status(hook)
    for alert_id, status in last.items():
        assert status == ("firing" if alert_id in firing else "resolved"), alert_id
    assert firing <= set(last)

    print(f"\ncrash loop: {KILLS} kills survived in {time.monotonic() - started:.0f}s; "
          f"killed while {dict(sorted(phases.items()))}; "
          f"{statuses.get('delivered', 0)} messages delivered, "
          f"{len(hook.deliveries)} requests received, {duplicates} duplicates "
          f"(at most {max(per_run.values(), default=0)} per kill), "
          f"0 lost; integrity_check ok after every kill")


def run_of(runs: list[int], index: int) -> int:
    """Return the run (0-based; run k ended with kill k + 1) that received request
    ``index``."""
    return bisect_right(runs, index) - 1


def match_deliveries(db: Path, hook: Hook) -> tuple[list[int], list[int], list[int]]:
    """Match every received request to outbox messages by body; return the delivered
    messages never received, the superseded messages neither received nor replaced, and
    the duplicate receptions (indexes into ``hook.deliveries``).

    A superseded message was still waiting when a newer message for its group was
    committed: it may have reached the receiver before (sent, then killed before the
    delivery was recorded), or never; if never, a newer message of its group (same
    receiver, integration and group key) must have been delivered. Receptions of a body
    beyond the messages that have it are duplicates; each is attributed to the earlier
    reception whose delivery went unrecorded.
    """
    rows = query(db, "SELECT id, status, receiver, integration, group_key, payload "
                     "FROM notification WHERE status IN ('delivered', 'superseded') "
                     "ORDER BY id")
    by_body: dict[str, list[tuple[int, str]]] = {}
    group_of: dict[int, tuple[str, str, str]] = {}
    delivered_ids: dict[tuple[str, str, str], list[int]] = {}
    for row_id, status, receiver, integration, group_key, stored in rows:
        body = canonical(payload(Notification.from_json(stored)))
        by_body.setdefault(body, []).append((row_id, status))
        group_of[row_id] = (receiver, integration, group_key)
        if status == "delivered":
            delivered_ids.setdefault(group_of[row_id], []).append(row_id)
    received: dict[str, list[int]] = {}
    for index, delivery in enumerate(hook.deliveries):
        received.setdefault(canonical(delivery.body), []).append(index)
    unknown = [body for body in received if body not in by_body]
    assert unknown == [], f"received {len(unknown)} bodies no message has"
    missing: list[int] = []
    unreplaced: list[int] = []
    duplicated: list[int] = []
    for body, messages in by_body.items():
        delivered = [i for i, s in messages if s == "delivered"]
        superseded = [i for i, s in messages if s == "superseded"]
        got = received.get(body, [])
        if len(got) < len(delivered):
            missing.extend(delivered[len(got):])
        # Receptions left for the superseded ones, after the delivered ones had theirs.
        spare = max(0, len(got) - len(delivered))
        for row_id in superseded[spare:]:
            if not any(newer > row_id for newer in delivered_ids.get(group_of[row_id], [])):
                unreplaced.append(row_id)
        extra = len(got) - len(messages)
        if extra > 0:
            duplicated.extend(got[:extra])
    return missing, unreplaced, duplicated


def last_status(hook: Hook) -> dict[str, str]:
    """Return, per alert id, the status the last request that mentioned it gave."""
    out: dict[str, str] = {}
    for delivery in hook.deliveries:
        for alert in delivery.body.get("alerts", []):
            out[alert["fingerprint"]] = alert["status"]
    return out
