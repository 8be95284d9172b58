"""The scorecard: each reported indicator's row, with the comment an analyst would write.

A comment is built from facts, in the seed's order: status against target, what the
parts did (``Robbery is down 22.3% (9,828 offences) … but res. burglary is up 0.6%``),
provisional data, rank in the peer group, and any special-cause signal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date

import numpy as np
import numpy.typing as npt

from monitor.model import Frequency, Status, financial_year
from monitor.rules import conditions, stats
from monitor.rules.data import Matrix
from monitor.rules.loader import RuleSet
from monitor.rules.measures import (
    Headline,
    change,
    describe_value,
    format_target,
    format_value,
    headline,
    over_text,
    period_text,
    status_name,
    target_phrase,
    window_text,
)
from monitor.rules.schema import Indicator, Peers
from monitor.rules.snapshot import SeriesDetail, SeriesPoint


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
    out = []
    for ind in reported(ruleset):
        m = matrices.get(ind.id)
        if m is None:
            continue
        for i in subject_rows(m, ruleset):
            out.append(detail(m, i, matrices, ruleset))
    return out


def detail(m: Matrix, i: int, matrices: Mapping[str, Matrix], ruleset: RuleSet
           ) -> SeriesDetail:
    """Return everything the scorecard row, the series page and the API show for row ``i``."""
    from monitor.rules.engine import indicator_info

    ind = m.indicator
    h = headline(m)
    end = h.end
    kind = ind.headline_kind
    value = float(h.value[i])
    one = _one_row(m, i)
    spc = _spc(one)
    points = _points(one, h, spc)
    return SeriesDetail(
        indicator=indicator_info(ind), labels=dict(m.labels[i]),
        period_label=period_text(ind, m.grid.period(end)) if end >= 0 else "no data",
        window_label=window_text(m, end), value=_num(value),
        value_text=format_value(ind, value, kind), target=_num(float(h.target[i])),
        target_text=format_target(ind, h.fy), status=status_name(int(h.status[i])),
        comment=comment_for(m, i, matrices, ruleset),
        # The headline period's point, as the spc condition judges it: a series without
        # data there shows no signal (stats: a missing point cannot be special).
        spc_icon=points[-1].variation if points else "common_cause", points=points,
        mean=_num(spc.mean[0]) if spc is not None else None,
        upper=_num(spc.upper[0]) if spc is not None else None,
        lower=_num(spc.lower[0]) if spc is not None else None,
    )


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


def _spc(one: Matrix) -> stats.SpcResult | None:
    """Return the XmR chart of a one-series matrix, as the ``spc`` condition computes it
    (None when it has fewer than two periods with data)."""
    end = one.last_column()
    if end < 1 or np.count_nonzero(~np.isnan(one.per_period()[0, :end + 1])) < 2:
        return None
    result, _ = conditions.spc_for(one)
    return result


def _points(one: Matrix, h: Headline, spc: stats.SpcResult | None) -> tuple[SeriesPoint, ...]:
    """Return the series' periods from its first value to the headline period.

    Steps: 1. each period's own value (``per_period``: rates scaled, as SPC reads them);
    2. the headline window's level ending there and the target as a level; 3. the
    target on the per-period scale; 4. provisional flags and revision counts as stored;
    5. the SPC limits of the point's segment, its rule and its variation category.
    """
    ind = one.indicator
    end = h.end
    values = one.per_period()[0, :end + 1] if end >= 0 else np.empty(0)
    present = np.flatnonzero(~np.isnan(values))
    if not present.size:
        return ()
    n_level = h.n if not ind.year_to_date else ind.window
    spread = n_level if _adds_up(one) else 1
    categories = stats.spc_categories(spc)[0] if spc is not None else None
    mean, lower, upper = stats.point_limits(spc) if spc is not None else (None, None, None)
    freq = Frequency(ind.frequency)
    out = []
    for j in range(int(present[0]), end + 1):
        period = one.grid.period(j)
        level, _ = one.window(j, n_level)
        level_target = _level_target(one, 0, j, h.n)
        charted = categories is not None and j < len(categories)
        out.append(SeriesPoint(
            period=freq.label(period), period_text=period_text(ind, period),
            value=_num(float(values[j])),
            target=None if level_target is None else level_target / spread,
            level=_num(float(level[0])), level_target=level_target,
            provisional=bool(one.provisional[0, j]) if one.provisional is not None else False,
            revisions=int(one.revisions[0, j]) if one.revisions is not None else 0,
            mean=_num(float(mean[0, j])) if charted and mean is not None else None,
            lower=_num(float(lower[0, j])) if charted and lower is not None else None,
            upper=_num(float(upper[0, j])) if charted and upper is not None else None,
            special=int(spc.special[0, j]) if charted and spc is not None else 0,
            variation=str(categories[j]) if charted and categories is not None
            else "common_cause"))
    return tuple(out)


def _adds_up(m: Matrix) -> bool:
    """True when a window's value is the sum of its periods' values (counts), so a window
    target spreads evenly over its periods; False for rates, means and last values."""
    if m.parts is not None:
        return _adds_up(m.parts[0])
    return m.denominators is None and m.indicator.aggregation not in ("mean", "last")


def _one_row(m: Matrix, i: int) -> Matrix:
    from dataclasses import replace

    return replace(m, labels=[m.labels[i]], values=m.values[i:i + 1],
                   denominators=None if m.denominators is None else m.denominators[i:i + 1],
                   provisional=None if m.provisional is None else m.provisional[i:i + 1],
                   revisions=None if m.revisions is None else m.revisions[i:i + 1],
                   parts=None if m.parts is None else (_one_row(m.parts[0], i),
                                                       _one_row(m.parts[1], i)),
                   _index=None, _names=None, _by_key=None, _key_names=[])


def _num(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _level_target(m: Matrix, i: int, col: int, n: int) -> float | None:
    """The target expressed as a level at ``col`` (change targets applied to a year ago)."""
    ind = m.indicator
    fy = financial_year(m.grid.period(col), ind.fy_start_month)
    target = ind.target_for(fy)
    if target is None or target.kind == "none" or target.value is None:
        return None
    if target.kind == "level":
        return float(target.value)
    before, _ = m.window(col - n, n)
    base = float(before[i])
    if np.isnan(base):
        return None
    if target.kind == "change_pct":
        return base * (1 + target.value / 100)
    return base + target.value


def comment_for(m: Matrix, i: int, matrices: Mapping[str, Matrix], ruleset: RuleSet) -> str:
    """Return the analyst's comment for row ``i`` of ``m``."""
    ind = m.indicator
    h = headline(m)
    parts: list[str] = []
    status = status_name(int(h.status[i]))
    judged, target = float(h.judged[i]), float(h.target[i])
    if status is Status.BASELINE:
        parts.append(f"{h.fy}/{(h.fy + 1) % 100:02d} is a baseline year: the figure is "
                     "reported, not judged against a target.")
    elif status in (Status.RED, Status.AMBER):
        opening = "Short of target" if h.target_kind[i] != "level" else \
            f"{'Below' if ind.direction == 'up' else 'Above'} target level"
        parts.append(f"{opening}: "
                     f"{describe_value(ind, float(h.value[i]), ind.headline_kind)} "
                     f"{over_text(m, h.end)}, "
                     f"{target_phrase(ind, h.fy, judged, target, h.target_kind[i])}.")
    elif status is Status.GREEN:
        parts.append(f"On target: {describe_value(ind, float(h.value[i]), ind.headline_kind)}"
                     f" {over_text(m, h.end)}, "
                     f"{target_phrase(ind, h.fy, judged, target, h.target_kind[i])}.")
    elif h.end < 0:
        parts.append("No data yet.")
    children = [matrices[c.id] for c in ruleset.children_of(ind.id) if c.id in matrices]
    if children:
        parts.append(_children_sentence(m, i, children))
    if m.provisional is not None and h.end >= 0:
        window = m.provisional[i, max(0, h.end - h.n + 1):h.end + 1]
        if window.any():
            cols = np.flatnonzero(m.provisional[i, :h.end + 1])
            first, last = m.grid.period(int(cols[0])), m.grid.period(int(cols[-1]))
            span = period_text(ind, first) if first == last else \
                f"{period_text(ind, first)} to {period_text(ind, last)}"
            parts.append(f"Data for {span} is provisional (late submissions may change it).")
    group = ruleset.peer_groups.get(ind.peer_group or "")
    if group is not None and ind.direction != "neutral":
        ctx = conditions.Context(matrices, ruleset.peer_groups, [], date.min, 0)
        for over in ("financial_year",):
            outcome = conditions._peers(Peers(rank="last", over=over), m, ctx)
            if not np.isnan(outcome.value[i]):
                rank = int(outcome.value[i])
                size = int(outcome.facts["group_size"])
                fy_text = outcome.explain(i).split(" for the ")[1].split(" (")[0]
                position = "last" if rank == size else conditions._ordinal(rank)
                parts.append(f"Ranked {position} of {size} in its most similar family for "
                             f"{fy_text.replace(' financial year', '')}.")
    return " ".join(p for p in parts if p)


