"""Specification of monitor.rules.stats: windows, trends, SPC and significance tests.

Reference values are either worked out by hand in the test (the arithmetic is
written next to the numbers) or taken from the reference implementation:
pymannkendall for the trend tests, scipy.stats.binomtest for the Poisson test
and the Wilson interval, NHSRplotthedots' rules for SPC.
"""

from __future__ import annotations

import csv
import itertools
import math
import zlib
from typing import Any

import numpy as np
import pymannkendall as pmk
import pytest
from scipy import stats as sps

from monitor.rules import stats
from tests.conftest import LONDON_DATA

NAN = math.nan


def _london(n_series: int = 200, first_month: str = "200801", n_months: int = 36) -> np.ndarray:
    """Return real monthly crime counts: the first ``n_series`` borough × category rows."""
    path = LONDON_DATA / "mps-borough-crime-2008-01-to-2016-12.csv"
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        start = header.index(first_month)
        rows = [row[start : start + n_months] for row in itertools.islice(reader, n_series)]
    return np.array(rows, dtype=np.float64)


@pytest.fixture(scope="module")
def london() -> np.ndarray:
    return _london()


def _row(*values: float) -> np.ndarray:
    return np.array([values], dtype=np.float64)


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    ("values", "n", "expected"),
    [
        pytest.param([1, 2, 3, 4, 5], 3, [NAN, NAN, 6, 9, 12], id="sums-each-window"),
        pytest.param(
            [1, 2, 3, 4, NAN, 6], 3, [NAN, NAN, 6, 9, NAN, NAN], id="nan-spoils-its-windows"
        ),
        pytest.param([1, 2], 3, [NAN, NAN], id="window-longer-than-series"),
        pytest.param([7, 8], 1, [7, 8], id="window-of-one"),
    ],
)
def test_it_sums_rolling_windows(values: list[float], n: int, expected: list[float]) -> None:
    np.testing.assert_array_equal(stats.rolling_sum(_row(*values), n), _row(*expected))


@pytest.mark.parametrize(
    ("values", "end", "n", "total", "mean", "last", "complete"),
    [
        pytest.param([1, 2, 3, 4], -1, 2, 7, 3.5, 4, True, id="last-two"),
        pytest.param([1, 2, 3, 4], 2, 3, 6, 2, 3, True, id="ending-inside"),
        pytest.param([1, 2, NAN, 4], -1, 3, NAN, NAN, 4, False, id="gap-is-not-guessed"),
        pytest.param([1, 2, 3, NAN], -1, 2, NAN, NAN, 3, False, id="last-falls-back-within-window"),
        pytest.param([1, 2, NAN, NAN], -1, 2, NAN, NAN, NAN, False, id="empty-window"),
        pytest.param([1, 2, 3, 4], 1, 3, NAN, NAN, NAN, False, id="starts-before-column-0"),
    ],
)
def test_it_aggregates_a_window(
    values: list[float],
    end: int,
    n: int,
    total: float,
    mean: float,
    last: float,
    complete: bool,
) -> None:
    x = _row(*values)
    np.testing.assert_array_equal(stats.window_sum(x, end, n), [total])
    np.testing.assert_array_equal(stats.window_mean(x, end, n), [mean])
    np.testing.assert_array_equal(stats.window_last(x, end, n), [last])
    np.testing.assert_array_equal(stats.window_complete(x, end, n), [complete])


def test_it_reproduces_the_seed_robbery_comment() -> None:
    # "Robbery is down 22.3% (9,828 offences)": 44,070 in the previous rolling
    # year, 34,242 in the rolling year to Jul-08.
    previous = [3672.0] * 11 + [3678.0]  # 11 × 3,672 + 3,678 = 44,070
    current = [2853.0] * 6 + [2854.0] * 6  # 6 × 2,853 + 6 × 2,854 = 34,242
    change = stats.period_change(_row(*previous, *current), end=-1, n=12, lag=12)
    assert change.current[0] == 34_242
    assert change.baseline[0] == 44_070
    assert change.delta[0] == -9_828
    assert round(change.pct[0], 1) == -22.3
    assert change.complete[0]


