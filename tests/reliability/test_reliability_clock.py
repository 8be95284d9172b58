"""The wall clock jumping forwards and backwards: each jump is one log line and a metric,
timers set before a jump back do not wait as long as the jump, and nothing is lost.

The last test runs the real daemon under libfaketime and moves its wall clock two hours
back, then three hours forward, while the data changes. Under ``make test-future`` the
daemon's clock starts where the test run's is (a year ahead) and jumps from there.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.clockwatch import ClockWatch, clock_offset
from tests.conftest import REPO, free_port, needs
from tests.reliability.example_daemon import Variants, daemon_config, install, settle
from tests.reliability.processes import Hook, integrity, query, start_daemon, stop, wait_for_text
from tests.reliability.rig import Rig, build_rig, copy_example, example_config, variant_b

T0 = datetime(2008, 8, 20, 9, 0, tzinfo=UTC)
FAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))),
                Path("/usr/lib/faketime/libfaketimeMT.so.1"))


# --- noticing a jump --------------------------------------------------------------------


@pytest.mark.parametrize(("wall_step", "mono_step", "jump"), [
    pytest.param(1.0, 1.0, 0.0, id="clocks-agree"),
    pytest.param(2.5, 1.0, 0.0, id="within-tolerance"),
    pytest.param(3601.0, 1.0, 3600.0, id="forward-an-hour"),
    pytest.param(-7199.0, 1.0, -7200.0, id="back-two-hours"),
])
def test_it_notices_wall_clock_jumps(wall_step: float, mono_step: float, jump: float,
                                     caplog: pytest.LogCaptureFixture) -> None:
    clocks = {"wall": 1_000_000.0, "mono": 50.0}
    seen: list[float] = []
    registry = CollectorRegistry()
    watch = ClockWatch(registry, seen.append, wall=lambda: clocks["wall"],
                       monotonic=lambda: clocks["mono"])
    clocks["wall"] += wall_step
    clocks["mono"] += mono_step
    assert watch.check() == pytest.approx(jump)
    assert seen == ([pytest.approx(jump)] if jump else [])
    direction = "forward" if jump > 0 else "backward"
    assert registry.get_sample_value("monitor_clock_jumps_total",
                                     {"direction": direction}) == (1.0 if jump else 0.0)
    jumps = [r for r in caplog.records if r.getMessage().startswith("wall clock jumped")]
    assert len(jumps) == (1 if jump else 0)


def test_the_offset_is_what_the_wall_clock_moved_beyond_the_monotonic_clock() -> None:
    assert clock_offset(100.0, 40.0, 7.0, 8.0) == -61.0


# --- in process: a retry set before the jump ---------------------------------------------


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook(replies=[503])
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def rig(tmp_path: Path, hook: Hook) -> Iterator[Rig]:
    route = """
[notify.route]
receiver = "ops"
group_by = ["alertname"]
group_wait = "0s"
group_interval = "1m"
repeat_interval = "1000h"
"""
    receivers = f"""
[[notify.receivers]]
name = "ops"
[[notify.receivers.webhook]]
url = "{hook.url()}"
"""
    copy_example(tmp_path)
    built = build_rig(tmp_path, example_config(tmp_path, route=route, receivers=receivers), T0)
    try:
        yield built
    finally:
        built.close()


def test_after_a_jump_back_retries_and_group_timers_are_due_at_once(
        rig: Rig, hook: Hook, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rig.tick()  # the first message gets a 503 and waits for its retry
    pending = rig.store.notify.counts()
    assert sum(pending.values()) == 1

    rig.clock.set(T0 - timedelta(hours=2))  # the wall clock jumps back two hours
    assert rig.notifier.dispatch() == []  # the retry would wait two hours
    rig.notifier.clock_jumped(-7200.0)
    jumped = [r for r in caplog.records
              if r.getMessage() == "timers set before the clock jumped back are due now"]
    assert [r.fields for r in jumped] == [{"messages": 1, "groups": 10}]  # type: ignore[attr-defined]
    assert [o.outcome for o in rig.notifier.dispatch()] == ["delivered"]
    assert rig.store.notify.counts() == {}

    # New data: the changed groups go out group_interval after now, not after the jump.
    variant_b(tmp_path / "data")
    sent = len(hook.deliveries)
    rig.tick()
    rig.tick(timedelta(minutes=1))
    changed = {d.body["groupLabels"]["alertname"] for d in hook.deliveries[sent:]}
    assert "DomesticViolenceArrestRateBelowTarget" in changed
    assert "ResidentialBurglarySpecialCause" in changed
    assert rig.store.notify.counts() == {}


# --- the real daemon under libfaketime ------------------------------------------------------


def run_offset() -> float:
    """Return the seconds this test run's own clock is moved by: 0, or the relative
    ``FAKETIME`` that ``make test-future`` sets (``+365d``)."""
    value = os.environ.get("FAKETIME", "")
    if not value:
        return 0.0
    found = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)([smhdy]?)", value)
    if not found:
        pytest.fail(f"FAKETIME={value!r} is not a relative offset like +365d")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}[found.group(2)]
    return float(found.group(1)) * unit


def metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.slow
def test_the_daemon_keeps_working_when_its_wall_clock_jumps(
        tmp_path: Path, example_variants: tuple[Variants, dict[str, set[str]]]) -> None:
    if not FAKETIME.exists():
        needs("needs libfaketime (apt-get install libfaketime; CI installs it)")
    hook = Hook()
    try:
        data, expected = example_variants
        workdir = copy_example(tmp_path / "daemon")
        port = free_port()
        config = workdir / "config.toml"
        config.write_text(daemon_config(workdir, port, hook))
        # The daemon's offset from the real clock: the run's own, then that and a jump. The
        # file is read only without FAKETIME, so the run's FAKETIME is not passed on.
        base = run_offset()
        offset_file = tmp_path / "faketime"
        offset_file.write_text(f"{base:+.0f}\n")
        log_path = workdir / "daemon.log"
        proc = start_daemon(config, workdir, log_path, env={
            "LD_PRELOAD": str(FAKETIME), "FAKETIME_TIMESTAMP_FILE": str(offset_file),
            "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME": None,
            # time.sleep under libfaketime with a jump ahead: see tests/faketime.
            "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "faketime")])})
        try:
            assert wait_for_text(log_path, 'msg="daemon started"', proc=proc, timeout=60)
            db = workdir / "monitor.db"
            assert settle(db, hook, expected["A"])
            for shift, variant, direction in ((-7200, "B", "backward"),
                                              (3600, "A", "forward")):
                offset_file.write_text(f"{base + shift:+.0f}\n")
                assert wait_for_text(log_path, f"direction={direction}", proc=proc)
                install(workdir, data[variant])
                assert settle(db, hook, expected[variant]), log_path.read_text()[-3000:]
                assert metric(port, f'monitor_clock_jumps_total{{direction="{direction}"}}') == 1
            status = stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        output = log_path.read_text()
        assert status == 0, output[-3000:]
        assert output.count('msg="wall clock jumped; making timers due now"') == 2
        assert integrity(db) == ("ok", [])
        statuses = dict(query(db, "SELECT status, COUNT(*) FROM notification GROUP BY status"))
        assert set(statuses) <= {"delivered", "superseded"}
        last = {}
        for delivery in hook.deliveries:
            for alert in delivery.body["alerts"]:
                last[alert["fingerprint"]] = alert["status"]
        assert {a for a, s in last.items() if s == "firing"} == expected["A"]
    finally:
        hook.close()
        time.sleep(0)
