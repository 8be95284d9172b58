"""The bundled example as a real daemon for the process-level fault tests: two versions
of its data to switch between, the alerts a clean evaluation of each fires, the config,
and waiting until the daemon has finished its work."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.reliability.processes import Hook, query
from tests.reliability.rig import build_rig, copy_example, example_config, variant_b

Variants = dict[str, dict[str, bytes]]


def variants(root: Path) -> dict[str, dict[str, bytes]]:
    """Return the two versions (A: as shipped, B: changed) of both data files."""
    out = {}
    for name in "AB":
        folder = copy_example(root / f"variant-{name}")
        if name == "B":
            variant_b(folder / "data")
        out[name] = {f: (folder / "data" / f).read_bytes()
                     for f in ("indicators.csv", "ct-milestones.yaml")}
    return out


def expected_firing(root: Path) -> dict[str, set[str]]:
    """Return, per variant, the ids of the alerts a clean evaluation fires."""
    out = {}
    for name in "AB":
        folder = root / f"variant-{name}"
        rig = build_rig(folder, example_config(folder), datetime(2026, 1, 1, tzinfo=UTC))
        try:
            rig.rules.as_of = "2008-07"
            rig.tick()
            out[name] = {r.id for r in rig.rules.records.values() if r.state.value == "firing"}
        finally:
            rig.close()
    return out


def install(workdir: Path, files: dict[str, bytes]) -> None:
    """Replace the data files atomically, as a well-behaved export job does."""
    for name, content in files.items():
        tmp = workdir / "data" / f".{name}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, workdir / "data" / name)


def daemon_config(workdir: Path, port: int, hook: Hook) -> str:
    return f"""
[server]
listen = "127.0.0.1:{port}"

[store]
url = "sqlite:///{workdir / 'monitor.db'}"

[rules]
paths = ["{workdir / 'rules'}"]
evaluation_interval = "1s"
watch = false
as_of = "2008-07"

[daemon]
shutdown_timeout = "5s"

[notify]
poll_interval = "0.2s"
[notify.retry]
initial_backoff = "0.2s"
max_backoff = "1s"
timeout = "3s"
lease = "10s"
[notify.route]
receiver = "hook"
group_by = ["alertname"]
group_wait = "0s"
group_interval = "0.1s"
repeat_interval = "1000h"
[[notify.receivers]]
name = "hook"
send_resolved = true
[[notify.receivers.webhook]]
url = "{hook.url()}"

[[sources]]
name = "mps-2008-09"
kind = "csv"
path = "{workdir / 'data' / 'indicators.csv'}"
layout = "long"
indicator_column = "indicator"
labels = {{force = "force"}}
period_column = "period"
value_column = "value"
denominator_column = "denominator"
provisional_column = "provisional"
interval = "1s"

[[sources]]
name = "ct_plan"
kind = "milestones"
path = "{workdir / 'data' / 'ct-milestones.yaml'}"
interval = "1s"
"""


def settle(db: Path, hook: Hook, firing: set[str], timeout: float = 60.0) -> bool:
    """Wait until the store shows ``firing``, every transition claimed, the outbox empty
    and nothing in flight, twice in a row half a second apart; return whether it did."""
    deadline = time.monotonic() + timeout
    calm = 0
    while time.monotonic() < deadline:
        try:
            now_firing = {r[0] for r in query(db, "SELECT id FROM alert WHERE state = 'firing'")}
            unclaimed = query(db, "SELECT COUNT(*) FROM alert_transition "
                                  "WHERE claimed_by IS NULL")[0][0]
            pending = query(db, "SELECT COUNT(*) FROM notification "
                                "WHERE status = 'pending'")[0][0]
        except Exception:  # the schema may not exist yet right after start
            now_firing, unclaimed, pending = set(), 1, 1
        with hook.lock:
            inflight = hook.inflight
        calm = calm + 1 if (now_firing == firing and not unclaimed and not pending
                            and not inflight) else 0
        if calm >= 2:
            return True
        time.sleep(0.5)
    return False
