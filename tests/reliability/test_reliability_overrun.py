"""A cycle longer than its interval is reported — once in the log, in the metrics and on
the Rules page, with its figures — and the report ends when the cycles keep up again."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.clock import FixedClock
from monitor.http.server import HttpServer, create_app
from monitor.observing import DaemonView
from monitor.settings import load
from tests.conftest import free_port
from tests.reliability.rig import copy_example, example_config

AT = datetime(2008, 8, 5, 6, 0, tzinfo=UTC)


def test_it_reports_cycles_that_overrun_their_interval(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    copy_example(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(example_config(tmp_path), encoding="utf-8")
    clock = FixedClock(AT)
    registry = CollectorRegistry()
    app = App(load(config, environ={}), config, clock=clock, registry=registry)
    app.assemble()
    assert app.poller is not None and app.rules is not None
    port = free_port()
    server = HttpServer(create_app(app, DaemonView(app), clock=clock), "127.0.0.1", port)
    server.start()
    pages = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        for name in app.poller.names:
            app.poller.poll(name)
        app.rules.interval = 0.0  # every cycle takes longer than that
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                clock.advance(timedelta(minutes=1))
                app.rules.evaluate()
        warnings = [r for r in caplog.records if "took longer than" in r.getMessage()]
        assert len(warnings) == 1
        assert registry.get_sample_value("monitor_rule_evaluation_overruns_total") == 3
        assert registry.get_sample_value("monitor_rule_evaluation_overrunning") == 1
        overrun = app.rules.snapshot().overrun
        assert overrun is not None
        assert (overrun.cycles, overrun.interval, overrun.since) == (3, 0.0,
                                                                     AT + timedelta(minutes=1))
        assert overrun.series > 0 and overrun.alerts > 0
        page = pages.get("/rules")
        assert 'data-overrun="3"' in page.text
        assert "Cycles overrun their interval" in page.text

        app.rules.interval = 3600.0
        app.rules.evaluate()
        assert app.rules.snapshot().overrun is None
        assert registry.get_sample_value("monitor_rule_evaluation_overrunning") == 0
        page = pages.get("/rules")
        assert "data-overrun" not in page.text
    finally:
        pages.close()
        server.stop(1.0)
        app.stop()
