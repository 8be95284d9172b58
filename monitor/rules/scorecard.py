"""The scorecard: each reported indicator's row, with the comment an analyst would write.

A comment is built sentence by sentence from data, rules and indicator metadata, in the
seed's order: status against the judged target, the target's and the indicator's notes,
what the parts did (``Robbery is down 22.3% (9,828 offences) … but res. burglary is up
0.6%``) and the companions, the comparison with the last complete financial year,
provisional data, SPC limits wide for the mean, and the ranks in the peer group — each
over its own window (``for May–July 2008``, ``in 2007``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from monitor.memory import gc_paused
from monitor.model import Frequency, Status, financial_year, financial_year_label, labels_of
from monitor.rules import conditions, stats
from monitor.rules.data import BoolArray, FloatArray, Matrix
from monitor.rules.loader import RuleSet
from monitor.rules.measures import (
    ChangeResult,
    Headline,
    Ranks,
    change,
    describe_value,
    format_target,
    format_value,
    headline,
    join_headlines,
    movement,
    over_text,
    period_text,
    rank_span,
    ranks,
    status_name,
    target_phrase,
    turn,
    window_text,
)
from monitor.rules.schema import Indicator, PeerGroup, RankWindow
from monitor.rules.snapshot import (
    CommentPart,
    IndicatorFrame,
    IndicatorInfo,
    RankFact,
    SeriesDetail,
    SeriesPoint,
)

T = TypeVar("T")


def _memo(m: Matrix, key: tuple[Any, ...], make: Callable[[], T]) -> T:
    """Return ``make()`` computed once per matrix (``Matrix.memo``): what every row of the
    scorecard reads of the whole matrix is computed once per cycle, not once per row."""
    return m.cached(key, make)


def _headline(m: Matrix, end: int | None = None) -> Headline:
    return _memo(m, ("headline", end), lambda: headline(m, end))


def _change(m: Matrix, end: int, n: int) -> ChangeResult:
    return _memo(m, ("change", end, n), lambda: change(m, end, n))


def _window(m: Matrix, end: int, n: int) -> tuple[FloatArray, BoolArray]:
    return _memo(m, ("window", end, n), lambda: m.window(end, n))


def _ranks(m: Matrix, group: PeerGroup, over: RankWindow) -> Ranks:
    return _memo(m, ("ranks", group.id, str(over)), lambda: ranks(m, group, over))


def reported(ruleset: RuleSet) -> list[Indicator]:
    """Indicators the scorecard shows, in file order: those with a reference or a target,
    unless ``scorecard`` says otherwise."""
    out = []
    for ind in ruleset.indicators.values():
        shown = ind.scorecard if ind.scorecard is not None else bool(
            ind.reference or ind.targets)
        if shown:
            out.append(ind)
    return out


def subject_rows(m: Matrix, ruleset: RuleSet) -> list[int]:
    """Rows the scorecard speaks for: the peer group's subject, or every series."""
    group = ruleset.peer_groups.get(m.indicator.peer_group or "")
    if group is not None and group.subject:
        return [i for i, lab in enumerate(m.labels) if lab.get(group.label) == group.subject]
    return list(range(m.n))


def rows(matrices: Mapping[str, Matrix], ruleset: RuleSet) -> list[SeriesDetail]:
    """Return every scorecard row."""
    out: list[SeriesDetail] = []
    with gc_paused():  # 100,000 rows make millions of objects, none in a cycle
        for ind in reported(ruleset):
            m = matrices.get(ind.id)
            if m is None:
                continue
            out.extend(_details(m, subject_rows(m, ruleset), matrices, ruleset))
    return out


def detail(m: Matrix, i: int, matrices: Mapping[str, Matrix], ruleset: RuleSet
           ) -> SeriesDetail:
    """Return everything the scorecard row, the series page and the API show for row
    ``i``."""
    return _details(m, [i], matrices, ruleset)[0]


def details(m: Matrix, rows: list[int], matrices: Mapping[str, Matrix], ruleset: RuleSet
            ) -> list[SeriesDetail]:
    """Return ``detail`` of each of ``rows`` (a page listing series): what every row
    reads alike, every series' headline value, target and status as lists, is made once
    for them all, not once a row (at 1M series 0.12 s each time)."""
    return _details(m, rows, matrices, ruleset)


def _details(m: Matrix, rows: list[int], matrices: Mapping[str, Matrix], ruleset: RuleSet
             ) -> list[SeriesDetail]:
    """Return the rows ``rows`` of ``m``: what every row reads alike is computed once
    (:class:`_Shared`), each row's SPC assurance judged at once from its last point."""
    shared = _shared(m, matrices, ruleset)
    charts = _charts(m, rows, shared.h)
    verdicts = _assurances([c.last[-1] if c.last else None for c in charts],
                           m.indicator.direction)
    return [_detail(m, i, chart, shared, str(verdict))
            for i, chart, verdict in zip(rows, charts, verdicts, strict=True)]


@dataclass(frozen=True)
class _Charted:
    """Row ``i``'s SPC chart (the matrix's, ``chart``, or its own, ``spc``) and its
    headline period's point (``last``: empty without data)."""

    chart: _RowChart | None
    spc: stats.SpcResult | None
    last: tuple[SeriesPoint, ...]


def _charts(m: Matrix, rows: list[int], h: Headline) -> list[_Charted]:
    """Return each row's chart and headline point, as :func:`_points` builds it: the rows
    the matrix's chart charts (:func:`_row_charts`) read their last point's column of it
    for every row at once (:func:`_last_points`); a row ending early is charted alone."""
    charted = _row_charts(m, rows)
    lasts = _last_points(m, [i for i, c in zip(rows, charted, strict=True) if c is not None],
                         h)
    out = []
    for i, chart in zip(rows, charted, strict=True):
        if chart is not None:
            out.append(_Charted(chart, chart.result, lasts[i]))
        else:
            one = _one_row(m, i)
            spc = _spc(one)
            out.append(_Charted(None, spc, _points(m, i, one, h, spc, None, last_only=True)))
    return out