def test_it_reproduces_the_seed_serious_acquisitive_crime_row() -> None:
    # SPI 5.2 = robbery + vehicle crime + residential burglary, rolling year vs
    # previous: (-9,828 - 8,367 + 366) / (44,070 + 124,880 + 61,000) = -7.8%.
    parts = np.array(
        [
            [44_070.0, 34_242.0],  # robbery, down 9,828
            [124_880.0, 116_513.0],  # vehicle crime, down 8,367
            [61_000.0, 61_366.0],  # residential burglary, up 366
        ]
    )
    each = stats.period_change(parts, end=-1, n=1, lag=1)
    total = stats.period_change(parts.sum(axis=0, keepdims=True), end=-1, n=1, lag=1)
    np.testing.assert_array_equal(each.delta, [-9_828, -8_367, 366])
    np.testing.assert_array_equal(np.round(each.pct, 1), [-22.3, -6.7, 0.6])
    assert total.delta[0] == -17_829
    assert round(total.pct[0], 1) == -7.8


@pytest.mark.parametrize(
    ("values", "n", "lag", "agg", "current", "baseline", "pct", "complete"),
    [
        pytest.param([1, 2, 3, 4], 2, 2, "sum", 7, 3, 400 / 3, True, id="previous-n"),
        pytest.param([2, 4, 3, 5], 2, 2, "mean", 4, 3, 100 / 3, True, id="mean"),
        pytest.param([2, 4, NAN, 5], 2, 2, "last", 5, 4, 25, True, id="last-skips-gap"),
        pytest.param([0, 0, 3, 4], 2, 2, "sum", 7, 0, NAN, True, id="zero-baseline-has-no-pct"),
        pytest.param([1, NAN, 3, 4], 2, 2, "sum", 7, NAN, NAN, False, id="gap-in-baseline"),
        pytest.param([1, 2, 3, 4], 3, 3, "sum", 9, NAN, NAN, False, id="baseline-before-start"),
        pytest.param([1, 2, 3, 4, 5], 1, 4, "sum", 5, 1, 400, True, id="same-period-lag"),
    ],
)
def test_it_compares_a_window_with_an_earlier_one(
    values: list[float],
    n: int,
    lag: int,
    agg: stats.Agg,
    current: float,
    baseline: float,
    pct: float,
    complete: bool,
) -> None:
    change = stats.period_change(_row(*values), -1, n, lag, agg)
    np.testing.assert_allclose(change.current, [current])
    np.testing.assert_allclose(change.baseline, [baseline])
    np.testing.assert_allclose(change.delta, [current - baseline])
    np.testing.assert_allclose(change.pct, [pct])
    np.testing.assert_array_equal(change.complete, [complete])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([1, 2, 3, 4], 3, id="rises"),
        pytest.param([9, 4, 3, 2], -3, id="falls"),
        pytest.param([5, 1, 3, 2], -1, id="one-fall"),
        pytest.param([1, 2, 2], 0, id="tie-ends-in-zero"),
        pytest.param([1, 2, 2, 3, 4], 2, id="tie-breaks-run"),
        pytest.param([1, NAN, 2, 3], 1, id="nan-breaks-run"),
        pytest.param([1, 2, NAN], 0, id="missing-last"),
        pytest.param([5], 0, id="single-point"),
    ],
)
def test_it_counts_the_current_run_of_rises_or_falls(values: list[float], expected: int) -> None:
    assert stats.consecutive_runs(_row(*values))[0] == expected


# --------------------------------------------------------------------------- slope


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([0, 2, 4, 6], 2.0, id="straight-line"),
        pytest.param([0, NAN, 4, 6], 2.0, id="ignores-missing"),
        pytest.param([3, 1, 3, 1], -0.4, id="zigzag"),  # Σ(t-1.5)(y-2) / Σ(t-1.5)² = -2/5
        pytest.param([1, NAN, NAN, 2], NAN, id="two-points-are-too-few"),
    ],
)
def test_it_fits_a_least_squares_slope(values: list[float], expected: float) -> None:
    np.testing.assert_allclose(stats.ls_slope(_row(*values)), [expected])


