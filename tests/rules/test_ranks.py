"""Ranks in a peer group, each over its own window (docs/rules.md, "Ranks").

Three forces with made-up monthly counts from January 2006 to April 2008; the expected
ranks are worked out by hand in each case's comment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.errors import RuleFileError
from monitor.model import month
from monitor.rules.conditions import Context, evaluate
from monitor.rules.data import Grid, Matrix
from monitor.rules.loader import load_rules
from monitor.rules.measures import rank_span, ranks
from monitor.rules.schema import Condition, Indicator, PeerGroup, RankWindow

FORCES = ["A", "B", "C"]
GROUP = PeerGroup(id="g", label="force", members=FORCES, name="family")
START, END = month("2006-01"), month("2008-04")


def crime(**extra: object) -> Indicator:
    return Indicator.model_validate({"id": "crime", "name": "Crime", "direction": "down",
                                     "headline": "change_pct", "peer_group": "g", **extra})


def matrix(indicator: Indicator, per_force: dict[str, list[float]]) -> Matrix:
    grid = Grid(START, END)
    values = np.array([per_force[f] for f in FORCES], dtype=np.float64)
    assert values.shape[1] == grid.size
    return Matrix(indicator, [{"force": f} for f in FORCES], grid, values)


def steps(before: float, after: float, change_at: str) -> list[float]:
    """``before`` every month until ``change_at``, ``after`` from it on."""
    cut = month(change_at) - START
    return [before] * cut + [after] * (END - START + 1 - cut)


# A falls 10% from May 2007 (so over calendar 2007 on 2006 it is down 6.7%, over the
# last 3 months down 10%); B falls 20% from January 2008 (calendar 2007: unchanged; last
# 3 months: down 20%); C falls 5% from January 2007 (calendar 2007: down 5%; last 3
# months, Feb-Apr 2008 on Feb-Apr 2007: unchanged).
DATA = {"A": steps(100, 90, "2007-05"), "B": steps(100, 80, "2008-01"),
        "C": steps(100, 95, "2007-01")}


@pytest.mark.parametrize(("over", "span", "ranked", "window", "phrase"), [
    pytest.param("last 3 months", ("2008-02", "2008-04"), [2, 1, 3],
                 "February–April 2008", "for February–April 2008", id="last-3-months"),
    pytest.param("rolling_year", ("2007-05", "2008-04"), [1, 2, 3],
                 "the year to April 2008", "for the year to April 2008", id="rolling-year"),
    # 2007/08 on 2006/07: A down 9.2% (11 months of 90), B down 5% (3 of 80), C down
    # 3.75% (Apr-06..Dec-06 were 100, so 2006/07 had 3 months of 95).
    pytest.param("financial_year", ("2007-04", "2008-03"), [1, 2, 3], "2007/08",
                 "for 2007/08", id="financial-year"),
    pytest.param("calendar_year", ("2007-01", "2007-12"), [1, 3, 2], "2007", "in 2007",
                 id="calendar-year"),
])
def test_each_window_ranks_its_own_months(over: str, span: tuple[str, str],
                                          ranked: list[int], window: str,
                                          phrase: str) -> None:
    m = matrix(crime(), DATA)
    result = ranks(m, GROUP, RankWindow.parse(over))
    end, n = rank_span(m, RankWindow.parse(over))
    assert (m.grid.period(end - n + 1), m.grid.period(end)) == (month(span[0]), month(span[1]))
    assert result.rank.tolist() == ranked
    assert (result.window, result.phrase, result.size) == (window, phrase, 3)


def test_ties_share_a_rank_and_last_is_the_bottom() -> None:
    m = matrix(crime(), {"A": steps(100, 90, "2008-02"), "B": steps(100, 90, "2008-02"),
                         "C": [100.0] * (END - START + 1)})
    result = ranks(m, GROUP, RankWindow.parse("last 3 months"))
    assert result.rank.tolist() == [1, 1, 3]
    assert [result.position(i) for i in range(3)] == ["1st", "1st", "last"]


def test_a_level_is_ranked_on_its_value_over_the_window() -> None:
    ind = Indicator.model_validate({"id": "rate", "name": "Rate", "direction": "up",
                                    "aggregation": "mean", "peer_group": "g"})
    m = matrix(ind, {"A": steps(10, 30, "2008-04"), "B": [20.0] * (END - START + 1),
                     "C": steps(10, 12, "2008-01")})
    # Over the last month A leads (30); over the financial year 2007/08 B does (20).
    assert ranks(m, GROUP, RankWindow.parse("last 1 month")).rank.tolist() == [1, 2, 3]
    assert ranks(m, GROUP, RankWindow.parse("financial_year")).rank.tolist() == [3, 1, 2]


@pytest.mark.parametrize(("over", "expected"), [
    pytest.param("last 3 months", [False, False, True], id="last-3-months-c-last"),
    pytest.param("calendar_year", [False, True, False], id="calendar-year-b-last"),
])
def test_the_peers_condition_ranks_over_its_window(over: str, expected: list[bool]) -> None:
    m = matrix(crime(), DATA)
    ctx = Context({"crime": m}, {"g": GROUP}, [], month_date(END), END)
    outcome = evaluate(Condition.model_validate({"peers": {"rank": "last", "over": over}}),
                       m, ctx)
    assert outcome.active.tolist() == expected
    last = expected.index(True)
    assert f"ranked last of 3 in its family {ranks(m, GROUP, RankWindow.parse(over)).phrase}" \
        in outcome.explain(last)


def month_date(period: int):  # type: ignore[no-untyped-def]
    from datetime import date

    return date(period // 12, period % 12 + 1, 28)


@pytest.mark.parametrize(("text", "kind", "months"), [
    pytest.param("last 3 months", "last_months", 3, id="last-3-months"),
    pytest.param("last 1 month", "last_months", 1, id="last-1-month"),
    pytest.param("rolling_year", "rolling_year", 0, id="rolling-year"),
    pytest.param("financial_year", "financial_year", 0, id="financial-year"),
    pytest.param("calendar_year", "calendar_year", 0, id="calendar-year"),
])
def test_it_reads_every_window_and_writes_it_back(text: str, kind: str, months: int) -> None:
    window = RankWindow.parse(text)
    assert (window.kind, window.months, str(window)) == (kind, months, text)


BAD_RULES = """\
peer_groups:
  - {id: g, members: [A, B]}
indicators:
  - id: crime
    name: Crime
    direction: down
    peer_group: g
    rank: {over: calender_year}
  - id: combined
    name: Combined
    direction: down
    rank: {parts: [other]}
  - id: other
    name: Other
    direction: down
    peer_group: g
groups:
  - name: g
    rules:
      - alert: Last
        indicator: other
        when:
          all:
            - level: {above: 1}
            - peers: {rank: last, over: last 0 months}
"""


def test_check_rejects_an_unknown_window_with_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_RULES)
    with pytest.raises(RuleFileError) as caught:
        load_rules([path])
    forms = "write last N months (1-60), rolling_year, financial_year or calendar_year"
    assert [str(p) for p in caught.value.problems] == [
        f'{path}:8:12: indicator "crime": rank.over: unknown rank window \'calender_year\' '
        f'(did you mean "calendar_year"?); {forms}',
        f'{path}:12:20: indicator "combined": rank.parts: indicator "other" has no '
        "rank.over; give it the window its rank is over",
        f'{path}:25:35: rule "Last": when.all[1].peers.over: unknown rank window '
        f"'last 0 months'; {forms}",
    ]
