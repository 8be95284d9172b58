"""The real daemon at scale: 50,000 series, more alerts firing than series, both stores.

The daemon is assembled as ``monitor run`` assembles it (``App.assemble``) on the
workload of ``benchmarks/bench_daemon.py``: a wide CSV of generated monthly series polled
from a real HTTP server on loopback, ten KPI rules per indicator with a composite joined
on ``area``, notifications grouped by rule to a real webhook on loopback. Through a first
cycle and the cycle after one new month for every series, every transition must be
persisted, claimed and notified (the receiver told of every firing alert and of every
resolution), with no store error. No timing is asserted: bench_daemon prints those.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from benchmarks.bench_daemon import Server, Workload, config, yyyymm
from monitor.app import App
from monitor.clock import FixedClock
from monitor.model import AlertState
from monitor.rules.engine import Evaluation
from monitor.settings import load

pytestmark = [pytest.mark.slow, pytest.mark.scale]  # 50,000 series, two full cycles a store

SERIES = 50_000


def _cycle(app: App) -> Evaluation:
    assert app.rules is not None and app.notifier is not None
    result = app.rules.evaluate()
    assert result is not None
    app.notifier.process_transitions()
    app.notifier.dispatch()
    return result


def _told(app: App) -> tuple[set[str], set[str]]:
    """Return the alert ids the notification log says the receiver was told are firing,
    and resolved."""
    assert app.store is not None
    firing: set[str] = set()
    resolved: set[str] = set()
    with app.store.engine.connect() as conn:
        for told_firing, told_resolved in conn.execute(text(
                "SELECT firing, resolved FROM notification_log")):
            firing.update(json.loads(told_firing))
            resolved.update(json.loads(told_resolved))
    return firing, resolved


def _check_persisted(app: App, result: Evaluation, transitions_before: int) -> int:
    """Every record stored as evaluated, every transition stored and claimed; return the
    transitions now stored."""
    assert app.store is not None and app.rules is not None
    stored = app.store.alerts.load()
    assert stored.keys() == result.records.keys()
    assert {k: r.state for k, r in stored.items()} == \
        {k: r.state for k, r in result.records.items()}
    with app.store.engine.connect() as conn:
        total, unclaimed = conn.execute(text(
            "SELECT COUNT(*), COUNT(*) - COUNT(claimed_by) FROM alert_transition")).one()
    assert total == transitions_before + len(result.transitions)
    assert unclaimed == 0
    return int(total)


def _check_no_errors(app: App, registry: CollectorRegistry) -> None:
    assert app.store is not None
    assert registry.get_sample_value("monitor_rule_evaluation_cycle_failures_total") == 0
    counts = app.store.notify.counts()
    assert counts == {}, f"messages left pending or dead: {counts}"
    for stage in ("pipeline", "outbox"):
        assert not registry.get_sample_value("monitor_notify_errors_total", {"stage": stage})


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql",
                                                         marks=pytest.mark.postgres)])
def test_the_daemon_persists_and_notifies_every_transition_of_50000_series(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}" if kind == "sqlite" else \
        request.getfixturevalue("postgres_url")
    workload = Workload(SERIES, 36)
    server = Server()
    server.body = workload.csv()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "scale.yaml").write_text(workload.rules())
    path = tmp_path / "config.toml"
    path.write_text(config(tmp_path, url, server.port))
    clock = FixedClock(datetime.strptime(yyyymm(workload.last + 1) + "05", "%Y%m%d")
                       .replace(hour=6, tzinfo=UTC))
    registry = CollectorRegistry()
    app = App(load(path, environ={}), path, clock=clock, registry=registry)
    app.assemble()
    assert app.poller is not None
    try:
        polled = [app.poller.poll(name) for name in app.poller.names]
        assert [p.error for p in polled] == [""]
        assert polled[0].stored.inserted == SERIES * 36

        first = _cycle(app)
        firing = {k for k, r in first.records.items() if r.state == AlertState.FIRING}
        assert len(firing) >= SERIES
        transitions = _check_persisted(app, first, 0)
        told_firing, _ = _told(app)
        assert told_firing == firing
        assert server.alerts == len(firing)  # each firing alert in one group, sent once
        _check_no_errors(app, registry)

        workload.add_month()
        server.body = workload.csv()
        clock.advance(timedelta(days=31))
        polled = [app.poller.poll(name) for name in app.poller.names]
        assert polled[0].stored.inserted == SERIES
        month = _cycle(app)
        assert month.transitions, "a new month changes some alerts"
        _check_persisted(app, month, transitions)
        now_firing = {k for k, r in month.records.items() if r.state == AlertState.FIRING}
        ended = {t.alert_id for t in month.transitions
                 if t.from_state == AlertState.FIRING and t.to_state != AlertState.FIRING}
        assert ended, "a new month resolves some alerts"
        told_firing, told_resolved = _told(app)
        assert told_firing == now_firing
        assert ended <= told_resolved
        _check_no_errors(app, registry)
    finally:
        app.stop()
        server.close()
