"""The scorecard's SPC limits are the chart the ``spc`` condition judged.

Every row's limits, points and icon come from the one XmR chart of the whole matrix
(``conditions.spc_for``), computed once per cycle, so the series page, the API and the
scorecard show the very numbers an ``spc`` alert fired on. A series whose data ends
before the matrix's last column is charted alone, to its own last value, as before.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from monitor.model import month
from monitor.rules import conditions, scorecard
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.engine import Dataset, Evaluation, month_end
from monitor.rules.loader import load_rules
from tests.rules.conftest import REPO

MPS = "Metropolitan Police Service"


@pytest.fixture(scope="module")
def evaluation(seed_dataset: Dataset) -> Evaluation:
    ruleset = load_rules([REPO / "rules"])
    at = month_end(month("2008-03"))
    return Evaluator(ruleset).run(seed_dataset, {}, Cycle(at=at, now=at))


@pytest.mark.parametrize("indicator", ["confidence", "victim_satisfaction",
                                       "serious_violence_sd_rate"])
def test_the_row_shows_the_limits_the_spc_condition_judged(
        evaluation: Evaluation, indicator: str) -> None:
    # These three matrices are where a chart of the MPS row alone and the chart of all
    # eight forces differ in the last bit of the mean (numpy sums a row and a matrix in
    # different orders): the row must carry the condition's numbers, bit for bit.
    m = evaluation.matrices[indicator]
    ruleset = load_rules([REPO / "rules"])
    i = next(k for k, labels in enumerate(m.labels) if labels == {"force": MPS})
    chart, _ = conditions.spc_for(m)
    mean, lower, upper = (float(a[i]) for a in (chart.mean, chart.lower, chart.upper))

    row = scorecard.detail(m, i, evaluation.matrices, ruleset)

    assert (row.mean, row.lower, row.upper) == (mean, lower, upper)
    assert (row.points[-1].mean, row.points[-1].lower, row.points[-1].upper) == \
        (mean, lower, upper)


def test_a_series_ending_early_is_charted_to_its_own_last_value(
        evaluation: Evaluation) -> None:
    # Cut one force's last three months: its points stop being charted where its data
    # stops (no limits drawn past its last value), and its limits are those of its own
    # chart, not of a segment of the matrix's that holds none of its values.
    m = evaluation.matrices["confidence"]
    ruleset = load_rules([REPO / "rules"])
    i = next(k for k, labels in enumerate(m.labels) if labels == {"force": MPS})
    values = m.values.copy()
    values[i, -3:] = np.nan
    denominators = None if m.denominators is None else m.denominators.copy()
    if denominators is not None:
        denominators[i, -3:] = np.nan
    ragged = replace(m, values=values, denominators=denominators)
    alone = scorecard._one_row(ragged, i)
    own, _ = conditions.spc_for(alone)

    row = scorecard.detail(ragged, i, {**evaluation.matrices, "confidence": ragged}, ruleset)

    assert [p.mean is None for p in row.points[-3:]] == [True, True, True]
    assert row.points[-4].mean == float(own.mean[0])
    assert (row.mean, row.lower, row.upper) == \
        (float(own.mean[0]), float(own.lower[0]), float(own.upper[0]))


def test_every_row_of_a_matrix_matches_its_chart_alone_but_for_the_last_bit(
        evaluation: Evaluation) -> None:
    # The matrix's chart is the row's chart: the same segments, points and signals; the
    # limits agree to the last bits of a float.
    ruleset = load_rules([REPO / "rules"])
    compared = 0
    for m in evaluation.matrices.values():
        for i in range(m.n):
            whole = scorecard.detail(m, i, evaluation.matrices, ruleset)
            alone = scorecard.detail(scorecard._one_row(m, i), 0, evaluation.matrices, ruleset)
            assert [(p.period, p.special, p.variation) for p in whole.points] == \
                [(p.period, p.special, p.variation) for p in alone.points]
            assert whole.spc_icon == alone.spc_icon and whole.assurance == alone.assurance
            for a, b in ((whole.mean, alone.mean), (whole.upper, alone.upper)):
                assert (a is None) == (b is None)
                if a is not None and b is not None:
                    assert a == pytest.approx(b, rel=1e-12)
            compared += 1
    assert compared > 100


def test_a_page_listing_series_shows_each_row_as_its_own_page_does(
        evaluation: Evaluation) -> None:
    # A list page asks for its rows at once (what all rows read is made once for them);
    # each row is the page of that series alone, ranks and comments included.
    ruleset = load_rules([REPO / "rules"])
    compared = ranked = 0
    for m in evaluation.matrices.values():
        rows = list(range(m.n))[::-1]  # any order, as the page's filter gives them
        listed = scorecard.details(m, rows, evaluation.matrices, ruleset)
        assert [repr(d) for d in listed] == \
            [repr(scorecard.detail(m, i, evaluation.matrices, ruleset)) for i in rows]
        compared += len(rows)
        ranked += sum(1 for d in listed if d.ranks)
    assert compared > 100 and ranked > 0


def test_a_series_page_of_a_large_matrix_reads_its_own_levels_and_shows_the_same_points(
        evaluation: Evaluation, monkeypatch: pytest.MonkeyPatch) -> None:
    # A page of one series of a large matrix makes that series' levels alone, not every
    # series' (a second for one page at 500,000 series), and its points are those the
    # whole matrix's levels give; a pack that reads many rows makes them once for all.
    ruleset = load_rules([REPO / "rules"])
    pages = {name: [scorecard.detail(replace(m), i, evaluation.matrices, ruleset).points
                    for i in range(m.n)] for name, m in evaluation.matrices.items()}

    def levels_made(m: object) -> bool:
        return any(isinstance(key, tuple) and key[0] == "levels"
                   for key in m.memo)  # type: ignore[attr-defined]

    monkeypatch.setattr(scorecard, "LEVELS_WHOLE", 0)  # every matrix counts as large
    monkeypatch.setattr(scorecard, "LEVELS_ALONE", 1)  # and stays so (until n rows asked)
    points = 0
    for name, m in evaluation.matrices.items():
        fresh = replace(m)  # (a copy starts without what was made of the matrix)
        for i in range(m.n):
            alone = scorecard.detail(fresh, i, evaluation.matrices, ruleset).points
            assert alone == pages[name][i], (name, m.labels[i])
            points += len(alone)
        assert not levels_made(fresh), name
    assert points > 1000

    # The third row of a matrix read 2 rows alone: every row's levels, made once.
    m = next(m for m in evaluation.matrices.values() if m.n >= 8)
    monkeypatch.setattr(scorecard, "LEVELS_ALONE", m.n // 2)  # (switch after 2 rows)
    fresh = replace(m)
    for i in range(3):
        scorecard.detail(fresh, i, evaluation.matrices, ruleset).points  # noqa: B018
        assert levels_made(fresh) == (i == 2)