def test_it_fits_the_same_slope_as_polyfit(london: np.ndarray) -> None:
    expected = [np.polyfit(np.arange(london.shape[1]), row, 1)[0] for row in london]
    np.testing.assert_allclose(stats.ls_slope(london), expected, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- Mann–Kendall


def _assert_matches(ours: stats.MannKendall, i: int, ref: Any, slope: bool = True) -> None:
    assert ours.s[i] == pytest.approx(ref.s, abs=1e-9)
    assert ours.var_s[i] == pytest.approx(ref.var_s, rel=1e-9)
    assert ours.z[i] == pytest.approx(ref.z, abs=1e-9)
    assert ours.p[i] == pytest.approx(ref.p, abs=1e-9)
    assert ours.tau[i] == pytest.approx(ref.Tau, abs=1e-9)
    trend = {"increasing": 1, "decreasing": -1, "no trend": 0}[ref.trend]
    assert ours.trend[i] == trend
    if slope:
        assert ours.sen_slope[i] == pytest.approx(ref.slope, abs=1e-9)


def test_it_matches_pymannkendall_original_test_on_london_series(london: np.ndarray) -> None:
    ours = stats.mann_kendall(london)
    for i, row in enumerate(london):
        _assert_matches(ours, i, pmk.original_test(row))


def test_it_matches_pymannkendall_seasonal_test_on_london_series(london: np.ndarray) -> None:
    ours = stats.seasonal_mann_kendall(london, period=12)
    for i, row in enumerate(london):
        _assert_matches(ours, i, pmk.seasonal_test(row, period=12))


def _with_gaps(x: np.ndarray) -> np.ndarray:
    y = x.copy()
    y[np.random.default_rng(2008).random(y.shape) < 0.08] = np.nan
    return y


def test_it_matches_pymannkendall_on_series_with_missing_months(london: np.ndarray) -> None:
    gappy = _with_gaps(london)
    ours = stats.mann_kendall(gappy)
    seasonal = stats.seasonal_mann_kendall(gappy)
    for i, row in enumerate(gappy):
        # pymannkendall skips NaNs itself; Sen's slope keeps the original positions.
        _assert_matches(ours, i, pmk.original_test(row))
        _assert_matches(seasonal, i, pmk.seasonal_test(row))
        # With the NaNs removed first, the test statistic is the same (pairs with
        # a NaN are simply absent) but Sen's slope is not: the spacing changes.
        _assert_matches(ours, i, pmk.original_test(row[~np.isnan(row)]), slope=False)


def _synthetic(kind: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    shape = (60, 36)
    if kind == "decimals":
        return np.round(rng.normal(50, 10, shape), 1)
    if kind == "wide-integers":
        return rng.integers(0, 10**6, shape).astype(np.float64)
    if kind == "at-float32-limit":
        # Integer range 3,524 with lags up to 35: 3,524 × 35 × 34 < 2**22, the
        # widest range whose slopes are still ordered exactly in float32.
        x = rng.integers(0, 3525, shape).astype(np.float64)
        x[:, 0], x[:, 1] = 0, 3524
        return x
    if kind == "sparse-counts":
        return rng.poisson(0.3, shape).astype(np.float64)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["decimals", "wide-integers", "at-float32-limit", "sparse-counts"])
def test_it_matches_pymannkendall_on_every_kind_of_value(kind: str) -> None:
    # Integer series of modest range take an exact float32 path for Sen's
    # slope; the others partition float64 slopes. Both must agree.
    x = _synthetic(kind)
    ours = stats.mann_kendall(x)
    seasonal = stats.seasonal_mann_kendall(x)
    for i, row in enumerate(x):
        _assert_matches(ours, i, pmk.original_test(row))
        _assert_matches(seasonal, i, pmk.seasonal_test(row))
        assert ours.sen_slope[i] == pmk.original_test(row).slope


@pytest.mark.parametrize(
    ("values", "kept", "removed"),
    [
        # Pairs (0,2), (0,3), (2,3): slopes 2/2, 3/3, 1/1 → 1. Without the gap the
        # series [1, 3, 4] has slopes 2, 3/2, 1 → 1.5.
        pytest.param([1, NAN, 3, 4], 1.0, 1.5, id="gap-keeps-spacing"),
    ],
)
def test_it_keeps_positions_in_sen_slope_across_gaps(
    values: list[float], kept: float, removed: float
) -> None:
    row = np.array(values)
    assert stats.mann_kendall(_row(*values)).sen_slope[0] == kept
    assert pmk.original_test(row).slope == kept
    assert pmk.original_test(row[~np.isnan(row)]).slope == removed


@pytest.mark.parametrize(
    ("values", "s", "var_s", "trend", "sen"),
    [
        # 10 rising points: all 45 pairs rise; var = 10·9·25/18 = 125.
        pytest.param(list(range(10)), 45, 125.0, 1, 1.0, id="rising"),
        pytest.param(list(range(10, 0, -1)), -45, 125.0, -1, -1.0, id="falling"),
        # [1, 1, 2]: pairs 0, +1, +1; ties: one group of 2 → (3·2·11 - 2·1·9)/18 = 48/18.
        pytest.param([1, 1, 2], 2, 48 / 18, 0, 0.5, id="tie-correction"),
        pytest.param([4, 4, 4, 4], 0, 0.0, 0, 0.0, id="flat"),
    ],
)
def test_it_scores_hand_worked_series(
    values: list[float], s: float, var_s: float, trend: int, sen: float
) -> None:
    result = stats.mann_kendall(_row(*values))
    assert result.s[0] == s
    assert result.var_s[0] == pytest.approx(var_s)
    assert result.trend[0] == trend
    assert result.sen_slope[0] == sen
    assert result.n[0] == len(values)


@pytest.mark.parametrize(
    "values",
    [pytest.param([NAN, NAN, NAN], id="empty"), pytest.param([NAN, 3, NAN], id="one-point")],
)
def test_it_gives_no_verdict_without_pairs(values: list[float]) -> None:
    result = stats.mann_kendall(_row(*values))
    assert math.isnan(result.z[0])
    assert math.isnan(result.p[0])
    assert math.isnan(result.sen_slope[0])
    assert result.trend[0] == 0


def test_it_gives_the_same_answer_on_threads_and_without_slope() -> None:
    rng = np.random.default_rng(7)
    x = rng.poisson(20, size=(5000, 36)).astype(np.float64)
    x[rng.random(x.shape) < 0.01] = np.nan
    one = stats.mann_kendall(x)
    two = stats.mann_kendall(x, workers=2)
    bare = stats.mann_kendall(x, with_slope=False)
    for field in ("s", "var_s", "z", "p", "sen_slope", "n"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
    np.testing.assert_array_equal(one.p, bare.p)
    assert np.isnan(bare.sen_slope).all()


# --------------------------------------------------------------------------- SPC
#
# The baseline used throughout: B = 110, 100, 90, 100, 110, 100, 90
#   mean  = 700 / 7 = 100
#   mR    = 10, 10, 10, 10, 10, 10  → amr = 10
#   limits      = 100 ± 2.66 × 10           = 126.6 / 73.4
#   near limits = 100 ± (2/3) × 2.66 × 10   = 117.733… / 82.266…
# Points appended after B are judged against these frozen limits.

B = [110.0, 100.0, 90.0, 100.0, 110.0, 100.0, 90.0]


def test_it_computes_xmr_limits_by_hand() -> None:
    result = stats.spc(_row(*B), direction=1)
    assert result.mean[0] == pytest.approx(100)
    assert result.amr[0] == pytest.approx(10)
    assert result.upper[0] == pytest.approx(126.6)
    assert result.lower[0] == pytest.approx(73.4)
    assert result.near_upper[0] == pytest.approx(100 + 2 * 2.66 / 3 * 10)
    assert result.near_lower[0] == pytest.approx(100 - 2 * 2.66 / 3 * 10)
    assert result.trial[0]  # 7 points < 12


@pytest.mark.parametrize(
    ("extra", "trial"),
    [
        pytest.param([100, 110, 100, 90], True, id="11-points"),
        pytest.param([100, 110, 100, 90, 100], False, id="12-points"),
    ],
)
def test_it_marks_limits_from_fewer_than_12_points_as_trial(
    extra: list[float], trial: bool
) -> None:
    assert stats.spc(_row(*B, *extra), direction=1).trial[0] == trial


@pytest.mark.parametrize(
    ("tail", "special", "side", "kwargs"),
    [
        pytest.param([130], [1], [1], {}, id="rule1-above-upper-limit"),
        pytest.param([70], [1], [-1], {}, id="rule1-below-lower-limit"),
        # 90 → 86 falls, then six rises: seven points in a row each higher.
        pytest.param(
            [86, 90, 94, 98, 102, 106, 110], [2] * 7, [1] * 7, {}, id="rule2-rising-trend"
        ),
        pytest.param(
            [114, 110, 106, 102, 98, 94, 90], [2] * 7, [-1] * 7, {}, id="rule2-falling-trend"
        ),
        pytest.param([86, 90, 94, 98, 102, 106], [0] * 6, [0] * 6, {}, id="six-points-no-trend"),
        pytest.param(
            [86, 90, 94, 98, 102, 106],
            [2] * 6,
            [1] * 6,
            {"trend_length": 6},
            id="trend-length-is-configurable",
        ),
        # 120 and 119 beyond the near limit 117.73, 105 above the mean: the two
        # near points are flagged, the third is not.
        pytest.param([120, 105, 119], [3, 0, 3], [1, 0, 1], {}, id="rule3-two-of-three-high"),
        pytest.param([80, 95, 81], [3, 0, 3], [-1, 0, -1], {}, id="rule3-two-of-three-low"),
        pytest.param([120, 95, 119], [0, 0, 0], [0, 0, 0], {}, id="rule3-needs-one-side"),
        # 130 is outside (rule 1) and, as in NHSRplotthedots, does not count as
        # one of the two near points, so 120 alone is not enough.
        pytest.param([130, 120, 105], [1, 0, 0], [1, 0, 0], {}, id="rule3-outside-does-not-count"),
        pytest.param(
            [105, 103, 105, 103, 105, 103, 105], [4] * 7, [1] * 7, {}, id="rule4-shift-high"
        ),
        pytest.param(
            [105, 103, 105, 103, 105, 103], [0] * 6, [0] * 6, {}, id="six-points-no-shift"
        ),
        pytest.param(
            [105, 103, 105, 103, 105, 103],
            [4] * 6,
            [1] * 6,
            {"run_length": 6},
            id="run-length-is-configurable",
        ),
        pytest.param(
            [105, 103, 105, 100, 103, 105, 103, 105],
            [0] * 8,
            [0] * 8,
            {},
            id="point-on-mean-breaks-shift",
        ),
        # Precedence: the lowest rule number wins.
        pytest.param(
            [101, 103, 105, 107, 109, 111, 130],
            [2] * 6 + [1],
            [1] * 7,
            {},
            id="rule1-beats-trend",
        ),
        pytest.param(
            [105, 103, 105, 103, 120, 104, 119],
            [4, 4, 4, 4, 3, 4, 3],
            [1] * 7,
            {},
            id="rule3-beats-shift",
        ),
    ],
)
def test_it_flags_special_cause_points(
    tail: list[float], special: list[int], side: list[int], kwargs: dict[str, int]
) -> None:
    result = stats.spc(
        _row(*B, *tail),
        baseline_end=len(B),
        run_length=kwargs.get("run_length", 7),
        trend_length=kwargs.get("trend_length", 7),
        direction=1,
    )
    np.testing.assert_array_equal(result.special[0, len(B) :], special)
    np.testing.assert_array_equal(result.side[0, len(B) :], side)


@pytest.mark.parametrize(
    ("tail", "special"),
    [
        # The last baseline point (90) is below the mean too: the run has 8 points.
        pytest.param([95, 97, 95, 97, 95, 97, 95], [0] * 6 + [4] * 8, id="shift-reaches-back"),
        # 90 → 101 is already a rise, so the trend runs from the baseline's last
        # point; the trend (rule 2) beats the shift (rule 4) of 101…107.
        pytest.param(
            [101, 102, 103, 104, 105, 106, 107], [0] * 6 + [2] * 8, id="trend-beats-shift"
        ),
    ],
)
def test_it_applies_rules_across_the_frozen_baseline(tail: list[float], special: list[int]) -> None:
    result = stats.spc(_row(*B, *tail), baseline_end=len(B), direction=1)
    np.testing.assert_array_equal(result.special[0], special)


def test_it_gives_a_turning_point_to_the_later_trend() -> None:
    # 90 (index 6) rises to 96 (index 12), then falls to 90 (index 18): two
    # seven-point trends sharing the peak, which counts as falling.
    tail = [91, 92, 93, 94, 95, 96, 95, 94, 93, 92, 91, 90]
    result = stats.spc(_row(*B, *tail), baseline_end=len(B), direction=1)
    np.testing.assert_array_equal(result.special[0, 6:], [2] * 13)
    np.testing.assert_array_equal(result.side[0, 6:], [1] * 6 + [-1] * 7)


@pytest.mark.parametrize(
    ("tail", "direction", "variation", "icon"),
    [
        pytest.param([130], 1, 1, "improvement_high", id="high-when-up-is-good"),
        pytest.param([130], -1, -1, "concern_high", id="high-when-down-is-good"),
        pytest.param([130], 0, 2, "neither_high", id="high-when-neutral"),
        pytest.param([70], 1, -1, "concern_low", id="low-when-up-is-good"),
        pytest.param([70], -1, 1, "improvement_low", id="low-when-down-is-good"),
        pytest.param([70], 0, 2, "neither_low", id="low-when-neutral"),
        pytest.param([100], 1, 0, "common_cause", id="common-cause"),
        pytest.param([NAN], 1, 0, "common_cause", id="missing-last-point"),
    ],
)
def test_it_reads_variation_by_direction_of_good(
    tail: list[float], direction: int, variation: int, icon: str
) -> None:
    result = stats.spc(_row(*B, *tail), baseline_end=len(B), direction=direction)
    assert result.variation[0, -1] == variation
    assert stats.spc_icon(result)[0] == icon


def test_it_takes_a_direction_per_series() -> None:
    x = np.array([[*B, 130.0]] * 3)
    result = stats.spc(x, baseline_end=len(B), direction=np.array([1, -1, 0]))
    np.testing.assert_array_equal(result.variation[:, -1], [1, -1, 2])
    np.testing.assert_array_equal(
        stats.spc_icon(result), ["improvement_high", "concern_high", "neither_high"]
    )


def test_it_freezes_the_baseline() -> None:
    x = _row(*B, 130)
    frozen = stats.spc(x, baseline_end=len(B), direction=1)
    # Unfrozen, 130 joins the baseline: mean 830/8 = 103.75; moving ranges six
    # 10s and |130 - 90| = 40 → amr 100/7; upper = 103.75 + 2.66·100/7 = 141.75.
    whole = stats.spc(x, direction=1)
    assert frozen.mean[0] == pytest.approx(100)
    assert frozen.special[0, -1] == 1
    assert whole.mean[0] == pytest.approx(103.75)
    assert whole.amr[0] == pytest.approx(100 / 7)
    assert whole.upper[0] == pytest.approx(141.75)
    assert whole.special[0, -1] == 0


def test_it_starts_the_baseline_where_asked_and_judges_every_point() -> None:
    result = stats.spc(_row(500, 500, *B), baseline_start=2, baseline_end=9, direction=1)
    assert result.mean[0] == pytest.approx(100)
    assert result.amr[0] == pytest.approx(10)
    np.testing.assert_array_equal(result.special[0], [1, 1] + [0] * 7)


@pytest.mark.parametrize(
    ("screen", "amr"),
    [
        # 100,102 × 5 then 200: nine moving ranges of 2 and one of 98 → amr 116/10;
        # 98 ≥ 3.267 × 11.6 = 37.9 is screened out → amr 18/9 = 2.
        pytest.param(False, 11.6, id="unscreened"),
        pytest.param(True, 2.0, id="screened"),
    ],
)
def test_it_screens_large_moving_ranges_on_request(screen: bool, amr: float) -> None:
    x = _row(*([100, 102] * 5), 200)
    result = stats.spc(x, recalc_screened=screen, direction=1)
    assert result.mean[0] == pytest.approx(110)  # 1,210 / 11
    assert result.amr[0] == pytest.approx(amr)


def test_it_rebases_limits_at_a_break() -> None:
    second = [b + 100 for b in B]  # mean 200, amr 10
    x = _row(*B, *second)
    rebased = stats.spc_rebased(x, [7], direction=1)
    assert [s.mean[0] for s in rebased.segments] == pytest.approx([100, 200])
    assert [s.amr[0] for s in rebased.segments] == pytest.approx([10, 10])
    assert rebased.mean[0] == pytest.approx(200)
    np.testing.assert_array_equal(rebased.special[0], [0] * 14)
    # One baseline for both: mean 2,100/14 = 150; moving ranges twelve 10s and
    # |210 - 90| = 120 → amr 240/13 = 18.46; limits 150 ± 49.11 = 100.89 / 199.11.
    # 100, 90, 200 and 210 fall outside; 110 and 190 are in 7-point shifts.
    whole = stats.spc(x, direction=1)
    assert whole.amr[0] == pytest.approx(240 / 13)
    np.testing.assert_array_equal(whole.special[0], [4, 1, 1, 1, 4, 1, 1, 1, 1, 4, 1, 1, 1, 4])


def test_it_keeps_rule_windows_inside_a_segment() -> None:
    # Segment 1: B then 105 × 3 (limits frozen on B: mean 100). Segment 2:
    # 206, 204, 206, 204, 190, 200, 190 → mean 1,400/7 = 200, amr 40/6.
    # Three points above the mean before the break and four after would be a
    # shift of seven if windows could span the break.
    x = _row(*B, 105, 105, 105, 206, 204, 206, 204, 190, 200, 190)
    result = stats.spc_rebased(x, [10], baseline_len=7, direction=1)
    assert result.segments[0].mean[0] == pytest.approx(100)
    assert result.mean[0] == pytest.approx(200)
    assert result.amr[0] == pytest.approx(40 / 6)
    np.testing.assert_array_equal(result.special[0], [0] * 17)


@pytest.mark.parametrize(
    ("target", "direction", "expected"),
    [
        pytest.param(130, 1, "fail", id="target-above-limits-up-is-good"),
        pytest.param(130, -1, "pass", id="target-above-limits-down-is-good"),
        pytest.param(70, 1, "pass", id="target-below-limits-up-is-good"),
        pytest.param(70, -1, "fail", id="target-below-limits-down-is-good"),
        pytest.param(100, 1, "hit_and_miss", id="target-inside-limits"),
        pytest.param(120, -1, "hit_and_miss", id="target-inside-near-limit"),
        pytest.param(130, 0, "none", id="neutral-indicator"),
        pytest.param(NAN, 1, "none", id="no-target"),
    ],
)
def test_it_gives_assurance_against_a_target(target: float, direction: int, expected: str) -> None:
    limits = stats.spc(_row(*B), direction=direction)  # limits 73.4 … 126.6
    assert stats.assurance(limits, [target], [direction])[0] == expected


def test_it_gives_assurance_per_series() -> None:
    limits = stats.spc(np.array([B] * 3), direction=1)
    np.testing.assert_array_equal(
        stats.assurance(limits, np.array([130.0, 70.0, 100.0]), np.array([1, 1, 1])),
        ["fail", "pass", "hit_and_miss"],
    )


# --------------------------------------------------------------------------- tests of counts


@pytest.mark.parametrize(
    ("c1", "c2", "t1", "t2"),
    [
        pytest.param(34_242, 44_070, 1, 1, id="seed-robbery"),
        pytest.param(10, 20, 1, 1, id="small-counts"),
        pytest.param(0, 5, 1, 1, id="zero-count"),
        pytest.param(5, 5, 1, 1, id="equal-counts"),
        pytest.param(3, 7, 2, 1, id="unequal-exposure"),
        pytest.param(17, 4, 0.5, 1, id="higher-than-exposure"),
        pytest.param(1_000_000, 1_001_000, 1, 1, id="large-counts"),
    ],
)
def test_it_tests_two_poisson_counts_like_the_conditional_binomial(
    c1: int, c2: int, t1: float, t2: float
) -> None:
    expected = sps.binomtest(c1, c1 + c2, t1 / (t1 + t2)).pvalue
    assert stats.poisson_test(c1, c2, t1, t2) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_it_tests_many_count_pairs_at_once() -> None:
    rng = np.random.default_rng(11)
    c1 = rng.integers(0, 80, 500)
    c2 = rng.integers(0, 80, 500)
    t1 = rng.choice([0.5, 1.0, 2.0], 500)
    ours = stats.poisson_test(c1, c2, t1, 1.0)
    for a, b, t, p in zip(c1, c2, t1, ours, strict=True):
        expected = 1.0 if a + b == 0 else sps.binomtest(int(a), int(a + b), t / (t + 1)).pvalue
        assert p == pytest.approx(expected, rel=1e-9)
    assert math.isnan(stats.poisson_test(NAN, 3))


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # 77/100, z = 1.96: centre (154 + 3.8416) / 207.6832, half-width
        # 1.96 / 207.6832 × √(4·100·0.77·0.23 + 3.8416).
        pytest.param(77, 100, 0.678454, 0.841568, id="77-of-100"),
        # 0/10: the upper end is z² / (n + z²) = 3.8416 / 13.8416.
        pytest.param(0, 10, 0.0, 0.277540, id="none-of-10"),
        pytest.param(10, 10, 0.722460, 1.0, id="all-of-10"),
        pytest.param(0, 0, NAN, NAN, id="no-denominator"),
    ],
)
def test_it_gives_a_wilson_interval(k: int, n: int, low: float, high: float) -> None:
    lo, hi = stats.wilson_interval(k, n)
    np.testing.assert_allclose([lo, hi], [low, high], atol=1e-6)


