"""What a level rule's explanation says about its thresholds, firing and resolved: the
resolved message of an ``above`` rule once said "below the threshold of n/a"."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from monitor.model import month
from monitor.rules.conditions import Context, evaluate
from monitor.rules.data import Grid, Matrix
from monitor.rules.schema import Condition, Indicator

START, END = month("2007-01"), month("2008-06")


def rate_matrix(last: list[float]) -> Matrix:
    ind = Indicator.model_validate({"id": "rate", "name": "Rate", "direction": "up",
                                    "aggregation": "mean", "unit": "count"})
    grid = Grid(START, END)
    values = np.array([[v] * grid.size for v in last], dtype=np.float64)
    return Matrix(ind, [{"area": str(i)} for i in range(len(last))], grid, values)


def explain(level: dict[str, object], value: float,
            was_active: bool = False) -> tuple[bool, str]:
    m = rate_matrix([value])
    ctx = Context({"rate": m}, {}, [], date(2008, 6, 30), END,
                  was_active=np.array([was_active]))
    outcome = evaluate(Condition.model_validate({"level": level}), m, ctx)
    return bool(outcome.active[0]), outcome.explain(0)


@pytest.mark.parametrize(("level", "value", "was", "active", "says"), [
    ({"above": 50}, 60, False, True, "above the threshold of 50"),
    ({"above": 50}, 40, True, False, "at or below the threshold of 50"),
    ({"below": 5}, 3, False, True, "below the threshold of 5"),
    ({"below": 5}, 8, True, False, "at or above the threshold of 5"),
    ({"above": 50, "clear_above": 45}, 48, True, True,
     "still above the clearing threshold of 45.0 (fires above 50.0)"),
    ({"above": 50, "below": 5}, 20, True, False,
     "at or below the threshold of 50.0 and at or above the threshold of 5.0"),
])
def test_the_explanation_says_where_the_value_stands_against_the_thresholds(
        level: dict[str, object], value: float, was: bool, active: bool, says: str) -> None:
    is_active, text = explain(level, value, was)
    assert is_active is active
    assert says in text
    assert "n/a" not in text
