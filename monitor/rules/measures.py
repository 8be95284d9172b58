"""The measures an analyst reads off a series: headline value, change, target and RAG.

Every function takes a :class:`~monitor.rules.data.Matrix` and returns vectors over its
series. Windows that are incomplete give NaN: the product refuses to compare what it
cannot compare, and says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitor.model import Frequency, Status, financial_year, financial_year_label
from monitor.rules.data import BoolArray, FloatArray, Matrix
from monitor.rules.schema import Indicator, PeerGroup, RankWindow

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


def month_year(ordinal: int) -> str:
    """``July 2008``."""
    return f"{month_name(ordinal)} {ordinal // 12}"


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


def join_headlines(parts: Sequence[Headline]) -> Headline:
    """Return the headlines of consecutive blocks of a matrix's series, each made at the
    same end column, as the whole matrix's: every series' headline is its own given
    that column (its window, target and financial year follow from it)."""
    first = parts[0]
    if len(parts) == 1:
        return first

    def cat(get: Callable[[Headline], Any]) -> Any:
        return np.concatenate([get(p) for p in parts])

    change = None
    if first.change is not None:
        changes = [p.change for p in parts]
        assert all(c is not None for c in changes)
        def joined(name: str) -> Any:
            return np.concatenate([getattr(c, name) for c in changes])

        c0 = first.change
        change = ChangeResult(joined("current"), joined("baseline"), joined("delta"),
                              joined("pct"), joined("complete"), c0.end, c0.n, c0.lag)
    return Headline(cat(lambda h: h.value), cat(lambda h: h.level), change,
                    cat(lambda h: h.target), [k for p in parts for k in p.target_kind],
                    cat(lambda h: h.status), first.end, first.n, first.fy,
                    cat(lambda h: h.judged))


def rag(value: FloatArray, target: float, kind: str, direction: str, amber: float
        ) -> np.ndarray:
    """Return Status codes: no data without a value; baseline in a baseline year; not
    rated when there is nothing to judge the value by (no target, a neutral indicator)."""
    out = np.full(value.shape, Status.NO_DATA.code, dtype=np.int64)
    known = ~np.isnan(value)
    if kind == "none":
        out[known] = Status.BASELINE.code
        return out
    if kind == "missing" or np.isnan(target) or direction == "neutral":
        out[known] = Status.NOT_RATED.code
        return out
    gap = (value - target) if direction == "up" else (target - value)  # >= 0 is on target
    out[known & (gap >= 0)] = Status.GREEN.code
    out[known & (gap < 0) & (gap >= -amber)] = Status.AMBER.code
    out[known & (gap < -amber)] = Status.RED.code
    return out


def status_name(code: int) -> Status:
    return _STATUS_OF_CODE[code]


_STATUS_OF_CODE = {status.code: status for status in Status}


def format_value(indicator: Indicator, value: float, kind: str = "level") -> str:
    """``77.0%``, ``4.2pp``, ``-7.8%``, ``30.8``, ``9,828``."""
    if value is None or math.isnan(value):  # math's: numpy's costs a microsecond a call
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
    # A level target reads as the rule file writes it: 67%, 78.9%, 208.
    written = f"{int(target.value):,}" if float(target.value).is_integer() \
        else f"{target.value:,}"
    return written + {"percent": "%", "pp": "pp"}.get(indicator.unit, "")


def describe_value(indicator: Indicator, value: float, kind: str) -> str:
    """``down 5.1%``, ``up 0.6pp``, ``77.0%``: a value as a sentence says it."""
    if value is None or math.isnan(value):
        return "unknown"
    if kind in ("change_pct", "change_pp", "change_count"):
        word = "up" if value > 0 else ("down" if value < 0 else "unchanged")
        size = format_value(indicator, abs(value), kind).lstrip("+")
        return word if word == "unchanged" else f"{word} {size}"
    return format_value(indicator, value, kind)


def target_phrase(indicator: Indicator, fy: int, judged: float, target: float, kind: str,
                  to: float | None = None) -> str:
    """``below its 2008/09 target of 78.9%``, ``short of its 2008/09 target of -6%``;
    with ``to`` (the level a change target comes to), ``meeting its 2007/08 target (0.5pp
    increase, to 55.2%)``."""
    year = f"{fy}/{(fy + 1) % 100:02d}"
    shown = format_target(indicator, fy)
    if kind in ("none", "missing") or np.isnan(target):
        return f"with no target for {year} ({shown})"
    spec = indicator.target_for(fy)
    reaching = "" if to is None or np.isnan(to) else f", to {format_value(indicator, to)}"
    of = f"({shown}{reaching})" if spec is not None and spec.text else \
        f"of {shown}" + (f" ({reaching[2:]})" if reaching else "")
    if kind == "level":
        word = "above" if judged > target else ("below" if judged < target else "on")
        return f"{word} its {year} target {of}"
    good = (judged >= target) if indicator.direction == "up" else (judged <= target)
    return f"{'meeting' if good else 'short of'} its {year} target {of}"


SLIGHT = 5.0  # a change under this share (%) of the earlier value is "slight"


def movement(before: float, after: float) -> str:
    """``slightly up``, ``down``, ``unchanged``: how a value moved, "slightly" when by less
    than :data:`SLIGHT` per cent of the earlier value."""
    if after == before:
        return "unchanged"
    word = "up" if after > before else "down"
    slight = before != 0 and abs(after - before) / abs(before) * 100 < SLIGHT
    return f"slightly {word}" if slight else word


def turn(before: float, after: float, direction: str) -> str:
    """``a slight improvement``, ``a decline``: a move judged by direction of good."""
    better = (after > before) if direction == "up" else (after < before)
    slight = movement(before, after).startswith("slightly")
    if better:
        return "a slight improvement" if slight else "an improvement"
    return "a slight decline" if slight else "a decline"


def over_text(m: Matrix, end: int) -> str:
    """``over the rolling year to Jul-08`` / ``over April-July 2008``."""
    text = window_text(m, end)
    if m.indicator.year_to_date or text[:1].isupper():
        return f"over {text}"
    return f"over the {text}"


# --- ranks in a peer group ------------------------------------------------------------


def rank_span(m: Matrix, over: RankWindow) -> tuple[int, int]:
    """Return (last column, periods) of the window ``over`` names on ``m``.

    The latest period is the last one any series of ``m`` has; a financial or calendar
    year is the last one complete by then (data to Mar-08: 2007/08 and 2007). The last
    column is -1 when ``m`` has no data.
    """
    ind = m.indicator
    end = m.last_column()
    freq = Frequency(ind.frequency)
    if over.kind == "headline":
        return end, headline_window(m, max(end, 0)) if end >= 0 else ind.window
    if over.kind == "last_months":
        return end, over.months
    if end < 0 or over.kind == "rolling_year" or freq in (Frequency.WEEKLY, Frequency.ANNUAL):
        return end, freq.per_year
    months_per_period = 12 // freq.per_year
    last_month = (ind.fy_start_month - 2) % 12 if over.kind == "financial_year" else 11
    last = last_month // months_per_period  # the year's last period, within a year
    period = m.grid.period(end)
    return end - (period % freq.per_year - last) % freq.per_year, freq.per_year


def rank_window_text(m: Matrix, over: RankWindow, end: int, n: int) -> tuple[str, str]:
    """Return the window's name and how a sentence says a rank over it: (``May–July 2008``,
    ``for May–July 2008``), (``the year to July 2008``, ``for the year to July 2008``),
    (``2007/08``, ``for 2007/08``), (``2007``, ``in 2007``)."""
    ind = m.indicator
    if end < 0:
        return "no data", "without data"
    last = m.grid.period(end)
    monthly = ind.frequency == "monthly"
    if over.kind == "financial_year":
        year = financial_year_label(financial_year(last, ind.fy_start_month)) if monthly else \
            window_text(m, end, n)
        return year, f"for {year}"
    if over.kind == "calendar_year":
        year = str(Frequency(ind.frequency).start(last).year)
        return year, f"in {year}"
    if over.kind == "rolling_year":
        to = month_year(last) if monthly else period_text(ind, last)
        return f"the year to {to}", f"for the year to {to}"
    if over.kind == "last_months" and monthly:
        first = last - n + 1
        if n == 1:
            text = month_year(last)
        elif first // 12 == last // 12:
            text = f"{month_name(first)}–{month_year(last)}"
        else:
            text = f"{month_year(first)}–{month_year(last)}"
        return text, f"for {text}"
    text = window_text(m, end, n)
    return text, f"for the {text}" if text[:1].islower() else f"for {text}"


@dataclass
class Ranks:
    """Every series' rank in its peer group over one window (1 = best)."""

    rank: FloatArray  # NaN: not a member, or no value over the window
    value: FloatArray  # the members' values ranked, in the headline's kind; NaN otherwise
    size: int  # members with a value
    mean: float  # their unweighted mean
    end: int
    n: int
    window: str  # "May–July 2008", "the year to July 2008", "2007/08", "2007"
    phrase: str  # "for May–July 2008", "in 2007"

    def position(self, i: int) -> str:
        """``last``, ``1st``, ``2nd``: where series ``i`` stands."""
        rank = int(self.rank[i])
        return "last" if rank == self.size and self.size > 1 else ordinal(rank)