def _last_points(m: Matrix, rows: list[int], h: Headline) -> dict[int, tuple[SeriesPoint, ...]]:
    """Return the headline period's point of each of ``rows`` (rows the matrix's chart
    charts), as ``_points(…, last_only=True)`` builds it one row at a time: each column
    read for the rows at once, every point of the column alike built once."""
    if not rows:
        return {}
    ind = m.indicator
    end = h.end
    chart = _matrix_chart(m)
    if end < 0 or chart is None:
        return {i: () for i in rows}
    picked = np.asarray(rows, dtype=np.intp)
    data = m.per_period()[picked, :end + 1]
    has_data: list[bool] = (np.count_nonzero(~np.isnan(data), axis=1) > 0).tolist()
    n_level = h.n if not ind.year_to_date else ind.window
    spread = n_level if _adds_up(m) else 1
    # The column ``end`` of _levels' two arrays, without their other columns
    level_list = np.asarray(_window(m, end, n_level)[0], dtype=np.float64)[picked].tolist()
    target_list = _level_targets(m, end, h.n)[picked].tolist()
    value_list = data[:, end].tolist()
    provisional = (m.provisional[picked, end].tolist() if m.provisional is not None
                   else [False] * len(rows))
    revisions = (m.revisions[picked, end].tolist() if m.revisions is not None
                 else [0] * len(rows))
    period, period_label = _columns(m, end)[end]
    if chart.result.special.shape[1] > end:  # the chart's column at the headline period
        mean, lower, upper, categories, special = _chart_column(m, chart.result, end)
    else:  # a chart ending before it: no limits, no signal, common cause
        nothing: list[Any] = [None] * m.n
        mean = lower = upper = nothing
        categories, special = ["common_cause"] * m.n, [0] * m.n
    out: dict[int, tuple[SeriesPoint, ...]] = {}
    for k, i in enumerate(rows):
        if not has_data[k]:
            out[i] = ()
            continue
        level_target = _num(target_list[k])
        out[i] = (SeriesPoint(
            period=period, period_text=period_label, value=_num(value_list[k]),
            target=None if level_target is None else level_target / spread,
            level=_num(level_list[k]), level_target=level_target,
            provisional=bool(provisional[k]), revisions=int(revisions[k]),
            mean=_num(mean[i]), lower=_num(lower[i]), upper=_num(upper[i]),
            special=int(special[i]), variation=str(categories[i])),)
    return out


@dataclass(frozen=True)
class _RowTexts:
    """What every row of a matrix says alike (once per matrix)."""

    indicator: IndicatorInfo
    period_label: str
    window_label: str
    target_text: str
    target_year: str
    judged_year: str
    judged_target_text: str


def _row_texts(m: Matrix, h: Headline) -> _RowTexts:
    from monitor.rules.engine import indicator_info

    def make() -> _RowTexts:
        ind, end, year = m.indicator, h.end, target_year(m)
        return _RowTexts(
            indicator_info(ind),
            period_text(ind, m.grid.period(end)) if end >= 0 else "no data",
            window_text(m, end),
            format_target(ind, year if ind.target_for(year) is not None else h.fy),
            financial_year_label(year), financial_year_label(h.fy),
            format_target(ind, h.fy))

    return _memo(m, ("row texts", h.end), make)


@dataclass(frozen=True)
class _Shared:
    """What the rows of one matrix read alike, computed once for them all: the headline
    (its arrays also as lists: a list item costs less than a numpy scalar), the texts,
    the parts and what the comment says the same of every row."""

    matrices: Mapping[str, Matrix]
    ruleset: RuleSet
    h: Headline
    texts: _RowTexts
    kind: str  # the headline's kind (``Indicator.headline_kind``)
    value: list[float]
    target: list[float]
    judged: list[float]
    status: list[int]
    children: list[Matrix]
    parts: list[Matrix]  # the children the parts sentence speaks of
    over: str  # ``over the rolling year to Jul-08``: the headline window's
    target_note: str
    note: str
    provisional: list[bool] | None  # per row: provisional data in the headline window
    ranked: bool  # the comment states ranks (``rank.over`` or ``rank.parts``)
    turns: tuple[list[float], list[float]] | None  # the levels :func:`_turn` compares


def _shared(m: Matrix, matrices: Mapping[str, Matrix], ruleset: RuleSet) -> _Shared:
    ind = m.indicator
    h = _headline(m)
    children = [matrices[c.id] for c in ruleset.children_of(ind.id) if c.id in matrices]
    reported_ids = {r.id for r in reported(ruleset)}
    value, target, judged, status, provisional, turns = _row_lists(m, h)
    return _Shared(
        matrices, ruleset, h, _row_texts(m, h), ind.headline_kind, value, target, judged,
        status, children,
        [c for c in children if c.indicator.id not in reported_ids or _changes(c, m)],
        over_text(m, h.end) if h.end >= 0 else "", _target_note(ind, h),
        _sentence(ind.note), provisional,
        ind.rank.over is not None or bool(ind.rank.parts), turns)


_RowLists = tuple[list[float], list[float], list[float], list[int], list[bool] | None,
                  tuple[list[float], list[float]] | None]


def _row_lists(m: Matrix, h: Headline) -> _RowLists:
    """The headline's value, target, judged measure and status of every row as lists,
    which rows hold provisional data in the headline window, and the levels a turn
    compares (:func:`_turns`). Not kept: a series page (one row) makes them again, a few
    milliseconds at 100,000 series, rather than the matrix holding them between cycles."""

    provisional: list[bool] | None = None
    if m.provisional is not None and h.end >= 0:
        window = m.provisional[:, max(0, h.end - h.n + 1):h.end + 1]
        provisional = (np.count_nonzero(window, axis=1) > 0).tolist()
    return (h.value.tolist(), h.target.tolist(), h.judged.tolist(), h.status.tolist(),
            provisional, _turns(m, h))


