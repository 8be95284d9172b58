"""The measures an analyst reads off a series: headline value, change, target and RAG.

Every function takes a :class:`~monitor.rules.data.Matrix` and returns vectors over its
series. Windows that are incomplete give NaN: the product refuses to compare what it
cannot compare, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.model import Frequency, Status, financial_year
from monitor.rules.data import BoolArray, FloatArray, Matrix
from monitor.rules.schema import Indicator

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def period_text(indicator: Indicator, ordinal: int) -> str:
    """``Jul-08`` for months, the frequency's label otherwise."""
    freq = Frequency(indicator.frequency)
    if freq is Frequency.MONTHLY:
        return f"{MONTHS[ordinal % 12]}-{(ordinal // 12) % 100:02d}"
    return freq.label(ordinal)


def month_name(ordinal: int) -> str:
    return ("January", "February", "March", "April", "May", "June", "July", "August",
            "September", "October", "November", "December")[ordinal % 12]


def end_column(m: Matrix) -> int:
    """The column of the latest period any series of ``m`` has (-1: no data at all)."""
    return m.last_column()


def ytd_length(m: Matrix, end: int) -> int:
    """Periods from the start of the financial year to column ``end`` inclusive."""
    period = m.grid.period(end)
    if m.indicator.frequency != "monthly":
        return 1
    fy_start = m.indicator.fy_start_month
    return (period % 12 - (fy_start - 1)) % 12 + 1


def headline_window(m: Matrix, end: int) -> int:
    return ytd_length(m, end) if m.indicator.year_to_date else m.indicator.window


def window_text(m: Matrix, end: int, n: int | None = None, *, short: bool = False) -> str:
    """``12 months to Jul-08`` / ``April-July 2008`` / ``Jul-08``."""
    indicator = m.indicator
    if end < 0:
        return "no data"
    n = headline_window(m, end) if n is None else n
    last = m.grid.period(end)
    if indicator.window_text:
        return indicator.window_text
    if n == 1:
        return period_text(indicator, last)
    if indicator.year_to_date and indicator.frequency == "monthly" and n == ytd_length(m, end):
        first = last - n + 1
        return f"{month_name(first)}-{month_name(last)} {last // 12}"
    if indicator.frequency == "monthly" and n == 12:
        return f"RY to {period_text(indicator, last)}" if short else \
            f"rolling year to {period_text(indicator, last)}"
    unit = {"monthly": "months", "quarterly": "quarters", "weekly": "weeks",
            "annual": "years"}[indicator.frequency]
    return f"{n} {unit} to {period_text(indicator, last)}"


@dataclass
class ChangeResult:
    current: FloatArray
    baseline: FloatArray
    delta: FloatArray  # current − baseline, in the value's unit (count, or pp for rates)
    pct: FloatArray  # relative change in %
    complete: BoolArray
    end: int
    n: int
    lag: int


def change(m: Matrix, end: int, n: int, compare: str = "previous") -> ChangeResult:
    """Compare the ``n``-period window ending at ``end`` with an earlier one.

    ``previous``: the ``n`` periods before; ``last_year``: the same window a year
    earlier; ``year_to_date``: financial year to date against the same span last year.
    """
    per_year = Frequency(m.indicator.frequency).per_year
    if compare == "year_to_date":
        n = ytd_length(m, end)
        lag = per_year
    elif compare == "last_year":
        lag = per_year
    else:
        lag = n
    current, ok_now = m.window(end, n)
    baseline, ok_then = m.window(end - lag, n)
    complete = ok_now & ok_then
    delta = current - baseline
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(baseline != 0, delta / np.abs(baseline) * 100.0, np.nan)
    nan = np.nan
    return ChangeResult(np.where(complete, current, nan), np.where(complete, baseline, nan),
                        np.where(complete, delta, nan), np.where(complete, pct, nan),
                        complete, end, n, lag)


@dataclass
class Headline:
    """What the scorecard row shows for each series."""

    value: FloatArray  # in the headline's kind: level, % change, pp change or count change
    level: FloatArray  # the window level, whatever the kind
    change: ChangeResult | None
    target: FloatArray
    target_kind: list[str]
    status: np.ndarray
    end: int
    n: int
    fy: int
    judged: FloatArray  # the measure the target is about (level or change)


def targets_for(indicator: Indicator, fy: int) -> tuple[float, str, float]:
    """Return (target value or NaN, kind, amber tolerance) for financial year ``fy``."""
    target = indicator.target_for(fy)
    if target is None:
        return np.nan, "missing", indicator.amber
    if target.kind == "none":
        return np.nan, "none", indicator.amber
    amber = target.amber if target.amber is not None else indicator.amber
    return float(target.value if target.value is not None else np.nan), target.kind, amber


