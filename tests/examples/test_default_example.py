"""The bundled example, end to end: what a new user sees after `make run`.

A real daemon runs `config.example.toml` (file sources, SQLite, file and console
receivers); the scorecard page in headless Chromium, `/metrics` and the delivered
notifications must show what the seed's comments say. `monitor eval` prints the same
scorecard as a table.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.http.conftest import chromium_dom
from tests.rules.test_seed_scorecard import EXPECTED_FIRING, SEED_ROWS

REPO = Path(__file__).resolve().parents[2]
MPS = "Metropolitan Police Service"


def _env(tmp: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["MONITOR_SERVER__LISTEN"] = f"127.0.0.1:{port}"
    env["MONITOR_STORE__URL"] = f"sqlite:///{tmp / 'var' / 'monitor.db'}"
    return env


def _workdir(tmp: Path) -> Path:
    """A working directory like a fresh clone's: the example config, rules and data."""
    for name in ("examples", "rules", "config.example.toml"):
        (tmp / name).symlink_to(REPO / name)
    return tmp


class Daemon:
    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.workdir = workdir

    def notifications(self) -> str:
        path = self.workdir / "var" / "notifications.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    workdir = _workdir(tmp_path_factory.mktemp("fresh-clone"))
    port = free_port()
    log = (workdir / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config",
                             "config.example.toml"], cwd=workdir, env=_env(workdir, port),
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    running = Daemon(url, workdir)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = running.notifications()
            if all(name in text for name in EXPECTED_FIRING):
                break
            time.sleep(0.2)
        yield running
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        log.close()


def test_the_scorecard_page_shows_every_seed_row_with_its_status(daemon: Daemon) -> None:
    dom = chromium_dom(f"{daemon.url}/scorecard")
    rows = dict(re.findall(r'data-indicator="([a-z_]+)" data-series="[0-9a-f]+" '
                           r'data-status="([a-z]+)"', dom))
    for param in SEED_ROWS:
        indicator, _value, _target, status, _facts = param.values
        assert rows.get(indicator) == status.value, indicator
    assert "Robbery is down 22.3% (9,828 offences)" in dom
    assert "Data for Jan-08 to Mar-08 is provisional" in dom


def test_metrics_carry_the_seed_statuses(daemon: Daemon) -> None:
    text = httpx.get(f"{daemon.url}/metrics").text
    assert f'monitor_indicator_status{{indicator="victim_satisfaction",force="{MPS}"}} 3' \
        in text
    assert f'monitor_indicator_status{{indicator="serious_acquisitive_crime",force="{MPS}"}} 1' \
        in text
    value = re.search(r'monitor_indicator_value\{indicator="serious_acquisitive_crime",'
                      rf'force="{MPS}"\}} (\S+)', text)
    assert value is not None and round(float(value.group(1)), 1) == -7.8


@pytest.mark.parametrize(("alertname", "phrase"), [
    pytest.param("VictimSatisfactionBelowTarget", "77.0% over the rolling year to Jun-08, "
                 "below its 2008/09 target of 78.9%", id="satisfaction-below-target"),
    pytest.param("SatisfactionGapAboveTarget", "4.2pp", id="gap-above-target"),
    pytest.param("BurglaryRisingWhileAcquisitiveCrimeFalls",
                 "Residential burglary is up 0.6% (366 offences)", id="burglary-vs-sac"),
    pytest.param("AcquisitiveCrimeDetectionRateBelowTarget", "11.1%", id="sd-rate"),
    pytest.param("KsiDataProvisional", "Jan-08 to Mar-08 is provisional", id="ksi"),
    pytest.param("DomesticViolenceArrestRateBelowTarget", "65.8%", id="dv-arrests"),
    pytest.param("YouthViolenceReductionShortOfTarget", "down 5.1%", id="youth-violence"),
    pytest.param("CounterTerrorismMilestoneOverdue", "days overdue", id="ct-milestones"),
    pytest.param("ClassADetectionsBelowTargetWhileCocaineAndHeroinAbove",
                 "Cocaine (inc. crack) is 137", id="class-a"),
])
def test_the_delivered_notifications_say_what_the_seed_says(daemon: Daemon, alertname: str,
                                                           phrase: str) -> None:
    text = daemon.notifications()
    assert f"] {alertname}" in text
    section = text.split(f"] {alertname}", 1)[1].split("\n[", 1)[0]
    assert phrase in section


def test_monitor_eval_prints_the_scorecard_as_a_table(tmp_path: Path) -> None:
    workdir = _workdir(tmp_path)
    result = subprocess.run([sys.executable, "-m", "monitor", "eval", "--at", "2008-07",
                             "--format", "table", "--poll", "--config", "config.example.toml"],
                            cwd=workdir, env=_env(workdir, free_port()), capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for param in SEED_ROWS:
        indicator, value, target, status, facts = param.values
        row = next(i for i, line in enumerate(lines)
                   if f" {value} " in line and status.value.upper() in line
                   and target[:20] in line)
        comment = lines[row + 1]
        for fact in facts:
            assert fact in comment, (indicator, comment)
    assert f"Alerts as of 2008-07 ({sum(EXPECTED_FIRING.values())}):" in result.stdout


def test_monitor_eval_piped_into_a_reader_that_stops_early_ends_quietly(
        tmp_path: Path) -> None:
    # `monitor eval --format json | head -1`: the reader closes the pipe before the
    # command is done writing. The command stops, with a shell's SIGPIPE status and
    # without a traceback on the terminal.
    workdir = _workdir(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "monitor", "eval", "--at", "2008-07",
                                "--format", "json", "--poll", "--config",
                                "config.example.toml"],
                               cwd=workdir, env=_env(workdir, free_port()),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the first line
    errors = process.stderr.read()
    assert process.wait(timeout=120) == 128 + signal.SIGPIPE, errors
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors
