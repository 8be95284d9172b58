"""A rule group with its own `interval` runs that often; new data runs it at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.clock import FixedClock
from monitor.rules.service import RuleService
from monitor.store import open_store

RULES = """\
indicators:
  - {id: burglary, name: Burglary, direction: down}
groups:
  - name: every-cycle
    rules:
      - {alert: Fast, indicator: burglary, when: {level: {above: 10}}}
  - name: hourly
    interval: 1h
    rules:
      - {alert: Slow, indicator: burglary, when: {level: {above: 10}}}
"""


def test_a_group_with_an_interval_runs_that_often(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULES)
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    service = RuleService(store, [str(tmp_path / "r.yaml")], clock, CollectorRegistry())
    service.load()

    def ran() -> dict[str, int]:
        assert service.evaluator is not None
        return {name: s.evaluations
                for (_group, name), s in service.evaluator.engine.stats.items()}

    service.evaluate()
    assert ran() == {"Fast": 1, "Slow": 1}
    clock.advance(timedelta(minutes=1))
    service.evaluate()
    assert ran() == {"Fast": 2, "Slow": 1}
    service.request_evaluation()  # new data: everything is due
    service.evaluate()
    assert ran() == {"Fast": 3, "Slow": 2}
    clock.advance(timedelta(hours=1))
    service.evaluate()
    assert ran() == {"Fast": 4, "Slow": 3}
    store.close()
