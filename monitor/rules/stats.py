"""Vectorised statistics over a matrix of series: windows, trends, SPC, tests.

Every function takes ``x`` of shape ``(n_series, n_periods)``, float64, with NaN
for a missing observation, and answers for all series at once with array
operations. Loops run over window positions, lags or blocks of rows, never
over series. Several functions work time-major (transposed) internally, so
that each shifted comparison is one long contiguous vector operation.

Missing data is never guessed: a window statistic over a window with a gap is
NaN and its ``complete`` mask is False (``window_last`` is the one deliberate
exception: it falls back to the latest value the window holds).

Contents:

- windows: ``rolling_sum``, ``window_sum``, ``window_mean``, ``window_last``,
  ``window_complete``, ``period_change`` (→ ``Change``);
- runs and slopes: ``consecutive_runs``, ``ls_slope``;
- trend tests: ``mann_kendall``, ``seasonal_mann_kendall`` (→ ``MannKendall``),
  equal to ``pymannkendall.original_test`` / ``seasonal_test``;
- statistical process control, NHSRplotthedots semantics: ``spc``,
  ``spc_rebased`` (→ ``SpcResult``), ``spc_icon``, ``spc_categories``,
  ``point_limits``, ``assurance``;
- significance: ``poisson_test``, ``wilson_interval``;
- projection: ``forecast_year_end`` (→ ``YearEndForecast``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

# scipy (its ``special`` and ``stats``) is imported by the two functions that use it, not
# here: its ~70 MB would otherwise sit in every distributed worker (monitor/rules/worker.py)
# whose rules need neither a trend test nor a Poisson test.

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
Int8Array = NDArray[np.int8]
StrArray = NDArray[np.str_]

Agg = Literal["sum", "mean", "last"]

# Rows per block in the pairwise (Mann–Kendall) computations: the per-block
# scratch (block × 630 slopes for 36 periods, 10 MB) stays in the L3 cache.
_BLOCK = 2048

# SPC constants, spelled as NHSRplotthedots spells them so limits agree to the bit.
_LIMIT = 2.66
_NEAR_LIMIT = 2 * (_LIMIT / 3)
_MR_SCREEN = 3.267
_TRIAL_POINTS = 12

# Which SPC rule flagged a point (``SpcResult.special``); lower number wins.
RULE_NONE = 0
RULE_OUTSIDE_LIMITS = 1
RULE_TREND = 2
RULE_TWO_OF_THREE = 3
RULE_SHIFT = 4

# What a point's variation means (``SpcResult.variation``).
VARIATION_COMMON = 0
VARIATION_IMPROVEMENT = 1
VARIATION_CONCERN = -1
VARIATION_NEUTRAL = 2


# --------------------------------------------------------------------------- helpers


def _as_matrix(x: ArrayLike) -> FloatArray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"x must be a 2-D (n_series, n_periods) array, got shape {a.shape}")
    return a


def _end_index(x: FloatArray, end: int) -> int:
    """Return ``end`` as a non-negative column index (negative counts from the right)."""
    n_periods = x.shape[1]
    idx = end + n_periods if end < 0 else end
    if not 0 <= idx < n_periods:
        raise ValueError(f"end={end} is outside the {n_periods} periods of x")
    return idx


def _check_len(n: int, name: str = "n") -> None:
    if n < 1:
        raise ValueError(f"{name} must be at least 1, got {n}")


def _window(x: FloatArray, end: int, n: int) -> FloatArray | None:
    """Return the columns ``end-n+1 .. end``, or None when they start before column 0."""
    _check_len(n)
    stop = _end_index(x, end) + 1
    if stop - n < 0:
        return None
    return x[:, stop - n : stop]


def _divide(num: FloatArray, den: FloatArray) -> FloatArray:
    """Return num / den, NaN wherever den is 0 or NaN (no warnings)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


# --------------------------------------------------------------------------- windows


def rolling_sum(x: ArrayLike, n: int) -> FloatArray:
    """Return the sum of each run of ``n`` periods ending at every column.

    Shape ``(n_series, n_periods)``; column ``t`` holds the sum of columns
    ``t-n+1 .. t``. NaN where the window starts before column 0 or holds a NaN.
    Each window is summed on its own (no cumulative-sum differences), so a NaN
    only spoils its own windows and sums of counts are exact.
    """
    a = _as_matrix(x)
    _check_len(n)
    n_periods = a.shape[1]
    out = np.full((n_periods, a.shape[0]), np.nan)
    if n <= n_periods:
        # Time-major, the window sum is n additions of shifted contiguous blocks.
        at = np.ascontiguousarray(a.T)
        width = n_periods - n + 1
        acc = out[n - 1 :]
        acc[...] = at[:width]
        for offset in range(1, n):
            acc += at[offset : offset + width]
    return np.ascontiguousarray(out.T)


def window_complete(x: ArrayLike, end: int, n: int) -> BoolArray:
    """Return, per series, whether the ``n`` periods ending at ``end`` exist and hold no NaN."""
    w = _window(_as_matrix(x), end, n)
    if w is None:
        return np.zeros(np.shape(x)[0], dtype=np.bool_)
    return np.asarray(~np.isnan(w).any(axis=1), dtype=np.bool_)


def window_sum(x: ArrayLike, end: int, n: int) -> FloatArray:
    """Return, per series, the sum over the ``n`` periods ending at column ``end``.

    ``end`` is inclusive; a negative ``end`` counts from the right (-1 is the
    last column). NaN when the window is incomplete (see ``window_complete``).
    """
    a = _as_matrix(x)
    w = _window(a, end, n)
    if w is None:
        return np.full(a.shape[0], np.nan)
    return np.asarray(w.sum(axis=1), dtype=np.float64)


def window_mean(x: ArrayLike, end: int, n: int) -> FloatArray:
    """Return, per series, the mean over the ``n`` periods ending at ``end``; NaN if incomplete."""
    return window_sum(x, end, n) / n


def window_last(x: ArrayLike, end: int, n: int) -> FloatArray:
    """Return, per series, the latest non-NaN value among the ``n`` periods ending at ``end``.

    NaN when the window holds no value or starts before column 0.
    """
    a = _as_matrix(x)
    w = _window(a, end, n)
    if w is None:
        return np.full(a.shape[0], np.nan)
    valid = ~np.isnan(w)
    last = n - 1 - np.argmax(valid[:, ::-1], axis=1)
    value = np.take_along_axis(w, last[:, None], axis=1)[:, 0]
    return np.where(valid.any(axis=1), value, np.nan)


