"""The store busy or locked, and the disk full while writing: each failure is one clear log
line and a metric, the loop goes on, and once the store can write again nothing is lost.

The busy store is real (another connection holds SQLite's write lock); the full disk is
a real tmpfs filled to the last byte. Mounting it needs root; where this process may not
mount (not root, or a container without the capability), the test runs itself again in
a user and mount namespace of its own (``unshare --user --map-root-user
--mount``), where an unprivileged user may mount a tmpfs. Where neither works (a
container that forbids both) it is skipped, and under CI it fails.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import needs
from tests.reliability.processes import integrity
from tests.reliability.rig import Rig, build_rig, copy_example, example_config, variant_b

T0 = datetime(2008, 8, 20, 9, 0, tzinfo=UTC)
STEP = timedelta(minutes=15)
CHANGED = {"DomesticViolenceArrestRateBelowTarget", "VictimSatisfactionBelowTarget",
           "VictimSatisfactionRankedLastInMSF", "CounterTerrorismMilestoneOverdue",
           "ResidentialBurglarySpecialCause"}


@contextmanager
def write_lock(db: Path) -> Iterator[None]:
    """Hold SQLite's write lock from another connection, as a second writer would."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[str]:
    """Return the ``error`` field of every captured record with ``message``."""
    return [str(getattr(r, "fields", {}).get("error", "")) for r in caplog.records
            if r.getMessage() == message]


def wait_until(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def changed_groups(rig: Rig, since: int) -> list[str]:
    return sorted(n["group_labels"]["alertname"] for n in rig.notifications()[since:])


def dv_value(rig: Rig) -> float:
    history = rig.store.observations.history("dv_arrests",
                                             {"force": "Metropolitan Police Service"})
    return next(p.value for p in history if p.period == 2008 * 12 + 6)  # 2008-07


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    copy_example(tmp_path)
    built = build_rig(tmp_path, example_config(tmp_path), T0)
    try:
        yield built
    finally:
        built.close()


def test_a_store_locked_by_another_writer_delays_every_stage_and_loses_nothing(
        rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    db = tmp_path / "monitor.db"
    rig.tick()
    seen = len(rig.notifications())
    before = dv_value(rig)
    variant_b(tmp_path / "data")
    rig.clock.advance(STEP)

    # 1. Polls: the ingest waits busy_timeout, fails, and the data stays as it was.
    with write_lock(db):
        results = [rig.poller.scheduled_poll(name) for name in rig.poller.names]
    assert [r.outcome for r in results if r is not None] == ["failed", "failed"]
    errors = logged(caplog, "poll failed: the store refused the write; previous data kept")
    assert len(errors) == 2 and all("the store is busy" in e for e in errors)
    assert rig.metric("monitor_source_polls_total", source="mps-2008-09",
                      outcome="failed") == 1
    assert dv_value(rig) == before
    results = [rig.poller.scheduled_poll(name) for name in rig.poller.names]
    assert [r.outcome for r in results if r is not None] == ["success", "success"]
    assert dv_value(rig) != before

    # 2. Evaluation: the cycle fails as a whole and the next one makes the same changes.
    with write_lock(db):
        rig.rules._safe_evaluate()
    assert rig.metric("monitor_rule_evaluation_cycle_failures_total") == 1
    assert any("the store is busy" in e for e in logged(
        caplog, "evaluation cycle failed; the next cycle evaluates again"))
    rig.rules._safe_evaluate()
    assert {r.rule for r in rig.last.transitions} == CHANGED

    # 3. The notification pipeline: nothing claimed while locked, everything after.
    with write_lock(db):
        rig.notifier.tick()
    assert rig.metric("monitor_notify_errors_total", stage="pipeline") == 1
    assert any("the store is busy" in e for e in logged(caplog, "notifier run failed; will retry"))
    rig.notifier.tick()

    # 4. Delivery by the real lane worker: it cannot lease while the lock is held.
    with write_lock(db):
        rig.notifier.start()
        assert wait_until(lambda: logged(caplog, "outbox unreachable; retrying"))
    assert all("the store is busy" in e for e in logged(caplog, "outbox unreachable; retrying"))
    assert (rig.metric("monitor_notify_errors_total", stage="outbox") or 0) >= 1
    rig.notifier.dispatcher.wake()
    assert wait_until(lambda: len(changed_groups(rig, seen)) >= len(CHANGED))
    rig.notifier.stop(2.0)
    assert changed_groups(rig, seen) == sorted(CHANGED)  # each exactly once
    assert rig.store.notify.counts() == {}
    assert integrity(db) == ("ok", [])


# --- a full disk ----------------------------------------------------------------------


IN_NAMESPACE = "MONITOR_TEST_MOUNT_NAMESPACE"  # set in the test's own namespace
UNSHARE = ["unshare", "--user", "--map-root-user", "--mount"]


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``path`` for the block (as root, or as the root of a
    user namespace)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(path)], capture_output=True, text=True, check=False)
    assert mounted.returncode == 0, f"mounting a tmpfs failed: {mounted.stderr.strip()}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def can_mount(probe: Path) -> bool:
    """Return whether this process may mount a tmpfs (root with the capability to, or
    the root of a user namespace): mount one at ``probe`` and unmount it."""
    probe.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                             capture_output=True, check=False)
    if mounted.returncode == 0:
        subprocess.run(["umount", str(probe)], check=False)
    return mounted.returncode == 0


