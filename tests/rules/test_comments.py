"""What a scorecard comment says, sentence by sentence, on small made-up series.

Each sentence kind (docs/rules.md, "What a comment says") comes from data, rules and the
indicator's metadata; these cases pin each one down away from the seed's numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.model import month
from monitor.rules import scorecard
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.data import Block
from monitor.rules.engine import Dataset, month_end
from monitor.rules.loader import load_rules

START = "2006-04"


def block(values: list[float], denominators: list[float] | None = None) -> Block:
    n = len(values)
    return Block([{"area": "X"}], np.zeros(n, dtype=np.int64),
                 np.arange(month(START), month(START) + n), np.array(values, dtype=float),
                 np.array(denominators if denominators else [np.nan] * n, dtype=float),
                 np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64))


def parts(tmp_path: Path, rules: str, data: dict[str, Block], at: str) -> dict[str, str]:
    """Return the comment of the first scorecard row, by sentence kind."""
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    ruleset = load_rules([path])
    when = month_end(month(at))
    result = Evaluator(ruleset).run(Dataset(data), {}, Cycle(at=when, now=when))
    row = scorecard.rows(result.matrices, ruleset)[0]
    return {part.kind: part.text for part in row.comment_parts}


SATISFACTION = """\
indicators:
  - id: sat
    name: Satisfaction
    reference: S1
    unit: percent
    direction: up
    aggregation: rate
    targets:
      "2007/08": {{kind: {kind}, value: {value}}}
"""


@pytest.mark.parametrize(("kind", "value", "last", "expected"), [
    # 80% a month to Feb-08, then March 2008 at 92%: the year to Mar-08 is 81.0%.
    pytest.param("level", 81, 92, ", after a slight improvement on the rolling year to "
                 "Feb-08 (80.0%)", id="level-target-met-in-the-last-month"),
    pytest.param("level", 81, 80, None, id="level-target-missed-both-months"),
    pytest.param("level", 79, 92, None, id="level-target-met-both-months"),
    # A change target: +1pp on 2006/07 (80%) is a bar of 81%.
    pytest.param("change_pp", 1, 92, ", after a slight improvement on the rolling year to "
                 "Feb-08 (80.0%)", id="change-target-met-in-the-last-month"),
    pytest.param("level", 80, 70, ", after a slight decline on the rolling year to "
                 "Feb-08 (80.0%)", id="level-target-lost-in-the-last-month"),
])
def test_the_status_says_when_the_last_month_crossed_the_target(
        tmp_path: Path, kind: str, value: float, last: float, expected: str | None) -> None:
    monthly = [80.0] * 23 + [last]  # Apr-06 .. Mar-08, 100 asked a month
    data = {"sat": block(monthly, [100.0] * 24)}
    status = parts(tmp_path, SATISFACTION.format(kind=kind, value=value), data,
                   "2008-03")["status"]
    if expected is None:
        assert "after" not in status, status
    else:
        assert status.endswith(expected + "."), status
    if kind == "change_pp":
        assert "(+1pp, to 81.0%)" not in status and "of +1pp (to 81.0%)" in status


def test_a_row_with_a_value_and_no_target_says_it_is_not_rated(tmp_path: Path) -> None:
    rules = SATISFACTION.format(kind="level", value=80).replace('"2007/08"', '"2005/06"')
    said = parts(tmp_path, rules, {"sat": block([80.0] * 24, [100.0] * 24)}, "2008-03")
    assert said["status"] == ("Not rated: 80.0% over the rolling year to Mar-08; there is "
                              "no target for 2007/08.")


CLASS = """\
indicators:
  - id: parent
    name: Detections (monthly average)
    reference: D1
    direction: up
    aggregation: mean
    compare_with: financial_year
    note: Counts charge and caution
    spc: {considerable_variation: 0.4}
    targets:
      "2008/09": {kind: level, value: 100}
  - id: child_a
    name: Type A
    direction: up
    aggregation: mean
    parent: parent
  - id: child_b
    name: Type B
    direction: up
    aggregation: mean
    parent: parent
"""


def test_the_comparison_with_the_last_financial_year_gives_the_parts_direction(
        tmp_path: Path) -> None:
    # 2007/08 (Apr-07..Mar-08) averaged 100 (parent), 40 and 30; the year to Jul-08
    # averages 98, 41 and 31: the eight months both share are at the 2007/08 level, so
    # April-July 2008 make up the difference (3 × the year's average − 2 × 2007/08's).
    def series(fy: float, ry: float) -> list[float]:
        return [fy] * 24 + [3 * ry - 2 * fy] * 4

    data = {"parent": block(series(100, 98)), "child_a": block(series(40, 41)),
            "child_b": block(series(30, 31))}
    said = parts(tmp_path, CLASS, data, "2008-07")
    assert said["comparison"] == (
        "Slightly down on 2007/08 over the rolling year to Jul-08 (monthly averages: 98.00 "
        "against 100.00); type A and type B, however, are both slightly up (41.00 against "
        "40.00; 31.00 against 30.00).")
    assert said["note"] == "Counts charge and caution."
    assert "variation" not in said  # flat months: the limits are narrow


def test_wide_process_limits_say_the_values_vary_considerably(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    noisy = list(100 + rng.normal(0, 30, 28))
    data = {"parent": block(noisy), "child_a": block([40.0] * 28),
            "child_b": block([30.0] * 28)}
    said = parts(tmp_path, CLASS, data, "2008-07")
    assert said["variation"].startswith("Monthly values vary considerably: the SPC process "
                                        "limits, ")
    assert "around the mean of" in said["variation"]


COMPANIONS = """\
indicators:
  - id: violence
    name: Most serious violence
    reference: V1
    direction: down
    headline: change_pct
    companions: [assault]
    targets:
      "2008/09": {kind: none, note: Recording changed this year}
  - id: assault
    name: Assault with injury
    direction: down
    headline: change_pct
"""


def test_a_companion_change_is_given_beside_the_indicators_own(tmp_path: Path) -> None:
    data = {"violence": block([100.0] * 16 + [90.0] * 12),
            "assault": block([200.0] * 16 + [210.0] * 12)}
    said = parts(tmp_path, COMPANIONS, data, "2008-07")
    assert said["companions"] == (
        "Most serious violence is down 10.0% (120 offences) and assault with injury is up "
        "5.0% (120) over the rolling year to Jul-08 (compared to the RY to Jul-07).")
    assert said["status"].startswith("2008/09 is a baseline year")
    assert said["target_note"] == "Recording changed this year."
