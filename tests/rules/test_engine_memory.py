"""What the engine keeps between cycles is bounded by the alerts it holds, not by every
series that ever alerted (the month-long soak's growth, docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

from monitor.alerts.state import AlertRecord
from monitor.model import AlertState, Observation, month
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.engine import month_end
from monitor.rules.inputs import DatasetCache
from monitor.rules.loader import load_rules
from monitor.store import Store

AREAS = 30
RULES = """
indicators:
  - {id: burglary, name: Burglary, window: 1}
groups:
  - name: g
    rules:
      - {alert: High, indicator: burglary, when: {level: {above: 5}}}
"""


def test_a_series_that_alerted_once_is_not_remembered_after_its_alert_is_forgotten(
        store: Store, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    ruleset = load_rules([tmp_path / "rules.yaml"])
    evaluator = Evaluator(ruleset)
    cache = DatasetCache(store)
    records: dict[str, AlertRecord] = {}
    start = month("2014-01")
    # Each month a different area is high: it fires, resolves the next month and is
    # forgotten a month later (24 hours after resolving), so at most a few alerts are held.
    for k in range(AREAS):
        period = start + k
        store.observations.ingest("s", [
            Observation("burglary", (("area", f"a{i:02d}"),), period, 9.0 if i == k else 1.0)
            for i in range(AREAS)], now=month_end(period))
        at = month_end(period)
        result = evaluator.run(cache.get(ruleset, []), records, Cycle(at=at, now=at))
        records = dict(result.records)
        firing = [r.labels["area"] for r in records.values()
                  if r.state is AlertState.FIRING]
        assert firing == [f"a{k:02d}"]
    assert len(records) <= 3
    # The rule's per-series memory holds the identities of the alerts this cycle started
    # from (the last three areas), not of all 30 areas that ever alerted.
    held = evaluator.engine._alerts[("g", "High")]
    assert sorted(held.labels[row]["area"] for row in held.ids) == ["a27", "a28", "a29"]
    assert len(held.slot) == 3