def ranks(m: Matrix, group: PeerGroup, over: RankWindow) -> Ranks:
    """Return every series' rank among ``group``'s members over the window ``over``.

    Steps: 1. the window (:func:`rank_span`); 2. each series' value over it, in the
    indicator's headline kind: a level over the window, or a change of the window on the
    same months a year earlier (the headline window keeps the headline's own comparison);
    3. members with a value are ranked by direction of good, ties sharing a rank (1 + the
    members strictly better). Raises ValueError for a neutral indicator.
    """
    ind = m.indicator
    sign = {"up": -1.0, "down": 1.0}.get(ind.direction, 0.0)
    if sign == 0:
        raise ValueError(f'indicator "{ind.id}" is neutral; ranks need a direction of good')
    end, n = rank_span(m, over)
    kind = ind.headline_kind
    if end < 0:
        value = np.full(m.n, np.nan)
    elif over.kind == "headline":
        value = headline(m).value
    elif kind == "level":
        value, _ = m.window(end, n)
    else:
        result = change(m, end, n, "last_year")
        value = result.pct if kind == "change_pct" else result.delta
    member = np.array([lab.get(group.label) in group.members for lab in m.labels], dtype=bool)
    value = np.where(member, value, np.nan)
    score = value * sign  # smaller is better
    valid = ~np.isnan(score)
    ranked = np.sort(score[valid])
    rank = np.full(m.n, np.nan)
    rank[valid] = 1.0 + np.searchsorted(ranked, score[valid], side="left")
    size = int(valid.sum())
    mean = float(np.nanmean(value)) if size else float("nan")
    window, phrase = rank_window_text(m, over, end, n)
    return Ranks(rank, value, size, mean, end, n, window, phrase)


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``11th``, ``22nd``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