def _detail(m: Matrix, i: int, charted: _Charted, shared: _Shared, assurance: str
            ) -> SeriesDetail:
    ind = m.indicator
    value = shared.value[i]
    chart, spc, last = charted.chart, charted.spc, charted.last
    parts, rank_facts = _comment(m, i, shared)
    texts = shared.texts
    row = chart.row if chart else 0
    return SeriesDetail(
        indicator=texts.indicator, labels=dict(m.labels[i]),
        period_label=texts.period_label, window_label=texts.window_label,
        value=_num(value), value_text=format_value(ind, value, shared.kind),
        target=_num(shared.target[i]), target_text=texts.target_text,
        status=status_name(shared.status[i]),
        comment=" ".join(part.text for part in parts),
        target_year=texts.target_year, judged_year=texts.judged_year,
        judged_target_text=texts.judged_target_text, ranks=tuple(rank_facts),
        comment_parts=tuple(parts),
        # The headline period's point, as the spc condition judges it: a series without
        # data there shows no signal (stats: a missing point cannot be special).
        spc_icon=last[-1].variation if last else "common_cause",
        # Every point is built when first read: the scorecard page's sparklines, the
        # series page, the pack and the workbook read them; /metrics, digests and
        # `monitor eval` do not.
        points_of=partial(_points_of, m, i, shared.h, spc, chart),
        last_point=last[-1] if last else None,
        mean=_num(spc.mean[row]) if spc is not None else None,
        upper=_num(spc.upper[row]) if spc is not None else None,
        lower=_num(spc.lower[row]) if spc is not None else None,
        assurance=assurance,
    )


def _points_of(m: Matrix, i: int, h: Headline, spc: stats.SpcResult | None,
               row_chart: _RowChart | None) -> tuple[SeriesPoint, ...]:
    """Every point of row ``i`` (:func:`_points`), its series taken alone when read."""
    return _points(m, i, _one_row(m, i), h, spc, row_chart)


@dataclass(frozen=True)
class _PointLimits:
    upper: npt.NDArray[np.float64]
    lower: npt.NDArray[np.float64]


def _assurances(lasts: Sequence[SeriesPoint | None], direction: str) -> npt.NDArray[np.str_]:
    """Return, per row, the SPC assurance of its headline period: the target against the
    limits of its segment (``stats.assurance``); ``none`` without a target or limits."""
    def column(name: str) -> npt.NDArray[np.float64]:
        values = [getattr(p, name) if p is not None else None for p in lasts]
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    sign = {"up": 1, "down": -1}.get(direction, 0)
    return stats.assurance(_PointLimits(column("upper"), column("lower")), column("target"),
                           sign)


FRAME_ROWS = 20_000  # rows a frame is made of at a time (bounds its arrays)


def frame(m: Matrix, info: IndicatorInfo, rows: int | None = FRAME_ROWS, *,
          keep: bool = True, charts: bool = False) -> IndicatorFrame:
    """Return the snapshot's frame of ``m``: every series' headline value, target,
    status, changes, provisional flag and SPC variation at the matrix's last period.

    Row by row given that period (``Matrix.last_column``): the frames of a matrix's
    rows cut into parts, put end to end, are the frame of the whole when every part
    ends at the same column (:func:`join_frames`). Made ``rows`` rows at a time that way
    (the whole at once when the parts end at different columns, or when the rules
    already computed the whole's headline and chart this cycle), so the headline's and
    the SPC chart's arrays are never made for every row at once: at 500,000 series, a
    third less CPU, and no array as large as the matrix.

    ``keep``: the frame is kept with the matrix (a cycle on the same data shows it again),
    and so are the whole matrix's headline and chart, made of the parts' (a series page
    reads them). ``keep`` False: the frame is not kept; ``charts`` True then keeps the
    whole matrix's headline and chart all the same: a worker's frames travel to the
    daemon once, and the series pages it makes of its partition's matrices
    (``worker.partition_details``) read the headline and the chart."""
    if not keep:
        return _made_frame(m, info, rows, keep=charts)
    return m.cached(("frame", info, rows), lambda: _made_frame(m, info, rows, keep=True))


def _made_frame(m: Matrix, info: IndicatorInfo, rows: int | None, *, keep: bool
                ) -> IndicatorFrame:
    """``frame``, made."""
    if rows is None or m.n <= rows or (("headline", None) in m.memo and "spc" in m.memo):
        return _frame(m, info)[0]
    pieces = [_rows(m, lo, min(lo + rows, m.n)) for lo in range(0, m.n, rows)]
    parts = [_frame(piece, info) for piece in pieces]
    whole = join_frames([f for f, _end in parts], [end for _f, end in parts])
    if whole is None:
        return _frame(m, info)[0]
    if not keep:
        return whole
    # Every part ends at the same column: their headlines and charts end to end are the
    # whole matrix's, which a series page reads (kept, as making the frame at once would).
    m.memo.setdefault(("headline", None), join_headlines([headline_of(p) for p in pieces]))
    charts = [p.memo["spc"] for p in pieces if "spc" in p.memo]
    if len(charts) == len(pieces):
        m.memo.setdefault("spc", (stats.join_charts([c[0] for c in charts]), charts[0][1]))
    return whole


def _frame(m: Matrix, info: IndicatorInfo) -> tuple[IndicatorFrame, int]:
    """Return ``m``'s frame and its last column with data (-1: none)."""
    h = headline_of(m)
    changes: dict[str, FloatArray] = {}
    if h.change is not None:
        changes[f"{h.n}"] = h.change.pct / 100.0
    periods = np.full(m.n, m.grid.period(h.end) if h.end >= 0 else -1, dtype=np.int64)
    return IndicatorFrame(info, m.labels, periods, h.value, h.target, h.status, changes,
                          m.provisional_in(h.end, h.n), spc=spc_icons(m)), h.end


def join_frames(frames: Sequence[IndicatorFrame], ends: Sequence[int]
                ) -> IndicatorFrame | None:
    """Return the frames of one indicator's rows, cut into parts, end to end: the frame
    of the whole when every part ends at the same column (``ends``: each part's last
    column with data); None when they do not (then the whole's frame is made from it)."""
    if len(set(ends)) > 1 or len({tuple(f.changes) for f in frames}) > 1:
        return None
    if len(frames) == 1:
        return frames[0]

    def cat(get: Callable[[IndicatorFrame], Any]) -> Any:
        return np.concatenate([get(f) for f in frames])

    first = frames[0]
    return IndicatorFrame(
        first.info, [lab for f in frames for lab in f.labels], cat(lambda f: f.period),
        cat(lambda f: f.value), cat(lambda f: f.target), cat(lambda f: f.status),
        {k: cat(lambda f, k=k: f.changes[k]) for k in first.changes},  # type: ignore[misc]
        None if any(f.provisional is None for f in frames) else cat(lambda f: f.provisional),
        None if any(f.spc is None for f in frames) else cat(lambda f: f.spc))


