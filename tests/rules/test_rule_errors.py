"""A broken rule: unhealthy with its error, the others still run, and its `on_error`
policy decides what happens to its alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from monitor.model import AlertState, month
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.data import Block
from monitor.rules.engine import Dataset, month_end
from monitor.rules.loader import load_rules

RULES = """\
indicators:
  - {{id: burglary, name: Burglary, direction: down, window: 3}}
  - {{id: gap, name: Gap, direction: neutral, window: 3}}
groups:
  - name: g
    rules:
      - {{alert: Works, indicator: burglary, when: {{level: {{above: 10}}}}}}
      - alert: Broken
        indicator: gap
        on_error: {policy}
        # a neutral indicator has no worsening direction: evaluation raises
        when: {{trend: {{test: mann_kendall, periods: 3, direction: worsening}}}}
"""


def dataset() -> Dataset:
    n = 6
    periods = np.arange(month("2008-01"), month("2008-01") + n)

    def block() -> Block:
        return Block([{"borough": "Camden"}], np.zeros(n, dtype=np.int64), periods,
                     np.full(n, 9.0), np.full(n, np.nan), np.zeros(n, dtype=bool),
                     np.zeros(n, dtype=np.int64))

    return Dataset({"burglary": block(), "gap": block()})


@pytest.mark.parametrize(("policy", "expected"), [
    pytest.param("keep_state", [], id="keep-state"),
    pytest.param("alerting", ["firing"], id="alerting"),
])
def test_a_failing_rule_is_unhealthy_and_the_others_still_run(
        tmp_path: Path, policy: str, expected: list[str]) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RULES.format(policy=policy))
    evaluator = Evaluator(load_rules([path]))
    result = evaluator.run(dataset(), {}, Cycle(at=month_end(month("2008-06")),
                                                now=datetime(2026, 1, 1, tzinfo=UTC)))
    assert "needs indicator \"gap\" to have a direction of good" in result.errors["Broken"]
    works = [r for r in result.records.values() if r.rule == "Works"]
    assert [r.state for r in works] == [AlertState.FIRING]
    broken = [r for r in result.records.values() if r.rule == "Broken"]
    assert [r.state.value for r in broken] == expected
    if broken:
        assert broken[0].labels["error"] == "evaluation"
        assert "cannot be evaluated" in broken[0].explanation
    health = {h.name: h for h in evaluator.publish(result).snapshot.rules}
    assert health["Broken"].health == "err" and health["Broken"].failures == 1
    assert health["Works"].health == "ok"


SPC_RULES = """\
indicators:
  - {id: burglary, name: Burglary, direction: down, window: 1}
groups:
  - name: g
    rules:
      - alert: BurglarySpecialCause
        indicator: burglary
        when: {spc: {signal: concern}}
        annotations:
          summary: "{{ spc_signal }} by SPC rule {{ spc_rule | number(0) }}"
"""


def test_annotations_see_the_spc_signal(tmp_path: Path) -> None:
    path = tmp_path / "spc.yaml"
    path.write_text(SPC_RULES)
    n = 24
    values = np.array([100.0, 102, 98, 101, 99, 100, 103, 97, 100, 101, 99, 100] * 2)
    values[-1] = 160  # far above the upper limit: a concern when down is good
    block = Block([{"borough": "Camden"}], np.zeros(n, dtype=np.int64),
                  np.arange(month("2007-01"), month("2007-01") + n), values,
                  np.full(n, np.nan), np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64))
    at = month_end(month("2008-12"))
    result = Evaluator(load_rules([path])).run(Dataset({"burglary": block}), {},
                                               Cycle(at=at, now=at))
    (record,) = result.records.values()
    assert record.annotations["summary"] == "concern by SPC rule 1"
    assert "outside the process limits" in record.explanation


RESOLVING_RULES = """
indicators:
  - id: arrests
    name: DV arrest rate
    unit: percent
    direction: up
    aggregation: rate
    window: 12
    targets:
      "2007/08": {kind: level, value: 67}
      "2008/09": {kind: level, value: 65}
groups:
  - name: g
    rules:
      - alert: BelowTarget
        indicator: arrests
        when: {level: {worse_than_target: true}}
        annotations:
          summary: "{{ value | number }} against a target of {{ target | number }}"
"""


def test_a_resolved_alert_says_the_value_and_target_that_resolved_it(tmp_path: Path) -> None:
    """Firing in March 2008 at 65.8% against 67%, resolved in April when the 2008/09
    target of 65% applies: the resolved record's summary and explanation both speak of
    April's figures, never March's summary beside April's explanation."""
    path = tmp_path / "r.yaml"
    path.write_text(RESOLVING_RULES)
    n = 24
    block = Block([{"force": "MPS"}], np.zeros(n, dtype=np.int64),
                  np.arange(month("2006-05"), month("2006-05") + n), np.full(n, 658.0),
                  np.full(n, 1000.0), np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64))
    evaluator = Evaluator(load_rules([path]))
    data = Dataset({"arrests": block})
    march, april = month_end(month("2008-03")), month_end(month("2008-04"))
    fired = evaluator.run(data, {}, Cycle(at=march, now=march))
    [record] = fired.records.values()
    assert record.state is AlertState.FIRING
    assert record.annotations["summary"] == "65.8 against a target of 67.0"
    resolved = evaluator.run(data, fired.records, Cycle(at=april, now=april))
    [transition] = resolved.transitions
    assert transition.to_state is AlertState.RESOLVED
    assert transition.annotations["summary"] == "65.8 against a target of 65.0"
    assert "target of 65%" in transition.explanation and "67" not in transition.explanation