def _window_agg(a: FloatArray, end: int, n: int, agg: Agg) -> tuple[FloatArray, BoolArray]:
    """Return (value, complete) of one window under ``agg``."""
    if agg == "sum":
        value = window_sum(a, end, n)
    elif agg == "mean":
        value = window_mean(a, end, n)
    elif agg == "last":
        value = window_last(a, end, n)
    else:
        raise ValueError(f"agg must be 'sum', 'mean' or 'last', got {agg!r}")
    return value, ~np.isnan(value)


@dataclass(frozen=True, slots=True)
class Change:
    """One window compared with an earlier one, per series.

    ``current`` and ``baseline`` are the aggregated windows (NaN when incomplete),
    ``delta = current - baseline`` in the indicator's unit, ``pct = delta /
    baseline * 100`` (NaN when the baseline is 0), and ``complete`` is True only
    where both windows are complete.
    """

    current: FloatArray
    baseline: FloatArray
    delta: FloatArray
    pct: FloatArray
    complete: BoolArray


def period_change(x: ArrayLike, end: int, n: int, lag: int, agg: Agg = "sum") -> Change:
    """Compare the ``n`` periods ending at ``end`` with the ``n`` ending at ``end - lag``.

    ``lag = n`` is "rolling N vs previous N"; ``lag = 12`` on monthly data is
    "same period last year". ``agg`` aggregates each window: ``sum`` and ``mean``
    need every period present; ``last`` takes the latest value in the window
    and is complete when the window holds any value.

    Returns a ``Change``; numbers are NaN wherever a window is incomplete or
    starts before column 0.
    """
    a = _as_matrix(x)
    _check_len(lag, "lag")
    stop = _end_index(a, end)
    current, cur_ok = _window_agg(a, stop, n, agg)
    if stop - lag >= 0:
        baseline, base_ok = _window_agg(a, stop - lag, n, agg)
    else:
        baseline = np.full(a.shape[0], np.nan)
        base_ok = np.zeros(a.shape[0], dtype=np.bool_)
    delta = current - baseline
    pct = _divide(delta, baseline) * 100.0
    return Change(current, baseline, delta, pct, cur_ok & base_ok)


# --------------------------------------------------------------------------- runs, slope


def consecutive_runs(x: ArrayLike) -> IntArray:
    """Return, per series, the signed length of the run of changes ending at the last column.

    +k: the last k period-on-period changes were all strict rises (k+1 points);
    -k: all strict falls; 0: the last change is a tie or touches a NaN. A tie
    or a NaN breaks a run.
    """
    a = _as_matrix(x)
    if a.shape[1] < 2:
        return np.zeros(a.shape[0], dtype=np.int64)
    d = np.diff(a, axis=1)
    sign = (d > 0).astype(np.int8) - (d < 0).astype(np.int8)
    last = sign[:, -1]
    same = sign[:, ::-1] == last[:, None]
    length = np.where(same.all(axis=1), same.shape[1], np.argmin(same, axis=1))
    return np.asarray(length * last, dtype=np.int64)


def ls_slope(x: ArrayLike) -> FloatArray:
    """Return, per series, the least-squares slope per period over the columns.

    NaN points are left out of the fit; NaN where fewer than 3 points remain
    (or all remaining points share one column, impossible here). Computed as
    matrix products of the values and the validity mask with a fixed design.
    """
    a = _as_matrix(x)
    n_periods = a.shape[1]
    t = np.arange(n_periods, dtype=np.float64) - (n_periods - 1) / 2
    valid = ~np.isnan(a)
    m = valid.astype(np.float64)
    y = np.where(valid, a, 0.0)
    n = m.sum(axis=1)
    st = m @ t
    stt = m @ (t * t)
    sy = y.sum(axis=1)
    sty = y @ t
    slope = _divide(n * sty - st * sy, n * stt - st * st)
    return np.where(n >= 3, slope, np.nan)


# --------------------------------------------------------------------------- Mann–Kendall


@dataclass(frozen=True, slots=True)
class MannKendall:
    """A Mann–Kendall trend test, per series.

    ``s`` (score), ``var_s`` (variance with tie correction), ``z`` (continuity
    corrected), ``p`` (two-sided), ``trend`` (-1 decreasing, 0 none, +1
    increasing at the requested ``alpha``), ``tau`` (Kendall's tau),
    ``sen_slope`` (median pairwise slope per period, or per cycle for the
    seasonal test; NaN when not requested) and ``n`` (points used).
    """

    s: FloatArray
    var_s: FloatArray
    z: FloatArray
    p: FloatArray
    trend: Int8Array
    tau: FloatArray
    sen_slope: FloatArray
    n: IntArray


def _middle(a: NDArray[np.floating]) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    """Return the lower and upper middle values of each row of ``a`` (no NaN; partitioned in place).

    One partition at the upper middle; the lower middle of an even row is then
    the largest value to its left, cheaper than partitioning at two positions.
    """
    width = a.shape[1]
    h = width // 2
    a.partition(h, axis=1)
    upper = a[:, h].copy()
    return (upper if width % 2 else a[:, :h].max(axis=1)), upper


