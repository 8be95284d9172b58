"""Derived indicators: sums, ratios, differences and totals, matched on labels."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.model import month
from monitor.rules.data import Block, Grid, derive, from_block
from monitor.rules.schema import Derived, Indicator

GRID = Grid(month("2009-01"), month("2009-03"))


def block(rows: dict[str, list[float | None]], label: str = "borough",
          dens: dict[str, list[float]] | None = None) -> Block:
    labels, row, period, value, den = [], [], [], [], []
    for i, (name, values) in enumerate(rows.items()):
        labels.append({label: name})
        for k, v in enumerate(values):
            if v is None:
                continue
            row.append(i)
            period.append(GRID.start + k)
            value.append(v)
            den.append(dens[name][k] if dens else np.nan)
    n = len(row)
    return Block(labels, np.array(row), np.array(period), np.array(value, dtype=float),
                 np.array(den, dtype=float), np.zeros(n, dtype=bool), np.zeros(n, dtype=int))


def ind(id_: str, **kw: object) -> Indicator:
    return Indicator.model_validate({"id": id_, "name": id_, **kw})


def test_a_sum_matches_series_on_labels_whatever_their_order() -> None:
    a = from_block(ind("a"), block({"Camden": [1, 2, 3], "Brent": [10, 20, 30]}), GRID)
    b = from_block(ind("b"), block({"Brent": [5, 5, 5], "Camden": [1, 1, None]}), GRID)
    out = derive(ind("c", derived={"sum": ["a", "b"]}), {"a": a, "b": b})
    by = {lab["borough"]: out.values[i].tolist() for i, lab in enumerate(out.labels)}
    assert by["Brent"] == [15, 25, 35]
    assert by["Camden"][:2] == [2, 3]
    assert np.isnan(by["Camden"][2]), "a part missing makes the sum missing"


def test_a_ratio_is_the_ratio_of_window_sums() -> None:
    det = from_block(ind("det"), block({"Camden": [10, 10, 40]}), GRID)
    off = from_block(ind("off"), block({"Camden": [100, 100, 100]}), GRID)
    rate = derive(ind("rate", unit="percent", derived={"ratio": {"numerator": "det",
                                                               "denominator": "off"}}),
                  {"det": det, "off": off})
    value, complete = rate.window(2, 3)
    assert complete[0]
    assert value[0] == pytest.approx(20.0)  # 60 / 300, not the mean of 10%, 10%, 40%


def test_a_difference_of_rates_is_the_difference_of_window_rates() -> None:
    white = from_block(ind("w", unit="percent", aggregation="rate"),
                       block({"MPS": [80, 80, 80]}, "force",
                             {"MPS": [100, 100, 100]}), GRID)
    bme = from_block(ind("b", unit="percent", aggregation="rate"),
                     block({"MPS": [70, 76, 76]}, "force", {"MPS": [100, 200, 200]}), GRID)
    gap = derive(ind("gap", unit="pp", derived={"difference": ["w", "b"]}),
                 {"w": white, "b": bme})
    value, _ = gap.window(2, 3)
    assert value[0] == pytest.approx(80.0 - (70 + 76 + 76) / 500 * 100)


def test_a_total_adds_up_series_grouped_by_labels() -> None:
    m = from_block(ind("burglary"), block({"Camden": [1, 2, 3], "Brent": [10, 20, None]}),
                   GRID)
    london = derive(ind("london", derived={"total": "burglary", "by": []}), {"burglary": m})
    assert london.labels == [{}]
    assert london.values[0, :2].tolist() == [11, 22]
    assert np.isnan(london.values[0, 2]), "a borough missing a month makes the total missing"


def test_a_total_ignores_members_that_have_not_started_yet() -> None:
    m = from_block(ind("burglary"), block({"Camden": [1, 2, 3], "Heathrow": [None, None, 7]}),
                   GRID)
    london = derive(ind("london", derived={"total": "burglary", "by": []}), {"burglary": m})
    assert london.values[0].tolist() == [1, 2, 10]


def test_exactly_one_operation_is_required() -> None:
    with pytest.raises(ValueError, match="exactly one of sum, difference, ratio or total"):
        Derived.model_validate({"sum": ["a", "b"], "total": "c"})