def headline_of(m: Matrix) -> Headline:
    """The matrix's headline, once per matrix (the snapshot's frame reads the same one)."""
    return m.cached(("headline", None), lambda: headline(m))


def spc_icons(m: Matrix) -> npt.NDArray[np.str_]:
    """Return every series' SPC variation at the headline period, as ``detail`` publishes
    it one series at a time (``SeriesDetail.spc_icon``): for ``IndicatorFrame.spc``.

    One XmR chart over all the series at once, as the ``spc`` condition computes it; a
    series without a value at the headline period is ``common_cause``.
    """
    end = m.last_column()
    if end < 1:
        return np.full(m.n, "common_cause", dtype=np.str_)
    result, _ = conditions.spc_for(m)
    return stats.spc_icon(result, end)


@dataclass(frozen=True)
class _MatrixChart:
    """The XmR chart of every series of a matrix, and which rows it charts as alone."""

    result: stats.SpcResult
    last: npt.NDArray[np.intp]  # each series' last column with a value (-1: none)
    present: npt.NDArray[np.intp]  # how many columns to the chart's end have a value


@dataclass(frozen=True)
class _RowChart:
    result: stats.SpcResult  # the matrix's chart: row ``row`` is the series'
    row: int


def _matrix_chart(m: Matrix) -> _MatrixChart | None:
    """The chart of every series at once (``conditions.spc_for``: the one the ``spc``
    condition judged): once per matrix."""

    def make() -> _MatrixChart | None:
        end = m.last_column()
        if end < 1:
            return None
        result, _ = conditions.spc_for(m)
        data = ~np.isnan(m.per_period()[:, :end + 1])
        last = np.where(data.any(axis=1), end - np.argmax(data[:, ::-1], axis=1), -1)
        return _MatrixChart(result, last, np.count_nonzero(data, axis=1))

    return _memo(m, ("matrix chart",), make)


def _row_charts(m: Matrix, rows: list[int]) -> list[_RowChart | None]:
    """Each row's chart read from the matrix's, when that is the chart of the row alone:
    the row has a value in the matrix's last column (a row ending earlier is charted to
    its own last column, where re-basing breaks and the latest segment can differ, so
    :func:`_spc` charts it alone) and at least two values. None otherwise."""
    whole = _matrix_chart(m)
    if whole is None:
        return [None] * len(rows)
    alone: list[bool] = _memo(m, ("charted alone",), lambda: (
        (whole.last == whole.result.special.shape[1] - 1) & (whole.present >= 2)).tolist())
    return [_RowChart(whole.result, i) if alone[i] else None for i in rows]


def _chart_column(m: Matrix, chart: stats.SpcResult, column: int
                  ) -> tuple[list[Any], list[Any], list[Any], list[Any], list[Any]]:
    """Return column ``column`` of the matrix's chart for every row, as lists: the
    limits (``stats.point_limits``), the variation category (``stats.spc_categories``)
    and the special-cause flags: once per matrix and column."""
    def make() -> tuple[list[Any], list[Any], list[Any], list[Any], list[Any]]:
        n = chart.special.shape[0]
        mean, lower, upper = (np.full(n, np.nan) for _ in range(3))
        for s in chart.segments:  # as stats.point_limits fills a point's limits
            if s.start <= column < s.stop:
                mean[:], lower[:], upper[:] = s.mean, s.lower, s.upper
        return (mean.tolist(), lower.tolist(), upper.tolist(),
                stats.column_categories(chart, column).tolist(),
                chart.special[:, column].tolist())

    return _memo(m, ("chart column", id(chart), column), make)


def _spc(one: Matrix) -> stats.SpcResult | None:
    """Return the XmR chart of a one-series matrix, as the ``spc`` condition computes it
    (None when it has fewer than two periods with data)."""
    end = one.last_column()
    if end < 1 or np.count_nonzero(~np.isnan(one.per_period()[0, :end + 1])) < 2:
        return None
    result, _ = conditions.spc_for(one)
    return result