def headline(m: Matrix, end: int | None = None) -> Headline:
    """Return the headline value, target and RAG status of every series of ``m``."""
    end = end_column(m) if end is None else end
    n = headline_window(m, end) if end >= 0 else m.indicator.window
    level, _ = m.window(end, n) if end >= 0 else (np.full(m.n, np.nan), None)
    fy = financial_year(m.grid.period(max(end, 0)), m.indicator.fy_start_month)
    target, kind, amber = targets_for(m.indicator, fy)
    shown_kind = m.indicator.headline_kind
    judged_kind = kind if kind in ("level", "change_pct", "change_pp", "change_count") \
        else shown_kind
    result: ChangeResult | None = None
    if end >= 0 and "change" in (shown_kind + judged_kind):
        compare = "year_to_date" if m.indicator.year_to_date else "previous"
        result = change(m, end, n, compare)

    def pick(which: str) -> FloatArray:
        if which == "level" or result is None:
            return level
        return {"change_pct": result.pct, "change_pp": result.delta,
                "change_count": result.delta}[which]

    value = pick(shown_kind)
    judged = pick(judged_kind)
    status = rag(judged, target, kind, m.indicator.direction, amber)
    return Headline(value, level, result, np.full(m.n, target), [kind] * m.n, status, end, n,
                    fy, judged)


def rag(value: FloatArray, target: float, kind: str, direction: str, amber: float
        ) -> np.ndarray:
    """Return Status codes: baseline when the year has no target, unknown without data."""
    out = np.full(value.shape, Status.UNKNOWN.code, dtype=np.int64)
    if kind == "none":
        out[:] = Status.BASELINE.code
        out[np.isnan(value)] = Status.UNKNOWN.code
        return out
    if kind == "missing" or np.isnan(target) or direction == "neutral":
        return out
    known = ~np.isnan(value)
    gap = (value - target) if direction == "up" else (target - value)  # >= 0 is on target
    out[known & (gap >= 0)] = Status.GREEN.code
    out[known & (gap < 0) & (gap >= -amber)] = Status.AMBER.code
    out[known & (gap < -amber)] = Status.RED.code
    return out


def status_name(code: int) -> Status:
    return next(s for s in Status if s.code == code)


def format_value(indicator: Indicator, value: float, kind: str = "level") -> str:
    """``77.0%``, ``4.2pp``, ``-7.8%``, ``30.8``, ``9,828``."""
    if value is None or np.isnan(value):
        return "n/a"
    value = value + 0.0  # -0.0 prints as 0
    p = indicator.precision
    if round(value, p) == 0:
        value = 0.0
    if kind == "change_pct":
        return f"{value:+.{p}f}%".replace("+", "" if value < 0 else "+")
    if kind == "change_pp":
        return f"{value:+.{p}f}pp"
    if kind == "change_count":
        return f"{value:+,.0f}"
    if indicator.unit == "percent":
        return f"{value:.{p}f}%"
    if indicator.unit == "pp":
        return f"{value:.{p}f}pp"
    if indicator.unit == "count" and indicator.aggregation == "sum":
        return f"{value:,.0f}"
    if abs(value) >= 100 and p <= 1:
        return f"{value:,.0f}"
    return f"{value:,.{p}f}"


def format_target(indicator: Indicator, fy: int) -> str:
    target = indicator.target_for(fy)
    if target is None:
        return "no target"
    if target.text:
        return target.text
    if target.kind == "none":
        return "Baseline year"
    assert target.value is not None
    if target.kind == "change_pct":
        return f"{target.value:+g}%"
    if target.kind == "change_pp":
        return f"{target.value:+g}pp"
    if target.kind == "change_count":
        return f"{target.value:+,g}"
    return format_value(indicator, target.value)


def describe_value(indicator: Indicator, value: float, kind: str) -> str:
    """``down 5.1%``, ``up 0.6pp``, ``77.0%``: a value as a sentence says it."""
    if value is None or np.isnan(value):
        return "unknown"
    if kind in ("change_pct", "change_pp", "change_count"):
        word = "up" if value > 0 else ("down" if value < 0 else "unchanged")
        size = format_value(indicator, abs(value), kind).lstrip("+")
        return word if word == "unchanged" else f"{word} {size}"
    return format_value(indicator, value, kind)


def target_phrase(indicator: Indicator, fy: int, judged: float, target: float, kind: str
                  ) -> str:
    """``below its 2008/09 target of 78.9%``, ``short of its 2008/09 target of -6%``."""
    year = f"{fy}/{(fy + 1) % 100:02d}"
    shown = format_target(indicator, fy)
    if kind in ("none", "missing") or np.isnan(target):
        return f"with no target for {year} ({shown})"
    spec = indicator.target_for(fy)
    of = f"({shown})" if spec is not None and spec.text else f"of {shown}"
    if kind == "level":
        word = "above" if judged > target else ("below" if judged < target else "on")
        return f"{word} its {year} target {of}"
    good = (judged >= target) if indicator.direction == "up" else (judged <= target)
    return f"{'meeting' if good else 'short of'} its {year} target {of}"


def over_text(m: Matrix, end: int) -> str:
    """``over the rolling year to Jul-08`` / ``over April-July 2008``."""
    text = window_text(m, end)
    if m.indicator.year_to_date or text[:1].isupper():
        return f"over {text}"
    return f"over the {text}"
