"""A real Prometheus scrapes the served app; values come back through its HTTP API."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.model import Status
from tests.conftest import free_port
from tests.http.conftest import Served, need_binary


@pytest.fixture
def prometheus(mps: Served, tmp_path: Path) -> Iterator[str]:
    """Prometheus scraping the daemon every second, on temporary storage; yields its URL."""
    binary = need_binary("prometheus")
    target = mps.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: kpi-monitor
    static_configs:
      - targets: ["{target}"]
""")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "Prometheus did not become ready in 30 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(url: str, promql: str, timeout: float = 30) -> list[dict[str, Any]]:
    """Return the first non-empty instant-query result, waiting for scrapes to land."""
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
        assert body["status"] == "success", body
        if body["data"]["result"]:
            return list(body["data"]["result"])
        assert time.monotonic() < deadline, f"no result for {promql} within {timeout} s"
        time.sleep(0.3)


def test_prometheus_scrapes_the_indicators_and_reads_them_back(mps: Served,
                                                               prometheus: str) -> None:
    with mps.client() as client:
        listed = client.get("/api/v1/series").json()["series"]
    subject = {"force": "Metropolitan Police Service"}
    mine = {s["indicator"]: s for s in listed if s["labels"] == subject}
    [up] = query(prometheus, 'up{job="kpi-monitor"} == 1')
    assert up["value"][1] == "1"
    selector = 'indicator="victim_satisfaction",force="Metropolitan Police Service"'
    [value] = query(prometheus, f"monitor_indicator_value{{{selector}}}")
    assert float(value["value"][1]) == pytest.approx(mine["victim_satisfaction"]["value"],
                                                     rel=1e-12)
    assert value["metric"]["job"] == "kpi-monitor"
    [status] = query(prometheus, f"monitor_indicator_status{{{selector}}}")
    assert int(status["value"][1]) == Status.RED.code == mine["victim_satisfaction"][
        "status_code"]
    reds = query(prometheus, f"count(monitor_indicator_status == {Status.RED.code})")
    assert int(reds[0]["value"][1]) == sum(1 for s in listed if s["status"] == "red")
    [change] = query(prometheus, 'monitor_indicator_change_ratio{indicator="robbery",'
                                 'force="Metropolitan Police Service",window="12"}')
    assert float(change["value"][1]) == pytest.approx(mine["robbery"]["changes"]["12"],
                                                      rel=1e-12)