def rerun_in_a_mount_namespace(test: str) -> None:
    """Run ``test`` again in a user and mount namespace of its own, where it may mount
    a tmpfs; fail with its output if it fails there. Skip (fail under CI) when this
    machine allows no such namespace either."""
    tried = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, check=False) \
        if shutil.which("unshare") else None
    if tried is None or tried.returncode != 0:
        why = tried.stderr.strip() if tried is not None else "no unshare (util-linux)"
        needs(f"a real full disk needs a tmpfs: this process may not mount one, and no user "
              f"namespace to mount one in ({why})")
    root = Path(__file__).resolve().parents[2]
    inner = subprocess.run(
        [*UNSHARE, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"{Path(__file__).relative_to(root)}::{test}"], cwd=root,
        env={**os.environ, IN_NAMESPACE: "1"}, capture_output=True, text=True, check=False)
    assert inner.returncode == 0, inner.stdout[-6000:] + inner.stderr[-2000:]
    assert "1 passed" in inner.stdout, inner.stdout[-2000:]


@contextmanager
def full(disk: Path) -> Iterator[None]:
    """Fill ``disk`` to the last byte with a ballast file; free it after the block."""
    ballast = disk / "ballast"
    with ballast.open("wb", buffering=0) as handle:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    try:
        yield
    finally:
        ballast.unlink()


def test_a_full_disk_fails_writes_cleanly_and_they_land_once_space_is_back(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if not can_mount(tmp_path / "probe"):
        assert not os.environ.get(IN_NAMESPACE), "no tmpfs mount in the test's own namespace"
        rerun_in_a_mount_namespace(
            "test_a_full_disk_fails_writes_cleanly_and_they_land_once_space_is_back")
        return
    caplog.set_level(logging.INFO)
    with ExitStack() as stack:
        store_disk = stack.enter_context(tmpfs(tmp_path / "store-disk", "16m"))
        out_disk = stack.enter_context(tmpfs(tmp_path / "out-disk", "1m"))
        copy_example(tmp_path / "work")
        work = tmp_path / "work"
        rig = build_rig(work, example_config(
            work, store_url=f"sqlite:///{store_disk / 'monitor.db'}",
            notifications=out_disk / "notifications.jsonl"), T0)
        stack.callback(rig.close)
        rig.tick()
        seen = len(rig.notifications())
        before = dv_value(rig)
        variant_b(work / "data")
        rig.clock.advance(STEP)

        # The store's disk is full: the poll fails, says so, and the store stays sound.
        with full(store_disk):
            results = [rig.poller.scheduled_poll(name) for name in rig.poller.names]
            assert "failed" in [r.outcome for r in results if r is not None]
            assert integrity(store_disk / "monitor.db") == ("ok", [])
        errors = logged(caplog, "poll failed: the store refused the write; previous data kept")
        assert errors and all("the store's disk is full" in e for e in errors)
        assert (rig.metric("monitor_source_polls_total", source="mps-2008-09",
                           outcome="failed") or 0) >= 1
        assert dv_value(rig) == before
        rig.clock.advance(STEP)
        results = [rig.poller.scheduled_poll(name) for name in rig.poller.names]
        assert all(r.ok for r in results if r is not None)
        assert dv_value(rig) != before

        # The notification file's disk is full: delivery fails, is retried, lands once.
        rig.rules.evaluate()
        rig.notifier.process_transitions()
        with full(out_disk):
            outcomes = rig.notifier.dispatch()
        # A small message may still fit in the slack of the file's last page.
        failed = [o for o in outcomes if o.outcome == "failed"]
        assert failed and {o.outcome for o in outcomes} <= {"failed", "delivered"}
        assert rig.metric("monitor_notifications_total", receiver="local", integration="file",
                          outcome="failed") == len(failed)
        failures = [r for r in caplog.records
                    if r.getMessage() == "notification failed; will retry"]
        assert failures and "No space left on device" in str(failures[0].fields["error"])
        rig.clock.advance(timedelta(minutes=5))
        assert {o.outcome for o in rig.notifier.dispatch()} == {"delivered"}
        lines = (out_disk / "notifications.jsonl").read_text().splitlines()
        assert all(json.loads(line) for line in lines)  # whole lines only
        assert changed_groups(rig, seen) == sorted(CHANGED)  # each exactly once
        assert integrity(store_disk / "monitor.db") == ("ok", [])
