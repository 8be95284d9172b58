"""The daemon as a real process: becomes ready, reloads on SIGHUP, stops cleanly.

Waits are bounds against a hang, never timings: this file runs beside the whole suite in
.ci/run (and under xdist), where a start or a stop can take many seconds of wall time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = "planted-Secret-4f9a1c"


def config_text(tmp_path: Path, port: int, busy_timeout: str = "5s") -> str:
    return f"""
[server]
listen = "127.0.0.1:{port}"
api_token = "{SECRET}"

[store]
url = "sqlite:///{tmp_path / 'monitor.db'}"
busy_timeout = "{busy_timeout}"

[rules]
paths = []
"""


BOUND = 90.0


def wait_ready(port: int, timeout: float = BOUND) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready within {timeout}s")


@pytest.fixture
def daemon(tmp_path: Path, port: int) -> Iterator[tuple[subprocess.Popen[str], Path, int]]:
    config = tmp_path / "config.toml"
    config.write_text(config_text(tmp_path, port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(config)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, config, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_it_serves_metrics_and_readiness_then_stops_with_status_0(
        daemon: tuple[subprocess.Popen[str], Path, int]) -> None:
    proc, _config, port = daemon
    wait_ready(port)
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'monitor_build_info{version="0.1.0"} 1.0' in metrics
    assert "monitor_ready 1.0" in metrics
    assert httpx.get(f"http://127.0.0.1:{port}/-/healthy").text == "OK\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=BOUND) == 0
    output = proc.stdout.read() if proc.stdout else ""
    assert 'msg="daemon stopped"' in output


def test_sigterm_stops_it_cleanly(daemon: tuple[subprocess.Popen[str], Path, int]) -> None:
    proc, _config, port = daemon
    wait_ready(port)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=BOUND) == 0


def test_a_bad_reload_keeps_the_running_config_and_leaks_no_secret(
        daemon: tuple[subprocess.Popen[str], Path, int], tmp_path: Path) -> None:
    proc, config, port = daemon
    wait_ready(port)
    # pydantic echoes rejected input in its messages: the secret must still not show.
    config.write_text(config_text(tmp_path, port, busy_timeout=SECRET))
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + BOUND
    metrics = ""
    while time.monotonic() < deadline:
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        if "monitor_config_last_reload_successful 0.0" in metrics:
            break
        time.sleep(0.1)
    assert "monitor_config_last_reload_successful 0.0" in metrics
    assert httpx.get(f"http://127.0.0.1:{port}/-/ready").status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=BOUND) == 0
    output = proc.stdout.read() if proc.stdout else ""
    assert "config reload failed" in output
    assert "<redacted>" in output
    assert SECRET not in output


def test_reload_over_http_needs_the_bearer_token(
        daemon: tuple[subprocess.Popen[str], Path, int]) -> None:
    _proc, _config, port = daemon
    wait_ready(port)
    url = f"http://127.0.0.1:{port}/-/reload"
    assert httpx.post(url).status_code == 401
    assert httpx.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.post(url, headers={"Authorization": f"Bearer {SECRET}"})
    assert ok.status_code == 200
    assert ok.json() == {"reloaded": True, "message": "reloaded"}


def test_a_second_daemon_on_the_same_sqlite_file_refuses_to_start(
        daemon: tuple[subprocess.Popen[str], Path, int], tmp_path: Path) -> None:
    _proc, config, port = daemon
    wait_ready(port)
    other = tmp_path / "other.toml"
    other.write_text(config.read_text().replace(f"127.0.0.1:{port}", "127.0.0.1:1"))
    result = subprocess.run([sys.executable, "-m", "monitor", "run", "--config", str(other)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert "already used by PID" in result.stderr