def _children_sentence(m: Matrix, i: int, children: list[Matrix]) -> str:
    parent = m.indicator
    label = m.labels[i]
    good: list[str] = []
    bad: list[str] = []
    levels: list[str] = []
    window = ""
    for child in children:
        ci = child.index().get(tuple(sorted(label.items())))
        if ci is None:
            continue
        ch = headline(child)
        cind = child.indicator
        if cind.headline_kind == "change_pct" or (cind.headline_kind == "level"
                                                  and parent.headline_kind == "change_pct"):
            result = change(child, ch.end, ch.n)
            delta, pct = float(result.delta[ci]), float(result.pct[ci])
            if np.isnan(pct):
                continue
            word = "up" if delta > 0 else "down"
            count = f"{abs(delta):,.0f}"
            text = f"{cind.name} is {word} {abs(pct):.1f}% ({count})"
            window = (f" over the {window_text(child, ch.end)} (compared to the "
                      f"{window_text(child, ch.end - result.lag, short=True)})")
            worse = (delta > 0) if cind.direction == "down" else (delta < 0)
            (bad if worse else good).append(text)
        else:
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


def _lower_first(text: str) -> str:
    """Lower-case a name that continues a sentence, leaving acronyms (``MV crime``)."""
    return text if text[:2].isupper() else text[0].lower() + text[1:]