def _points(m: Matrix, i: int, one: Matrix, h: Headline, spc: stats.SpcResult | None,
            row_chart: _RowChart | None = None, last_only: bool = False
            ) -> tuple[SeriesPoint, ...]:
    """Return the periods of series ``i`` of ``m`` (``one``: that row alone) from its
    first value to the headline period; ``spc`` is the row's chart: the matrix's
    (``row_chart``: row ``row_chart.row`` of it) or, for a row ending early, its own.
    ``last_only``: the headline period's point alone, built as the whole list builds it.

    Steps: 1. each period's own value (``per_period``: rates scaled, as SPC reads them);
    2. the headline window's level ending there and the target as a level (every row's,
    once per matrix: :func:`_levels`); 3. the target on the per-period scale; 4.
    provisional flags and revision counts as stored; 5. the SPC limits of the point's
    segment, its rule and its variation category. Each row's columns are read as Python
    lists once, not as numpy scalars once per point: a pack of 3,300 series reads
    160,000 points.
    """
    ind = one.indicator
    end = h.end
    values = one.per_period()[0, :end + 1] if end >= 0 else np.empty(0)
    present = np.flatnonzero(~np.isnan(values))
    if not present.size:
        return ()
    n_level = h.n if not ind.year_to_date else ind.window
    spread = n_level if _adds_up(one) else 1
    first = end if last_only else int(present[0])
    span = slice(first, end + 1)
    levels, level_targets, row_of_levels = _row_levels(m, i, one, end, n_level, h.n)
    value_list = values[span].tolist()
    level_list = levels[row_of_levels, span].tolist()
    target_list = level_targets[row_of_levels, span].tolist()
    provisional = (one.provisional[0, span].tolist() if one.provisional is not None
                   else [False] * len(value_list))
    revisions = (one.revisions[0, span].tolist() if one.revisions is not None
                 else [0] * len(value_list))
    nothing: list[Any] = [None] * len(value_list)
    categories: list[Any] = ["common_cause"] * len(value_list)
    special: list[Any] = [0] * len(value_list)
    mean = lower = upper = nothing
    if spc is not None:
        # Charted periods: the chart's own columns (a chart shorter than the headline
        # leaves the later points uncharted: no limits, no signal, common cause).
        charted = max(0, min(end + 1, spc.special.shape[1]) - first)
        rest = len(value_list) - charted
        chart = slice(first, first + charted)
        # The matrix's chart (computed once for every row), read at this row; or the
        # row's own chart (one row).
        row = row_chart.row if row_chart is not None else 0
        if last_only and row_chart is not None and charted:
            # Every row's last point is read (the scorecard): the chart's column there
            # is read for every row at once, the first time.
            column = _chart_column(m, spc, first)
            mean, lower, upper, categories, special = ([part[row]] for part in column)
        else:
            rows = slice(row, row + 1)
            point_mean, point_lower, point_upper = stats.point_limits(spc, rows)
            mean, lower, upper = (arr[0, chart].tolist() + [None] * rest
                                  for arr in (point_mean, point_lower, point_upper))
            categories = stats.spc_categories(spc, rows)[0, chart].tolist() + \
                ["common_cause"] * rest
            special = spc.special[row, chart].tolist() + [0] * rest
    columns = _columns(m, end)[span]
    out = []
    for k in range(len(columns) - 1 if last_only else 0, len(columns)):
        period, period_label = columns[k]
        level_target = _num(target_list[k])
        out.append(SeriesPoint(
            period=period, period_text=period_label, value=_num(value_list[k]),
            target=None if level_target is None else level_target / spread,
            level=_num(level_list[k]), level_target=level_target,
            provisional=bool(provisional[k]), revisions=int(revisions[k]),
            mean=_num(mean[k]), lower=_num(lower[k]), upper=_num(upper[k]),
            special=int(special[k]), variation=str(categories[k])))
    return tuple(out)


LEVELS_WHOLE = 4096  # rows up to which a matrix's levels are made for every row at once
LEVELS_ALONE = 256  # a larger one's: once 1 row in this many asked for its own


def _row_levels(m: Matrix, i: int, one: Matrix, end: int, n_level: int, n: int
                ) -> tuple[FloatArray, FloatArray, int]:
    """Return the levels and level targets (``_levels``) that hold row ``i`` of ``m``
    (``one``: that row alone), and the row to read in them.

    Every row's, once per matrix, for a small matrix, or when they are made already, or
    once many of its rows were asked for (a pack reads every row); else the row's own:
    a series page of a matrix of 500,000 series made them for every series, 1 s for one
    page. A row's levels are the same either way (each row's windows are its own)."""
    key = ("levels", end, n_level, n)
    if key in m.memo or m.n <= LEVELS_WHOLE:
        return (*_levels(m, end, n_level, n), i)
    asked: list[int] = m.cached(("levels asked", end, n_level, n), lambda: [0])
    asked[0] += 1  # (racing readers may miss a count: the choice is only the cost's)
    if asked[0] > m.n // LEVELS_ALONE:
        return (*_levels(m, end, n_level, n), i)
    return (*_levels(one, end, n_level, n), 0)


def _levels(m: Matrix, end: int, n_level: int, n: int) -> tuple[FloatArray, FloatArray]:
    """Every row's level (the headline window ending at each column to ``end``) and its
    target as a level, shape (rows, end + 1): once per matrix, read by every row."""

    def make() -> tuple[FloatArray, FloatArray]:
        columns = range(end + 1)  # _points asks only with a headline period (end >= 0)
        levels = np.column_stack([np.asarray(_window(m, j, n_level)[0], dtype=np.float64)
                                  for j in columns])
        targets = np.column_stack([_level_targets(m, j, n) for j in columns])
        return levels.reshape(m.n, end + 1), targets.reshape(m.n, end + 1)

    return _memo(m, ("levels", end, n_level, n), make)


def _adds_up(m: Matrix) -> bool:
    """True when a window's value is the sum of its periods' values (counts), so a window
    target spreads evenly over its periods; False for rates, means and last values."""
    if m.parts is not None:
        return _adds_up(m.parts[0])
    return m.denominators is None and m.indicator.aggregation not in ("mean", "last")


def _one_row(m: Matrix, i: int) -> Matrix:
    return _rows(m, i, i + 1)


def _rows(m: Matrix, lo: int, hi: int) -> Matrix:
    """Return rows ``lo`` to ``hi`` of ``m`` as a matrix of their own (views, no copy)."""
    return replace(m, labels=m.labels[lo:hi], values=m.values[lo:hi],
                   denominators=None if m.denominators is None else m.denominators[lo:hi],
                   provisional=None if m.provisional is None else m.provisional[lo:hi],
                   revisions=None if m.revisions is None else m.revisions[lo:hi],
                   parts=None if m.parts is None else (_rows(m.parts[0], lo, hi),
                                                       _rows(m.parts[1], lo, hi)),
                   _index=None, _names=None, _by_key=None, _key_names=[])


