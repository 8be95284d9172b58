"""One evaluation: what the daemon does is what ``monitor backtest`` predicts, and what
it ends with does not depend on the order its sources happen to be polled in.

Both bundled examples run on their shipped configs (store and port moved to a temp
folder). The daemon is the daemon's own assembly (``App.assemble`` or ``App.start``);
the backtest is the real CLI (``monitor.cli.main``) on the store the daemon filled.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.cli import main
from monitor.clock import FixedClock
from monitor.model import AlertState, Frequency, month
from monitor.rules.engine import month_end
from monitor.settings import load
from tests.examples.daemons import assembled, example_config

RANGES = {"london": ("2009-01", "2016-12"), "mps": ("2007-04", "2008-07")}
POLLED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _event(period: str, alertname: str, event: str, labels: dict[str, str],
           value: float | None, explanation: str) -> tuple[Any, ...]:
    return (period, alertname, event, tuple(sorted(labels.items())), value, explanation)


@pytest.mark.parametrize("example", ["london", "mps"])
def test_the_daemon_stepped_month_by_month_makes_exactly_the_transitions_backtest_prints(
        example: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = example_config(example, tmp_path)
    clock = FixedClock(POLLED_AT)
    app = assembled(config, clock)
    assert app.poller is not None and app.rules is not None and app.store is not None
    try:
        assert all(r.ok for r in app.poller.poll_all())
        start, end = RANGES[example]
        daemon: list[tuple[Any, ...]] = []
        for period in range(month(start), month(end) + 1):
            label = Frequency.MONTHLY.label(period)
            app.rules.as_of = label  # `rules.as_of` of that month, the clock at its end
            clock.set(month_end(period))
            result = app.rules.evaluate()
            assert result is not None and not result.errors
            daemon.extend(_event(label, t.rule, t.to_state.value, t.labels, t.value,
                                 t.explanation)
                          for t in result.transitions
                          if t.to_state in (AlertState.FIRING, AlertState.RESOLVED))
    finally:
        app.stop()
    code = main(["backtest", "--config", str(config), "--from", start, "--to", end,
                 "--format", "json"], clock=clock)
    out = capsys.readouterr()
    assert code == 0, out.err
    predicted = [_event(e["period"], e["alertname"], e["event"], e["labels"], e["value"],
                        e["explanation"]) for e in json.loads(out.out)["events"]]
    assert len(daemon) > 10  # both examples fire and resolve alerts over their range
    assert {e[2] for e in daemon} == {"firing", "resolved"}
    assert daemon == predicted


def _start_in_random_order(config: Path, seed: int) -> App:
    """Start the real daemon (scheduler, HTTP) with its sources in a shuffled order.

    It runs on the wall clock, as its scheduler does; what it ends with does not depend
    on the date (the example's ``rules.as_of`` fixes the month judged)."""
    settings = load(config, environ={})
    random.Random(seed).shuffle(settings.sources)
    app = App(settings, config, registry=CollectorRegistry())
    app.start()
    return app


def _settled(app: App, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rules, poller = app.rules, app.poller
        if rules is not None and poller is not None and rules.last is not None \
                and not poller.unsettled() and rules.idle():
            return
        time.sleep(0.05)
    raise AssertionError("the daemon did not finish its first polls and evaluation")


@pytest.mark.slow  # twenty real daemons, one after another
def test_twenty_fresh_starts_in_random_poll_orders_end_with_the_same_alerts(
        tmp_path: Path) -> None:
    outcomes, annotations = [], []
    for seed in range(20):
        workdir = tmp_path / f"start-{seed}"
        workdir.mkdir()
        app = _start_in_random_order(example_config("london", workdir), seed)
        try:
            _settled(app)
            assert app.store is not None and app.rules is not None
            stored = app.store.alerts.load()
            transitions = app.store.alerts.transitions()
        finally:
            app.stop()
        firing = [(r.rule, tuple(sorted(r.labels.items()))) for r in stored.values()
                  if r.state is AlertState.FIRING]
        duplicated = [k for k, n in Counter(firing).items() if n > 1]
        assert duplicated == [], f"start {seed}: alerts stored twice: {duplicated}"
        # Nothing was judged on partial data: no alert went pending or firing and then
        # back during start-up.
        assert {t["to_state"] for t in transitions} <= {"pending", "firing"}, seed
        assert len({t["alert_id"] for t in transitions
                    if t["to_state"] == "firing"}) == len(firing), seed
        fed_by = frozenset((r.rule, tuple(sorted(r.labels.items())),
                            r.annotations.get("sources", "")) for r in stored.values())
        outcomes.append(frozenset(firing))
        annotations.append(fed_by)
    assert len(set(outcomes)) == 1, "the firing alerts depend on the poll order"
    assert len(set(annotations)) == 1, "the sources named depend on the poll order"
    assert {sources for _r, _l, sources in annotations[0]} == {
        "london-2008-taxonomy, london-2010-taxonomy, london-2022-taxonomy, london-total"}
    alertnames = Counter(rule for rule, _labels in outcomes[0])
    assert alertnames["BurglaryRisingWhileAcquisitiveCrimeFalls"] >= 1
    assert len(outcomes[0]) == 13