def test_it_gives_the_same_wilson_interval_as_scipy() -> None:
    z = float(sps.norm.ppf(0.975))
    for k, n in [(77, 100), (3, 40), (39, 40), (500, 1234)]:
        ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = stats.wilson_interval(k, n, z=z)
        assert (float(lo), float(hi)) == pytest.approx((ci.low, ci.high), abs=1e-12)


# --------------------------------------------------------------------------- forecast


@pytest.mark.parametrize(
    ("values", "fy_start", "agg", "value", "months", "seasonal"),
    [
        # No previous year: pro rata, (10 + 20 + 30) × 12 / 3.
        pytest.param([10, 20, 30], 0, "sum", 240, 3, False, id="pro-rata"),
        # Previous year 10 × 6 then 30 × 6 = 240; its first three months hold
        # 30/240 = 12.5%, so 36 so far projects to 36 / 0.125.
        pytest.param([10] * 6 + [30] * 6 + [12, 12, 12], 12, "sum", 288, 3, True, id="seasonal"),
        pytest.param(
            [10] * 11 + [NAN] + [12, 12, 12],
            12,
            "sum",
            144,
            3,
            False,
            id="incomplete-previous-year-is-pro-rata",
        ),
        pytest.param([10, 20, NAN], 0, "sum", 180, 2, False, id="late-month-not-observed-yet"),
        pytest.param([10, NAN, 30], 0, "sum", NAN, 3, False, id="gap-is-not-guessed"),
        pytest.param([10, 20, 30], 0, "mean", 20, 3, False, id="mean-so-far"),
        pytest.param([10, 20, 30], 0, "last", 30, 3, False, id="last-so-far"),
        pytest.param([NAN, NAN], 0, "sum", NAN, 0, False, id="nothing-observed"),
        # The year began two columns before the data: its first months are unknown.
        pytest.param([10, 20, 30], -2, "sum", NAN, 5, False, id="year-began-before-data"),
    ],
)
def test_it_projects_the_financial_year(
    values: list[float],
    fy_start: int,
    agg: stats.Agg,
    value: float,
    months: int,
    seasonal: bool,
) -> None:
    result = stats.forecast_year_end(_row(*values), fy_start, 12, agg)
    np.testing.assert_allclose(result.value, [value])
    assert result.months[0] == months
    assert result.seasonal[0] == seasonal