def _num(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _level_target(m: Matrix, i: int, col: int, n: int) -> float | None:
    """The target expressed as a level at ``col`` (change targets applied to a year ago)."""
    value = float(_level_targets(m, col, n)[i])
    return None if np.isnan(value) else value


def _level_targets(m: Matrix, col: int, n: int) -> FloatArray:
    """Every row's target as a level at ``col``, NaN where there is none; computed once
    per matrix and column (each row's chart reads every column of it)."""

    def make() -> FloatArray:
        ind = m.indicator
        fy = financial_year(m.grid.period(col), ind.fy_start_month)
        target = ind.target_for(fy)
        if target is None or target.kind == "none" or target.value is None:
            return np.full(m.n, np.nan)
        if target.kind == "level":
            return np.full(m.n, float(target.value))
        before, _ = _window(m, col - n, n)
        base = np.asarray(before, dtype=np.float64)
        if target.kind == "change_pct":
            return base * (1 + target.value / 100)
        return base + target.value

    return _memo(m, ("level_targets", col, n), make)


def _columns(m: Matrix, end: int) -> list[tuple[str, str]]:
    """Each column's period to ``end`` as a point names it (``2008-07``, ``Jul-08``):
    once per matrix, not once per row."""
    ind = m.indicator
    freq = Frequency(ind.frequency)
    return _memo(m, ("columns", end), lambda: [
        (freq.label(period), period_text(ind, period))
        for period in (m.grid.period(j) for j in range(end + 1))])


def target_year(m: Matrix) -> int:
    """The financial year of the scorecard's Target column: the year of the evaluation
    period (as of July 2008: 2008/09), whatever period the series' data ends in."""
    ind = m.indicator
    day = Frequency(ind.frequency).start(m.grid.end)
    return financial_year(day.year * 12 + day.month - 1, ind.fy_start_month)


def comment_for(m: Matrix, i: int, matrices: Mapping[str, Matrix], ruleset: RuleSet) -> str:
    """Return the analyst's comment for row ``i`` of ``m``."""
    parts, _ = comment(m, i, matrices, ruleset)
    return " ".join(part.text for part in parts)


def comment(m: Matrix, i: int, matrices: Mapping[str, Matrix], ruleset: RuleSet
            ) -> tuple[list[CommentPart], list[RankFact]]:
    """Return the comment on row ``i`` of ``m`` sentence by sentence, and the ranks it states.

    In the seed's order: the status against the judged target (and the target's note),
    the indicator's note, what its parts and companions did, the comparison with the last
    complete financial year, provisional data, wide SPC limits, and its ranks.
    """
    return _comment(m, i, _shared(m, matrices, ruleset))


def _comment(m: Matrix, i: int, shared: _Shared) -> tuple[list[CommentPart], list[RankFact]]:
    matrices, ruleset, h = shared.matrices, shared.ruleset, shared.h
    rank_facts = _rank_facts(m, i, matrices, ruleset) if shared.ranked else []
    texts = [
        ("status", _status_sentence(m, i, shared)),
        ("target_note", shared.target_note),
        ("note", shared.note),
        ("parts", _children_sentence(m, i, shared.parts) if shared.parts else ""),
        ("companions", _companions_sentence(m, m.labels[i], matrices)),
        ("comparison", _comparison_sentence(m, i, shared.children)),
        ("provisional", _provisional_sentence(m, i, h) if shared.provisional is not None
         and shared.provisional[i] else ""),
        ("variation", _variation_sentence(m, i)),
        ("rank", _rank_sentence(rank_facts, m, ruleset)),
    ]
    return [CommentPart(kind, text) for kind, text in texts if text], rank_facts


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    return text if text.endswith((".", "!", "?")) else text + "."


def _status_sentence(m: Matrix, i: int, shared: _Shared) -> str:
    """``Below target level: 77.0% over the rolling year to Jun-08, below its 2008/09 target
    of 78.9%.``; a met target reached in the latest period says so."""
    ind = m.indicator
    h = shared.h
    status = status_name(shared.status[i])
    judged, target = shared.judged[i], shared.target[i]
    if status is Status.BASELINE:
        return (f"{financial_year_label(h.fy)} is a baseline year: the figure is reported, "
                "not judged against a target.")
    if h.end < 0 or math.isnan(shared.value[i]):
        return "No data yet."
    shown = f"{describe_value(ind, shared.value[i], shared.kind)} {shared.over}"
    if status is Status.NOT_RATED:
        why = "neither higher nor lower is better" if ind.direction == "neutral" else \
            f"there is no target for {financial_year_label(h.fy)}"
        return f"Not rated: {shown}; {why}."
    if status not in (Status.RED, Status.AMBER, Status.GREEN):
        return ""
    if status is Status.GREEN:
        opening = "On target"
    elif h.target_kind[i] != "level":
        opening = "Short of target"
    else:
        opening = f"{'Below' if ind.direction == 'up' else 'Above'} target level"
    phrase = target_phrase(ind, h.fy, judged, target, h.target_kind[i],
                           _level_target(m, i, h.end, h.n) if h.target_kind[i] == "change_pp"
                           else None)
    turned = _turn(m, i, shared, status) if shared.turns else ""
    return f"{opening}: {shown}, {phrase}{turned}."


def _turns(m: Matrix, h: Headline) -> tuple[list[float], list[float]] | None:
    """Return every row's level at the period before the headline's and at it, when that
    period is in the same financial year: only then can a row have turned
    (:func:`_turn`); else None."""
    if h.end < 1 or \
            financial_year(m.grid.period(h.end - 1), m.indicator.fy_start_month) != h.fy:
        return None
    return _headline(m, h.end - 1).level.tolist(), h.level.tolist()


def _turn(m: Matrix, i: int, shared: _Shared, status: Status) -> str:
    """``, after a slight improvement on the rolling year to Feb-08 (55.1%)`` when the
    latest period moved the series across its target, else ``""``; asked only when the
    period before is in the same financial year (:func:`_turns`).

    The window before is judged against the level this year's target asks for (a change
    target: the level it comes to, "to 55.2%"), so both windows face the same bar.
    """
    ind = m.indicator
    h = shared.h
    judged = (Status.RED, Status.AMBER, Status.GREEN)
    if status not in judged or shared.turns is None:
        return ""
    bar = shared.target[i] if h.target_kind[i] == "level" else \
        _level_target(m, i, h.end, h.n)
    then, now = shared.turns[0][i], shared.turns[1][i]
    if bar is None or np.isnan(bar) or np.isnan(then) or np.isnan(now):
        return ""
    was_met = then >= bar if ind.direction == "up" else then <= bar
    if was_met == (status is Status.GREEN):
        return ""
    return (f", after {turn(then, now, ind.direction)} on the {window_text(m, h.end - 1)} "
            f"({format_value(ind, then)})")


def _target_note(ind: Indicator, h: Headline) -> str:
    target = ind.target_for(h.fy)
    return _sentence(target.note) if target is not None else ""


def _provisional_sentence(m: Matrix, i: int, h: Headline) -> str:
    ind = m.indicator
    if m.provisional is None or h.end < 0:
        return ""
    window = m.provisional[i, max(0, h.end - h.n + 1):h.end + 1]
    if not window.any():
        return ""
    cols = np.flatnonzero(m.provisional[i, :h.end + 1])
    first, last = m.grid.period(int(cols[0])), m.grid.period(int(cols[-1]))
    span = period_text(ind, first) if first == last else \
        f"{period_text(ind, first)} to {period_text(ind, last)}"
    return f"Data for {span} is provisional (late submissions may change it)."


def _variation_sentence(m: Matrix, i: int) -> str:
    """``Monthly values vary considerably: …`` when the indicator asks for the note
    (``spc.considerable_variation``) and its latest process limits lie at least that share
    of the mean either side of it."""
    ind = m.indicator
    share = ind.spc.considerable_variation
    if share is None:
        return ""
    spc = _spc(_one_row(m, i))
    if spc is None:
        return ""
    mean, lower, upper = float(spc.mean[0]), float(spc.lower[0]), float(spc.upper[0])
    if np.isnan(mean) or mean == 0 or (upper - lower) / 2 < share * abs(mean):
        return ""
    every = {"monthly": "Monthly", "quarterly": "Quarterly", "weekly": "Weekly",
             "annual": "Yearly"}[ind.frequency]
    spread = (upper - lower) / 2 / abs(mean) * 100
    return (f"{every} values vary considerably: the SPC process limits, "
            f"{format_value(ind, lower)} to {format_value(ind, upper)}, lie ±{spread:.0f}% "
            f"around the mean of {format_value(ind, mean)}.")


# --- what the parts, the companions and the last financial year say -------------------


def _changes(child: Matrix, parent: Matrix) -> bool:
    """True when a part is described by its change (the parent's headline is a change)."""
    kind = child.indicator.headline_kind
    return kind == "change_pct" or (kind == "level"
                                    and parent.indicator.headline_kind == "change_pct")


@dataclass(frozen=True)
class _Move:
    text: str  # "Robbery is down 22.3% (9,828)"
    worse: bool
    window: str  # " over the rolling year to Jul-08 (compared to the RY to Jul-07)"


def _move(m: Matrix, row: int) -> _Move | None:
    """How series ``row`` of ``m`` changed over its headline window on the one before;
    None when the windows cannot be compared."""
    ind = m.indicator
    h = _headline(m)
    result = _change(m, h.end, h.n)
    delta, pct = float(result.delta[row]), float(result.pct[row])
    if np.isnan(pct):
        return None
    word = "up" if delta > 0 else "down" if delta < 0 else "unchanged"
    size = "" if word == "unchanged" else f" {abs(pct):.1f}% ({abs(delta):,.0f})"
    window = (f" over the {window_text(m, h.end)} (compared to the "
              f"{window_text(m, h.end - result.lag, short=True)})")
    worse = (delta > 0) if ind.direction == "down" else (delta < 0)
    return _Move(f"{ind.name} is {word}{size}", worse, window)


def _children_sentence(m: Matrix, i: int, children: list[Matrix]) -> str:
    parent = m.indicator
    label = labels_of(m.labels[i])
    good: list[str] = []
    bad: list[str] = []
    levels: list[str] = []
    window = ""
    for child in children:
        ci = child.index().get(label)
        if ci is None:
            continue
        cind = child.indicator
        if _changes(child, m):
            moved = _move(child, ci)
            if moved is None:
                continue
            (bad if moved.worse else good).append(moved.text)
            window = moved.window
        else:
            ch = _headline(child)
            value = float(ch.value[ci])
            target = float(ch.target[ci])
            text = f"{cind.name} {format_value(cind, value)}"
            if not np.isnan(target):
                text += f" against a target of {format_value(cind, target)}"
            levels.append(text)
            window = f" over the {window_text(child, ch.end)}"
    if good or bad:
        ordered = good + bad
        if parent.unit == "count" and ordered:
            ordered[0] = ordered[0].replace(")", " offences)", 1)
        # Every part after the first continues the sentence: "…, vehicle crime is down".
        ordered = ordered[:1] + [_lower_first(text) for text in ordered[1:]]
        first, rest = ordered[:len(good)], ordered[len(good):]
        if first and rest:
            body = ", ".join(first) + ", but " + ", ".join(rest)
        else:
            body = ", ".join(first or rest)
        return body + window + "."
    if levels:
        return "Parts: " + "; ".join(levels) + window + "."
    return ""


def _companions_sentence(m: Matrix, label: Mapping[str, str],
                         matrices: Mapping[str, Matrix]) -> str:
    """``Most serious violence is down 3.8% (386 offences) and assault with injury is down
    1.9% (…) over the rolling year to Jul-08 (compared to …).``: the indicator's own change
    and its companions' (``companions``), each over its headline window."""
    ind = m.indicator
    if not ind.companions:
        return ""
    key = labels_of(label)
    moves: list[_Move] = []
    for name in [ind.id, *ind.companions]:
        other = m if name == ind.id else matrices.get(name)
        row = other.index().get(key) if other is not None else None
        moved = _move(other, row) if other is not None and row is not None else None
        if moved is not None:
            moves.append(moved)
    if len(moves) < 2:
        return ""
    texts = [moves[0].text] + [_lower_first(mv.text) for mv in moves[1:]]
    if ind.unit == "count":
        texts[0] = texts[0].replace(")", " offences)", 1)
    windows = {mv.window for mv in moves}
    body = ", ".join(texts[:-1]) + " and " + texts[-1]
    if len(windows) == 1:
        return body + moves[0].window + "."
    return "; ".join(t + mv.window for t, mv in zip(texts, moves, strict=True)) + "."


def _comparison_sentence(m: Matrix, i: int, children: list[Matrix]) -> str:
    """``Slightly down on 2007/08 over the rolling year to Jul-08 (207 against 210 a month);
    cocaine (inc. crack) and heroin, however, are both slightly up (…).``: the headline
    window against the last complete financial year (``compare_with``), and its parts."""
    ind = m.indicator
    if ind.compare_with != "financial_year":
        return ""
    own = _against_last_year(m, i)
    if own is None:
        return ""
    word, now, then, fy = own
    per = " a month" if ind.aggregation == "mean" and ind.frequency == "monthly" else ""
    averages = "monthly averages: " if per else ""
    text = (f"{word[:1].upper()}{word[1:]} on {fy} over the {window_text(m, _headline(m).end)} "
            f"({averages}{_figure(ind, now)} against {_figure(ind, then)})")
    key = labels_of(m.labels[i])
    moves: list[tuple[str, str, str]] = []  # name, word, figures
    for child in children:
        ci = child.index().get(key)
        found = _against_last_year(child, ci) if ci is not None else None
        if found is None:
            continue
        cword, cnow, cthen, _ = found
        moves.append((child.indicator.name, cword,
                      f"{_figure(child.indicator, cnow)} against "
                      f"{_figure(child.indicator, cthen)}"))
    if not moves:
        return text + "."
    words = {w for _, w, _ in moves}
    if len(words) == 1:
        (cword,) = words
        names = [_lower_first(n) for n, _, _ in moves]
        joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        contrast = ", however," if cword.split()[-1] != word.split()[-1] else ""
        verb = "is" if len(moves) == 1 else {2: "are both"}.get(len(moves), "are all")
        figures = "; ".join(f for _, _, f in moves)
        return f"{text}; {joined}{contrast} {verb} {cword} ({figures})."
    parts = [f"{_lower_first(n)} is {w} ({f})" for n, w, f in moves]
    return f"{text}; " + ", ".join(parts) + "."


def _figure(ind: Indicator, value: float) -> str:
    """A level being compared, one decimal finer than the indicator's own (``209.5``), so
    that rounding never hides a move the words state."""
    if ind.unit in ("percent", "pp") or ind.aggregation == "rate":
        return format_value(ind, value)
    return f"{value:,.{ind.precision + 1}f}"


def _against_last_year(m: Matrix, i: int) -> tuple[str, float, float, str] | None:
    """Return (``slightly down``, headline level, the last complete financial year's
    level, ``2007/08``) for row ``i``; None when either is unknown."""
    h = _headline(m)
    end, n = rank_span(m, RankWindow("financial_year"))
    if h.end < 0 or end < 0:
        return None
    then, _ = m.window(end, n)
    now = float(h.level[i])
    if np.isnan(now) or np.isnan(then[i]):
        return None
    fy = financial_year(m.grid.period(end), m.indicator.fy_start_month)
    return movement(float(then[i]), now), now, float(then[i]), financial_year_label(fy)


# --- ranks -----------------------------------------------------------------------------


def _rank_facts(m: Matrix, i: int, matrices: Mapping[str, Matrix], ruleset: RuleSet
                ) -> list[RankFact]:
    """The row's own rank (``rank.over``), then its parts' (``rank.parts``), each over
    its indicator's window; ranks that cannot be taken (no data) are left out."""
    ind = m.indicator
    key = labels_of(m.labels[i])
    out = []
    for name in ([ind.id] if ind.rank.over is not None else []) + list(ind.rank.parts):
        other = m if name == ind.id else matrices.get(name)
        if other is None or other.indicator.rank.over is None:
            continue
        group = ruleset.peer_groups.get(other.indicator.peer_group or "")
        row = other.index().get(key)
        if group is None or row is None or other.indicator.direction == "neutral":
            continue
        result = _ranks(other, group, other.indicator.rank.over)
        if np.isnan(result.rank[row]):
            continue
        freq = Frequency(other.indicator.frequency)
        oind = other.indicator
        out.append(RankFact(
            indicator=oind.id, reference=oind.reference or oind.name,
            rank=int(result.rank[row]), size=result.size, position=result.position(row),
            over=str(oind.rank.over), window=result.window,
            first_period=freq.label(other.grid.period(result.end - result.n + 1)),
            last_period=freq.label(other.grid.period(result.end)),
            value=_num(float(result.value[row])), group_mean=_num(result.mean)))
    return out


def _rank_sentence(facts: list[RankFact], m: Matrix, ruleset: RuleSet) -> str:
    """``Ranked 3rd of 8 in its most similar family for May–July 2008.``; a combined row's
    parts: ``For the year to July 2008, ranked 2nd of 8 in its most similar family for
    SPI 6.1 and 3rd of 8 for SPI 6.4.``"""
    if not facts:
        return ""
    sentences = []
    own = [f for f in facts if f.indicator == m.indicator.id]
    for fact in own:
        group = _group_name(m.indicator.id, ruleset)
        sentences.append(f"Ranked {fact.position} of {fact.size} in its {group} "
                         f"{_phrase(fact, ruleset)}.")
    by_window: dict[str, list[RankFact]] = {}
    for fact in facts:
        if fact not in own:
            by_window.setdefault(_phrase(fact, ruleset), []).append(fact)
    for phrase, parts in by_window.items():
        group = _group_name(parts[0].indicator, ruleset)
        ranked = [f"{f.position} of {f.size}" + (f" in its {group}" if k == 0 else "")
                  + f" for {f.reference}" for k, f in enumerate(parts)]
        body = ranked[0] if len(ranked) == 1 else ", ".join(ranked[:-1]) + " and " + ranked[-1]
        sentences.append(f"{phrase[:1].upper()}{phrase[1:]}, ranked {body}.")
    return " ".join(sentences)


def _phrase(fact: RankFact, ruleset: RuleSet) -> str:
    over = ruleset.indicators[fact.indicator].rank.over
    return f"in {fact.window}" if over is not None and over.kind == "calendar_year" \
        else f"for {fact.window}"


def _group_name(indicator: str, ruleset: RuleSet) -> str:
    group = ruleset.peer_groups.get(ruleset.indicators[indicator].peer_group or "")
    return group.name if group is not None else "peer group"


def _lower_first(text: str) -> str:
    """Lower-case a name that continues a sentence, leaving acronyms (``MV crime``)."""
    return text if text[:2].isupper() else text[0].lower() + text[1:]