def _median_with_nan(a: FloatArray) -> FloatArray:
    """Return the NaN-ignoring median of each row of ``a``; NaN for a row with no value."""
    width = a.shape[1]
    b = np.sort(a, axis=1)  # NaN sorts last
    m = (~np.isnan(b)).sum(axis=1)
    lo = np.take_along_axis(b, np.maximum((m - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(b, np.minimum(m // 2, width - 1)[:, None], axis=1)[:, 0]
    return np.where(m > 0, (lo + hi) / 2, np.nan)


def _exact_slope(v: NDArray[np.float32], max_lag: int) -> FloatArray:
    """Return the float64 slope d / k (integer d, 1 ≤ k ≤ max_lag) whose float32 rounding is v.

    Only called where such a slope is unique (see ``_sen_slope``): for the true
    lag k, rint(v·k) is the true d, and no other fraction rounds to v.
    """
    v64 = v.astype(np.float64)
    out = np.full(v.shape, np.nan)
    for k in range(1, max_lag + 1):
        cand = np.rint(v64 * k) / k
        hit = np.isnan(out) & (cand.astype(np.float32) == v)
        out[hit] = cand[hit]
    return out


def _sen_slope(seasons: FloatArray) -> FloatArray:
    """Return Sen's slope per series from ``seasons`` (n_series, n_seasons, n_steps).

    The median of the pairwise slopes (x_j - x_i) / (j - i) within each
    season, pooled per series, NaN pairs left out. Rows are split three ways:

    1. rows with a NaN: sort and take the middle of the valid slopes;
    2. integer rows whose range r satisfies r·K·(K-1) < 2**22 (K = n_steps - 1,
       the largest lag): distinct slopes d/k differ by at least 1/(K(K-1)),
       more than twice the float32 rounding error r·2**-23.9, so float32
       rounding preserves their order and is one-to-one. The middle is found
       in float32 (partitioning half the bytes, about twice as fast) and
       mapped back to the exact float64 fraction;
    3. other rows: partition the float64 slopes.
    """
    n_series, _, m = seasons.shape
    out = np.full(n_series, np.nan)
    if m < 2:
        return out
    max_lag = m - 1
    flat = seasons.reshape(n_series, -1)
    has_nan = ~np.isfinite(flat).all(axis=1)
    with np.errstate(invalid="ignore"):
        span = flat.max(axis=1) - flat.min(axis=1)
    exact32 = (
        ~has_nan
        & (flat == np.rint(flat)).all(axis=1)
        & (span * max_lag * max(max_lag - 1, 1) < 2**22)
    )
    for rows, kind in ((exact32, "f32"), (~has_nan & ~exact32, "f64"), (has_nan, "nan")):
        if not rows.any():
            continue
        sub = seasons[rows].reshape(-1, m)
        dtype = np.float32 if kind == "f32" else np.float64
        slopes = _pair_slopes(sub, dtype).reshape(int(rows.sum()), -1)
        if kind == "nan":
            out[rows] = _median_with_nan(slopes.astype(np.float64))
            continue
        lo, hi = _middle(slopes)
        if kind == "f32":
            out[rows] = (_exact_slope(lo, max_lag) + _exact_slope(hi, max_lag)) / 2
        else:
            out[rows] = (lo + hi) / 2
    return out


def _mk_rows(rows: FloatArray) -> tuple[IntArray, IntArray, IntArray]:
    """Return (S, tie term, valid count) of the Mann–Kendall test on each row.

    The tie term is sum over tie groups of t(t-1)(2t+5). Steps:
    1. work time-major, so every lag is a few contiguous vector operations;
    2. per lag k, count pairs (i, i+k) with a rise and pairs that tie, adding
       the ties to both members' tie counts c (NaN compares false, so pairs
       with a NaN drop out);
    3. S = rises - falls = 2·rises + ties - valid pairs; a point in a tie group
       of size t has c = t - 1, and t(t-1)(2t+5) summed over a group equals
       c(2c+7) summed over its members.
    """
    xt = np.ascontiguousarray(rows.T)
    m, r = xt.shape
    # Per-position counts never exceed m - 1, so the narrowest type that holds
    # that keeps the accumulators (and the memory traffic) small.
    acc = np.dtype(np.uint8) if m <= 255 else np.dtype(np.uint32)
    rises = np.zeros((m, r), dtype=acc)
    ties = np.zeros((m, r), dtype=acc)
    gt = np.empty((m, r), dtype=np.bool_)
    eq = np.empty((m, r), dtype=np.bool_)
    for k in range(1, m):
        g, e = gt[: m - k], eq[: m - k]
        np.greater(xt[k:], xt[:-k], out=g)
        np.equal(xt[k:], xt[:-k], out=e)
        rises[: m - k] += g.view(np.uint8)
        e8 = e.view(np.uint8)
        ties[k:] += e8
        ties[: m - k] += e8
    nv = (~np.isnan(xt)).sum(axis=0, dtype=np.int64)
    c = ties.astype(np.int64)
    tie_pairs = c.sum(axis=0) // 2
    s = 2 * rises.sum(axis=0, dtype=np.int64) + tie_pairs - nv * (nv - 1) // 2
    tie_term = (c * (2 * c + 7)).sum(axis=0)
    return s, tie_term, nv


def _pair_slopes(rows: FloatArray, dtype: type[np.floating] = np.float64) -> NDArray[np.floating]:
    """Return every pairwise slope (x_j - x_i) / (j - i), i < j, of each row (NaN-propagating).

    Computed in float64 and stored as ``dtype`` (float32 rounds the float64 slope).
    """
    r, m = rows.shape
    out = np.empty((r, m * (m - 1) // 2), dtype=dtype)
    off = 0
    for k in range(1, m):
        np.divide(rows[:, k:] - rows[:, :-k], k, out=out[:, off : off + m - k], casting="same_kind")
        off += m - k
    return out


def _mk_block(
    xb: FloatArray, period: int, with_slope: bool
) -> tuple[IntArray, FloatArray, IntArray, FloatArray]:
    """Return (S, var S, n, Sen slope) for a block of series, summed over ``period`` seasons."""
    b, p = xb.shape
    cycles = -(-p // period)
    pad = cycles * period - p
    if pad:
        xb = np.concatenate([xb, np.full((b, pad), np.nan)], axis=1)
    # seasons[i, s, c] is series i, season s, cycle c (one season of p steps when period = 1).
    seasons = xb.reshape(b, cycles, period).transpose(0, 2, 1)
    s, tie_term, nv = _mk_rows(seasons.reshape(b * period, cycles))
    var = (nv * (nv - 1) * (2 * nv + 5) - tie_term) / 18.0
    if period > 1:
        s = s.reshape(b, period).sum(axis=1)
        var = var.reshape(b, period).sum(axis=1)
        nv = nv.reshape(b, period).sum(axis=1)
    slope = _sen_slope(np.ascontiguousarray(seasons)) if with_slope else np.full(b, np.nan)
    return s, var, nv, slope


def _mann_kendall(
    x: ArrayLike, period: int, alpha: float, with_slope: bool, workers: int
) -> MannKendall:
    a = _as_matrix(x)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    n_series = a.shape[0]
    s = np.zeros(n_series, dtype=np.int64)
    var = np.zeros(n_series)
    nv = np.zeros(n_series, dtype=np.int64)
    slope = np.full(n_series, np.nan)

    def run(start: int) -> None:
        stop = min(start + _BLOCK, n_series)
        s[start:stop], var[start:stop], nv[start:stop], slope[start:stop] = _mk_block(
            a[start:stop], period, with_slope
        )

    _for_blocks(run, n_series, workers)

    sf = s.astype(np.float64)
    pairs = (nv * (nv - 1) // 2).astype(np.float64)
    if period > 1:
        # n counts points over all seasons; pairs are only compared within a season.
        pairs = _seasonal_pairs(a, period)
    has_pairs = pairs > 0
    root = np.sqrt(var)
    z = np.where(sf > 0, _divide(sf - 1, root), np.where(sf < 0, _divide(sf + 1, root), 0.0))
    z = np.where(has_pairs, z, np.nan)
    from scipy import special

    p = 2.0 * special.ndtr(-np.abs(z))
    crit = float(special.ndtri(1 - alpha / 2))
    trend = np.where(np.abs(z) > crit, np.sign(z), 0).astype(np.int8)
    tau = _divide(sf, pairs)
    return MannKendall(sf, var, z, p, trend, tau, slope, nv)


def _seasonal_pairs(a: FloatArray, period: int) -> FloatArray:
    """Return, per series, the number of within-season pairs of valid points."""
    b, p = a.shape
    cycles = -(-p // period)
    valid = np.zeros((b, cycles * period), dtype=np.int64)
    valid[:, :p] = ~np.isnan(a)
    per_season = valid.reshape(b, cycles, period).sum(axis=1)
    return np.asarray((per_season * (per_season - 1) // 2).sum(axis=1), dtype=np.float64)


def _for_blocks(run: Callable[[int], None], n_rows: int, workers: int) -> None:
    """Call ``run(start)`` for each block of rows, on ``workers`` threads.

    numpy releases the GIL in the element loops, so two workers use two cores.
    """
    starts = range(0, n_rows, _BLOCK)
    if workers <= 1 or n_rows <= _BLOCK:
        for start in starts:
            run(start)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(run, starts):
            pass


def mann_kendall(
    x: ArrayLike, alpha: float = 0.05, *, with_slope: bool = True, workers: int = 1
) -> MannKendall:
    """Run the Mann–Kendall trend test on each series (row) of ``x``.

    Returns a ``MannKendall`` whose s, var_s, z, p, tau and sen_slope equal
    ``pymannkendall.original_test`` on each row. NaN handling: pairs with a
    NaN are left out. For S, var S, z and p that is exactly what pymannkendall
    does (it drops NaNs first); for Sen's slope, pymannkendall keeps each
    point's original position (a pair three columns apart is divided by 3 even
    with a NaN between), and so does this function, so slopes still agree; on
    the series with NaNs *removed* the slopes would differ. z, p and tau are
    NaN and trend is 0 when a series has fewer than two points;
    ``with_slope=False`` skips Sen's slope (the costly part).
    ``workers > 1`` spreads blocks of rows over threads.
    """
    return _mann_kendall(x, 1, alpha, with_slope, workers)


def seasonal_mann_kendall(
    x: ArrayLike,
    period: int = 12,
    alpha: float = 0.05,
    *,
    with_slope: bool = True,
    workers: int = 1,
) -> MannKendall:
    """Run the seasonal Mann–Kendall test (Hirsch–Slack) on each series of ``x``.

    Column ``t`` belongs to season ``t % period``; S and var S are the sums of
    the per-season tests, and Sen's slope is the median of the within-season
    pairwise slopes, per cycle (per year for monthly data). Equal to
    ``pymannkendall.seasonal_test`` on each row, NaNs included (pymannkendall
    also pads a partial last cycle with NaN and skips NaN pairs per season).
    """
    if period < 2:
        raise ValueError(f"period must be at least 2, got {period}")
    return _mann_kendall(x, period, alpha, with_slope, workers)


# --------------------------------------------------------------------------- SPC


@dataclass(frozen=True, slots=True)
class SpcSegment:
    """The XmR limits of one baseline segment (columns ``start`` to ``stop - 1``), per series.

    ``n_baseline`` counts the non-missing points the limits came from;
    ``trial`` is True when that is fewer than 12.
    """

    start: int
    stop: int
    mean: FloatArray
    amr: FloatArray
    upper: FloatArray
    lower: FloatArray
    near_upper: FloatArray
    near_lower: FloatArray
    n_baseline: IntArray
    trial: BoolArray


@dataclass(frozen=True, slots=True)
class SpcResult:
    """An XmR chart for every series.

    Per series, the limits of the latest segment (the one holding the last
    column): ``mean``, ``amr`` (mean moving range), ``upper``/``lower`` (mean ±
    2.66·amr), ``near_upper``/``near_lower`` (mean ± ⅔·2.66·amr), ``trial``
    (fewer than 12 baseline points) and ``direction`` (+1 up is good, -1 down
    is good, 0 neutral). All segments are in ``segments``.

    Per point, shape (n_series, n_periods), int8:

    - ``special``: the rule that flagged the point, ``RULE_*`` (0 none,
      1 outside the limits, 2 trend, 3 two of three near a limit, 4 shift);
      the lowest number wins;
    - ``side``: +1 high, -1 low, 0 for common cause. For a trend it is the
      trend's direction, otherwise the side of the mean;
    - ``variation``: ``VARIATION_*``: 0 common cause, +1 improvement,
      -1 concern, 2 neutral (special cause of a neutral indicator; ``side``
      says high or low).
    """

    mean: FloatArray
    amr: FloatArray
    upper: FloatArray
    lower: FloatArray
    near_upper: FloatArray
    near_lower: FloatArray
    trial: BoolArray
    direction: Int8Array
    special: Int8Array
    side: Int8Array
    variation: Int8Array
    segments: tuple[SpcSegment, ...]


def _segment_limits(
    at: FloatArray, start: int, stop: int, base_start: int, base_stop: int, screen: bool
) -> SpcSegment:
    """Return the limits of periods [start, stop) computed from periods [base_start, base_stop).

    ``at`` is time-major, shape (n_periods, n_series).
    """
    base = at[base_start:base_stop]
    mr = np.abs(base[1:] - base[:-1])
    if not np.isnan(base).any():
        count = np.full(base.shape[1], base.shape[0], dtype=np.int64)
        mean = base.mean(axis=0)
        mr_ok = np.ones(mr.shape, dtype=np.bool_)
        amr = mr.mean(axis=0) if mr.shape[0] else np.full(base.shape[1], np.nan)
    else:
        valid = ~np.isnan(base)
        count = valid.sum(axis=0)
        mean = _divide(np.where(valid, base, 0.0).sum(axis=0), count.astype(np.float64))
        mr_ok = ~np.isnan(mr)
        amr = _divide(np.where(mr_ok, mr, 0.0).sum(axis=0), mr_ok.sum(axis=0).astype(np.float64))
    if screen:
        # Drop moving ranges of 3.267·amr or more and average the rest once more.
        # An amr of 0 (a flat baseline) stays 0 rather than becoming "no ranges".
        keep = mr_ok & ((mr < _MR_SCREEN * amr) | (amr == 0))
        amr = _divide(np.where(keep, mr, 0.0).sum(axis=0), keep.sum(axis=0).astype(np.float64))
    return SpcSegment(
        start=start,
        stop=stop,
        mean=mean,
        amr=amr,
        upper=mean + _LIMIT * amr,
        lower=mean - _LIMIT * amr,
        near_upper=mean + _NEAR_LIMIT * amr,
        near_lower=mean - _NEAR_LIMIT * amr,
        n_baseline=count.astype(np.int64),
        trial=count < _TRIAL_POINTS,
    )


def _run_starts(mask: BoolArray, length: int, same_segment: BoolArray) -> BoolArray:
    """Return where a window of ``length`` all-True time steps starts inside one segment.

    ``mask`` is time-major (steps, n_series); the result has one row per entry
    of ``same_segment``, which says whether the window's points share a segment.
    """
    n_starts = same_segment.shape[0]
    if length <= 0 or n_starts <= 0:
        return np.zeros((max(n_starts, 0), mask.shape[1]), dtype=np.bool_)
    # AND of shifted blocks: a cumulative sum along time would be strided and slower.
    out = mask[:n_starts] & same_segment[:, None]
    for offset in range(1, length):
        out &= mask[offset : offset + n_starts]
    return out


def _cover(starts: BoolArray, length: int, n_periods: int) -> BoolArray:
    """Return the points lying in any window of ``length`` whose start is True (time-major)."""
    out = np.zeros((n_periods, starts.shape[1]), dtype=np.bool_)
    n_starts = starts.shape[0]
    for offset in range(length):
        out[offset : offset + n_starts] |= starts
    return out


def _same_segment(seg: IntArray, length: int) -> BoolArray:
    """Return, per window start, whether a window of ``length`` points stays in one segment."""
    n_periods = seg.shape[0]
    if length > n_periods:
        return np.zeros(0, dtype=np.bool_)
    return np.asarray(seg[: n_periods - length + 1] == seg[length - 1 :], dtype=np.bool_)


SPC_BLOCK = 16_384  # series charted at a time: each block's arrays stay in the CPU's cache


def _spc(
    a: FloatArray,
    direction: ArrayLike,
    bounds: Sequence[tuple[int, int, int, int]],
    run_length: int,
    trend_length: int,
    screen: bool,
) -> SpcResult:
    """Compute the charts of ``a``'s series (rows) ``SPC_BLOCK`` series at a time and
    put them end to end (see ``_spc_block``).

    Every series' chart is its own (no number is shared between series), so the blocks'
    charts end to end are exactly the chart of all of them at once; made at once, every
    step's arrays (time-major copies, moving ranges, masks) were as large as the whole
    matrix, 150 MB apiece at 500,000 series: twice to four times the CPU.
    """
    n_series = a.shape[0]
    block = SPC_BLOCK
    if n_series <= block:
        return _spc_block(a, direction, bounds, run_length, trend_length, screen)
    dirs = np.broadcast_to(np.sign(np.asarray(direction)).astype(np.int8), (n_series,))
    parts = [_spc_block(a[lo:lo + block], dirs[lo:lo + block], bounds, run_length,
                        trend_length, screen) for lo in range(0, n_series, block)]
    return join_charts(parts)


def join_charts(parts: Sequence[SpcResult]) -> SpcResult:
    """Return the charts of consecutive blocks of series (each charted over the same
    periods, segments and rules) as one chart."""
    segments = tuple(
        SpcSegment(first.start, first.stop,
                   *[np.concatenate([getattr(p.segments[i], name) for p in parts])
                     for name in _SEGMENT_ARRAYS])
        for i, first in enumerate(parts[0].segments))
    arrays = {name: np.concatenate([getattr(p, name) for p in parts]) for name in _RESULT_ARRAYS}
    return SpcResult(**arrays, segments=segments)


_SEGMENT_ARRAYS = ("mean", "amr", "upper", "lower", "near_upper", "near_lower",
                   "n_baseline", "trial")
_RESULT_ARRAYS = ("mean", "amr", "upper", "lower", "near_upper", "near_lower", "trial",
                  "direction", "special", "side", "variation")


def _spc_block(
    a: FloatArray,
    direction: ArrayLike,
    bounds: Sequence[tuple[int, int, int, int]],
    run_length: int,
    trend_length: int,
    screen: bool,
) -> SpcResult:
    """Compute limits per segment ``(start, stop, base_start, base_stop)`` and apply the rules.

    Steps:
    1. go time-major, so every shifted comparison is one long vector operation;
    2. limits per segment; each point is classified against its own segment:
       side of the mean, outside the limits, or beyond a near limit only;
    3. rule windows (trend, two of three, shift) are found as window starts and
       only count when the whole window lies in one segment; every point of a
       qualifying window is flagged (for two of three, only the near points);
    4. the lowest rule number wins; side and variation follow from it.
    """
    if run_length < 2 or trend_length < 2:
        raise ValueError("run_length and trend_length must be at least 2")
    n_series, n_periods = a.shape
    dirs = np.broadcast_to(np.sign(np.asarray(direction)).astype(np.int8), (n_series,)).copy()
    at = np.ascontiguousarray(a.T)

    segments = tuple(_segment_limits(at, st, sp, bs, bp, screen) for st, sp, bs, bp in bounds)
    seg = np.zeros(n_periods, dtype=np.int64)
    above = np.empty(at.shape, dtype=np.bool_)
    below = np.empty(at.shape, dtype=np.bool_)
    outside = np.empty(at.shape, dtype=np.bool_)
    near = np.empty(at.shape, dtype=np.bool_)
    for i, s in enumerate(segments):
        cols = at[s.start : s.stop]
        seg[s.start : s.stop] = i
        np.greater(cols, s.mean, out=above[s.start : s.stop])
        np.less(cols, s.mean, out=below[s.start : s.stop])
        out = (cols > s.upper) | (cols < s.lower)
        outside[s.start : s.stop] = out
        near[s.start : s.stop] = ~out & ((cols > s.near_upper) | (cols < s.near_lower))

    # Trend: trend_length points, each strictly beyond the one before.
    d = at[1:] - at[:-1]
    ok_trend = _same_segment(seg, trend_length)
    up = _cover(_run_starts(d > 0, trend_length - 1, ok_trend), trend_length, n_periods)
    down = _cover(_run_starts(d < 0, trend_length - 1, ok_trend), trend_length, n_periods)
    # A turning point closing one trend and opening the other belongs to the
    # later one (the direction of the change to its right), as in NHSRplotthedots.
    right = np.zeros(at.shape, dtype=np.int8)
    right[:-1] = (d > 0).view(np.int8) - (d < 0).view(np.int8)
    trend_side = np.where(up & down, right, up.view(np.int8) - down.view(np.int8))

    # Two of three: a window of three points on one side of the mean, at least
    # two of them beyond a near limit (points outside the limits do not count,
    # as in NHSRplotthedots); the near points of the window are flagged.
    if n_periods >= 3:
        near_count = near[:-2].view(np.int8) + near[1:-1].view(np.int8) + near[2:].view(np.int8)
        one_side = (above[:-2] & above[1:-1] & above[2:]) | (below[:-2] & below[1:-1] & below[2:])
        starts = (near_count >= 2) & one_side & _same_segment(seg, 3)[:, None]
        two_of_three = _cover(starts, 3, n_periods) & near
    else:
        two_of_three = np.zeros(at.shape, dtype=np.bool_)

    # Shift: run_length or more points on one side of the mean (on it breaks the run).
    ok_run = _same_segment(seg, run_length)
    shift = _cover(
        _run_starts(above, run_length, ok_run) | _run_starts(below, run_length, ok_run),
        run_length,
        n_periods,
    )

    # Lowest rule number wins: write the rules from the last to the first.
    special = np.zeros(at.shape, dtype=np.int8)
    np.copyto(special, np.int8(RULE_SHIFT), where=shift)
    np.copyto(special, np.int8(RULE_TWO_OF_THREE), where=two_of_three)
    np.copyto(special, np.int8(RULE_TREND), where=up | down)
    np.copyto(special, np.int8(RULE_OUTSIDE_LIMITS), where=outside)
    flagged = special != RULE_NONE

    side = np.zeros(at.shape, dtype=np.int8)
    np.subtract(above.view(np.int8), below.view(np.int8), out=side, where=flagged)
    np.copyto(side, trend_side, where=special == RULE_TREND)

    # variation = side × direction (±1 improvement / concern), 2 when neutral, 0 if common.
    variation = side * dirs
    np.copyto(variation, np.int8(VARIATION_NEUTRAL), where=flagged & (dirs == 0))

    last = segments[-1]
    return SpcResult(
        mean=last.mean,
        amr=last.amr,
        upper=last.upper,
        lower=last.lower,
        near_upper=last.near_upper,
        near_lower=last.near_lower,
        trial=last.trial,
        direction=dirs,
        special=np.ascontiguousarray(special.T, dtype=np.int8),
        side=np.ascontiguousarray(side.T, dtype=np.int8),
        variation=np.ascontiguousarray(variation.T, dtype=np.int8),
        segments=segments,
    )


def spc(
    x: ArrayLike,
    baseline_end: int | None = None,
    baseline_start: int = 0,
    run_length: int = 7,
    trend_length: int = 7,
    recalc_screened: bool = False,
    *,
    direction: ArrayLike,
) -> SpcResult:
    """Return an XmR chart of each series with the NHS "Making Data Count" rules.

    Limits come from columns [baseline_start, baseline_end) only (the whole
    series when ``baseline_end`` is None; a frozen baseline otherwise); the
    rules are applied to every column. ``direction`` is +1 (up is good), -1
    (down is good) or 0 (neutral), a scalar or one per series.
    ``recalc_screened`` drops moving ranges ≥ 3.267·amr and recomputes amr
    (NHSRplotthedots' ``screen_outliers``, which is on by default there).
    ``run_length`` is the shift rule's run, ``trend_length`` the number of
    points in a trend (``trend_length - 1`` strict changes).

    Which points a rule flags, as NHSRplotthedots does:

    1. outside the limits (strictly beyond mean ± 2.66·amr): the point;
    2. trend: every point of a run of ``trend_length`` or more, each strictly
       above (below) the one before; a tie or a missing value breaks it. A
       point where a rising trend turns into a falling one takes the side of
       the later trend;
    3. two of three: in any three consecutive points all strictly on one side
       of the mean, with at least two beyond a near limit but inside the
       limits, those near points (not the third; a point outside the limits
       does not count as near);
    4. shift: every point of a run of ``run_length`` or more strictly on one
       side of the mean; a point on the mean or missing breaks it.

    Missing points are never flagged and break every run through them.
    Returns an ``SpcResult``.
    """
    a = _as_matrix(x)
    n_periods = a.shape[1]
    stop = n_periods if baseline_end is None else baseline_end
    if not 0 <= baseline_start < stop <= n_periods:
        raise ValueError(
            f"the baseline [{baseline_start}, {stop}) must be a non-empty range "
            f"of the {n_periods} periods"
        )
    return _spc(
        a,
        direction,
        [(0, n_periods, baseline_start, stop)],
        run_length,
        trend_length,
        recalc_screened,
    )


def spc_rebased(
    x: ArrayLike,
    breaks: Sequence[int],
    *,
    direction: ArrayLike,
    baseline_len: int | None = None,
    run_length: int = 7,
    trend_length: int = 7,
    recalc_screened: bool = False,
) -> SpcResult:
    """Return an XmR chart with the limits re-based at each column in ``breaks``.

    Each break starts a new segment whose limits come from its own points (its
    first ``baseline_len`` points when given, i.e. frozen per segment, as
    NHSRplotthedots' ``fix_after_n_points``). Rule windows never span two
    segments. The result's per-series limits are those of the last segment;
    all are in ``segments``.
    """
    a = _as_matrix(x)
    n_periods = a.shape[1]
    cuts = sorted(set(breaks))
    if any(not 0 < b < n_periods for b in cuts):
        raise ValueError(f"breaks must lie strictly between 0 and {n_periods}, got {list(breaks)}")
    if baseline_len is not None and baseline_len < 1:
        raise ValueError(f"baseline_len must be at least 1, got {baseline_len}")
    edges = [0, *cuts, n_periods]
    bounds = []
    for start, stop in itertools.pairwise(edges):
        base_stop = stop if baseline_len is None else min(stop, start + baseline_len)
        bounds.append((start, stop, start, base_stop))
    return _spc(a, direction, bounds, run_length, trend_length, recalc_screened)


def _categories(variation: Int8Array, side: Int8Array) -> StrArray:
    """Return the variation category of each element (see :func:`spc_categories`)."""
    kind = np.select(
        [
            variation == VARIATION_IMPROVEMENT,
            variation == VARIATION_CONCERN,
            variation == VARIATION_NEUTRAL,
        ],
        ["improvement", "concern", "neither"],
        default="common_cause",
    )
    suffix = np.where(side > 0, "_high", "_low")
    return np.where(kind == "common_cause", kind, np.char.add(kind, suffix)).astype(np.str_)


def spc_categories(result: SpcResult, rows: slice = slice(None)) -> StrArray:
    """Return the NHS variation category of every point, shape (n_series, n_periods)
    (of the series ``rows`` selects: one row's chart out of a matrix's).

    One of ``common_cause``, ``improvement_high``, ``improvement_low``,
    ``concern_high``, ``concern_low``, ``neither_high``, ``neither_low``: the
    point's ``variation`` with its ``side`` as the suffix (for a trend point the
    trend's direction, otherwise the side of its segment's mean). A missing
    point is ``common_cause``: it cannot be special.
    """
    return _categories(result.variation[rows], result.side[rows])


def column_categories(result: SpcResult, column: int) -> StrArray:
    """Return :func:`spc_categories` of column ``column`` alone, one per series."""
    return _categories(result.variation[:, column], result.side[:, column])


def spc_icon(result: SpcResult, column: int = -1) -> StrArray:
    """Return, per series, the NHS variation icon for the point at ``column`` (default the last).

    The category of that point, as :func:`spc_categories` names it.
    """
    return _categories(result.variation[:, column], result.side[:, column])


def point_limits(result: SpcResult, rows: slice = slice(None)
                 ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return ``(mean, lower, upper)`` for every point, each shaped (n_series, n_periods)
    (of the series ``rows`` selects).

    Each point carries the limits of the segment it lies in, so a chart re-based at
    a known change steps from one segment's limits to the next one's.
    """
    n_series, n_periods = result.special[rows].shape
    mean = np.full((n_series, n_periods), np.nan)
    lower = np.full((n_series, n_periods), np.nan)
    upper = np.full((n_series, n_periods), np.nan)
    for s in result.segments:
        mean[:, s.start : s.stop] = s.mean[rows, None]
        lower[:, s.start : s.stop] = s.lower[rows, None]
        upper[:, s.start : s.stop] = s.upper[rows, None]
    return mean, lower, upper


class _Limits(Protocol):
    @property
    def upper(self) -> FloatArray: ...

    @property
    def lower(self) -> FloatArray: ...


def assurance(limits: _Limits, target: ArrayLike, direction: ArrayLike) -> StrArray:
    """Return, per series, whether the process will meet ``target``.

    ``limits`` is an ``SpcResult`` or ``SpcSegment`` (anything with upper and
    lower). A target beyond the process limits on the bad side → ``fail``
    (consistently fails); on the good side → ``pass`` (consistently passes);
    inside or on the limits → ``hit_and_miss``; a NaN target, a neutral
    direction or missing limits → ``none``. As NHSRplotthedots: a target above
    the upper limit fails an up-is-good indicator and passes a down-is-good one.
    """
    upper = np.asarray(limits.upper, dtype=np.float64)
    lower = np.asarray(limits.lower, dtype=np.float64)
    t = np.broadcast_to(np.asarray(target, dtype=np.float64), upper.shape)
    d = np.broadcast_to(np.sign(np.asarray(direction)), upper.shape)
    known = ~np.isnan(t) & (d != 0) & ~np.isnan(upper) & ~np.isnan(lower)
    good_above = t > upper
    out = np.full(upper.shape, "hit_and_miss", dtype="<U12")
    out[good_above & (d > 0)] = "fail"
    out[good_above & (d < 0)] = "pass"
    out[(t < lower) & (d > 0)] = "pass"
    out[(t < lower) & (d < 0)] = "fail"
    out[~known] = "none"
    return out


# --------------------------------------------------------------------------- tests


def _largest_true(pred: Callable[[IntArray], BoolArray], lo: IntArray, hi: IntArray) -> IntArray:
    """Return the largest i in [lo, hi] with pred(i), or lo - 1 if none.

    ``pred`` must be True up to some point and False after it (a bisection).
    """
    left = lo - 1  # pred holds here by convention
    right = hi.copy()
    while np.any(left < right):
        mid = left + (right - left + 1) // 2
        ok = pred(np.clip(mid, lo, hi))
        active = left < right
        left = np.where(active & ok, mid, left)
        right = np.where(active & ~ok, mid - 1, right)
    return left


def poisson_test(
    c1: ArrayLike, c2: ArrayLike, t1: ArrayLike = 1.0, t2: ArrayLike = 1.0
) -> FloatArray:
    """Return the two-sided p-value that counts c1 (exposure t1) and c2 (t2) share one rate.

    Method: conditional on n = c1 + c2, c1 ~ Binomial(n, t1 / (t1 + t2)) when
    the rates are equal; the p-value is the exact two-sided binomial test,
    summing the probabilities of outcomes no more likely than c1 (with the
    relative tolerance 1e-7 that ``scipy.stats.binomtest`` uses), so results
    equal ``binomtest(c1, n, t1 / (t1 + t2)).pvalue``. The "other tail" is
    found by a vectorised bisection on the binomial pmf. Counts are rounded to
    integers; n = 0 gives 1; NaN in gives NaN out.
    """
    a1 = np.asarray(c1, dtype=np.float64)
    a2 = np.asarray(c2, dtype=np.float64)
    e1 = np.asarray(t1, dtype=np.float64)
    e2 = np.asarray(t2, dtype=np.float64)
    a1, a2, e1, e2 = np.broadcast_arrays(a1, a2, e1, e2)
    shape = a1.shape
    bad = np.isnan(a1) | np.isnan(a2) | np.isnan(e1) | np.isnan(e2)
    k = np.where(bad, 0, np.rint(a1)).astype(np.int64).ravel()
    n = k + np.where(bad, 0, np.rint(a2)).astype(np.int64).ravel()
    p = np.where(bad, 0.5, e1 / np.where(bad, 1.0, e1 + e2)).ravel()
    if np.any(k < 0) or np.any(n < k) or np.any((p < 0) | (p > 1)):
        raise ValueError("counts must be non-negative and exposures positive")
    from scipy import stats

    d = stats.binom.pmf(k, n, p)
    thr = d * (1 + 1e-7)
    pn = p * n
    low = k < pn
    pval = np.empty(k.size)
    # Each row's other tail is searched on its own side of the mean only (a bisection of
    # the pmf over the rows that need it, not over every row for both tails).
    r = np.flatnonzero(low)
    if r.size:
        # k below the mean: the other tail is x > ix, ix the last x >= ceil(pn) with
        # pmf >= thr.
        kr, nr, pr, tr = k[r], n[r], p[r], thr[r]
        ix = _largest_true(lambda i: stats.binom.pmf(i, nr, pr) >= tr,
                           np.ceil(pn[r]).astype(np.int64), nr)
        pval[r] = stats.binom.cdf(kr, nr, pr) + stats.binom.sf(ix, nr, pr)
    r = np.flatnonzero(~low)
    if r.size:
        # k above the mean: the other tail is x <= ix, ix the last x <= floor(pn) with
        # pmf <= thr.
        kr, nr, pr, tr = k[r], n[r], p[r], thr[r]
        top = np.floor(pn[r]).astype(np.int64)
        ix = _largest_true(lambda i: stats.binom.pmf(i, nr, pr) <= tr, np.zeros_like(top), top)
        pval[r] = stats.binom.cdf(ix, nr, pr) + stats.binom.sf(kr - 1, nr, pr)
    pval = np.where(k == pn, 1.0, np.minimum(pval, 1.0))
    pval = np.where(n == 0, 1.0, pval)
    return np.where(bad.ravel(), np.nan, pval).reshape(shape)


def wilson_interval(
    successes: ArrayLike, n: ArrayLike, z: float = 1.96
) -> tuple[FloatArray, FloatArray]:
    """Return (low, high), the Wilson score interval of the proportion successes / n.

    Without continuity correction; z = 1.96 is a 95% interval. NaN where n is 0
    or missing. The interval is 0 at the bottom when successes is 0 and 1 at
    the top when successes equals n, as ``scipy.stats.binomtest`` gives.
    """
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    k, m = np.broadcast_arrays(k, m)
    ok = m > 0
    safe = np.where(ok, m, 1.0)
    phat = k / safe
    z2 = z * z
    denom = 2 * (safe + z2)
    centre = (2 * safe * phat + z2) / denom
    delta = z / denom * np.sqrt(np.maximum(4 * safe * phat * (1 - phat) + z2, 0.0))
    low = np.where(k == 0, 0.0, centre - delta)
    high = np.where(k == m, 1.0, centre + delta)
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


# --------------------------------------------------------------------------- forecast


@dataclass(frozen=True, slots=True)
class YearEndForecast:
    """The projected financial-year-end value per series.

    ``value`` is NaN when no month is observed or the year to date has a gap;
    ``months`` is the number of months observed (up to the last non-missing
    one); ``seasonal`` says whether the previous year's seasonal profile was
    used (``sum`` only).
    """

    value: FloatArray
    months: IntArray
    seasonal: BoolArray


def forecast_year_end(
    x: ArrayLike, fy_start_col: int, fy_len: int = 12, agg: Agg = "sum"
) -> YearEndForecast:
    """Project the financial-year value from the year to date.

    The year starts at column ``fy_start_col``; the months observed run to each
    series' last non-missing column (at most ``fy_len``).

    - ``sum``: YTD sum divided by the share of the previous year's total that
      fell in the same months, when the previous year (the ``fy_len`` columns
      before the start) is complete with positive total and share; otherwise
      pro rata, YTD sum × fy_len / months;
    - ``mean``: the mean so far;
    - ``last``: the latest value.

    A negative ``fy_start_col`` means the year began before the first column:
    its first months are unknown (a gap), so every value is NaN; ``months``
    still counts from the year's start. A start after the last column is a
    ValueError.
    """
    a = _as_matrix(x)
    n_series, n_periods = a.shape
    _check_len(fy_len, "fy_len")
    if fy_start_col >= n_periods:
        raise ValueError(f"fy_start_col={fy_start_col} is after the {n_periods} periods of x")
    if fy_start_col < 0:
        a = np.concatenate([np.full((n_series, -fy_start_col), np.nan), a], axis=1)
        n_periods -= fy_start_col
        fy_start_col = 0
    ytd = a[:, fy_start_col : min(n_periods, fy_start_col + fy_len)]
    valid = ~np.isnan(ytd)
    width = ytd.shape[1]
    any_valid = valid.any(axis=1)
    months = np.where(any_valid, width - np.argmax(valid[:, ::-1], axis=1), 0).astype(np.int64)
    gapless = any_valid & (valid.sum(axis=1) == months)
    total = np.where(valid, ytd, 0.0).sum(axis=1)
    m_safe = np.maximum(months, 1)
    seasonal = np.zeros(n_series, dtype=np.bool_)

    if agg == "sum":
        value = total * fy_len / m_safe
        if fy_start_col >= fy_len:
            prev = a[:, fy_start_col - fy_len : fy_start_col]
            prev_total = prev.sum(axis=1)
            share = _divide(
                np.take_along_axis(np.cumsum(prev, axis=1), (m_safe - 1)[:, None], axis=1)[:, 0],
                prev_total,
            )
            seasonal = ~np.isnan(prev).any(axis=1) & (prev_total > 0) & (share > 0) & gapless
            value = np.where(seasonal, _divide(total, share), value)
    elif agg == "mean":
        value = total / m_safe
    elif agg == "last":
        value = np.take_along_axis(ytd, (m_safe - 1)[:, None], axis=1)[:, 0]
    else:
        raise ValueError(f"agg must be 'sum', 'mean' or 'last', got {agg!r}")
    return YearEndForecast(np.where(gapless, value, np.nan), months, seasonal)