@pytest.mark.parametrize("recalc", [False, True])
def test_spc_charted_in_blocks_of_series_is_the_chart_of_all_at_once(
        monkeypatch: pytest.MonkeyPatch, recalc: bool) -> None:
    """A large matrix is charted a block of series at a time (``SPC_BLOCK``) for speed;
    every limit, flag and segment must be exactly what one chart of every series gives,
    with missing points, a direction per series and a rebased baseline."""
    rng = np.random.default_rng(7)
    x = rng.poisson(50, (103, 40)).astype(float)
    x[rng.random(x.shape) < 0.08] = np.nan
    x[5] = 50.0  # a flat series: amr 0
    x[9, 20:] += 40  # a shift
    direction = rng.choice([-1, 0, 1], 103)

    def charts() -> list[stats.SpcResult]:
        return [stats.spc(x, direction=direction, recalc_screened=recalc),
                stats.spc(x, baseline_end=14, direction=direction, recalc_screened=recalc),
                stats.spc_rebased(x, [12, 30], direction=direction, baseline_len=10,
                                  recalc_screened=recalc)]

    monkeypatch.setattr(stats, "SPC_BLOCK", 10_000)
    whole = charts()
    monkeypatch.setattr(stats, "SPC_BLOCK", 10)
    blocks = charts()
    for one, cut in zip(whole, blocks, strict=True):
        for name in ("mean", "amr", "upper", "lower", "near_upper", "near_lower", "trial",
                     "direction", "special", "side", "variation"):
            assert np.array_equal(getattr(one, name), getattr(cut, name), equal_nan=True), name
        assert len(one.segments) == len(cut.segments)
        for a, b in zip(one.segments, cut.segments, strict=True):
            assert (a.start, a.stop) == (b.start, b.stop)
            for name in ("mean", "amr", "upper", "lower", "near_upper", "near_lower",
                         "n_baseline", "trial"):
                assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True)
    assert (blocks[0].special != 0).any() and (blocks[2].special != 0).any()
