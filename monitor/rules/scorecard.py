"""The scorecard: each reported indicator's row, with the comment an analyst would write.

A comment is built from facts, in the seed's order: status against target, what the
parts did (``Robbery is down 22.3% (9,828 offences) … but res. burglary is up 0.6%``),
provisional data, rank in the peer group, and any special-cause signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np

from monitor.model import Status, financial_year
from monitor.rules import conditions, stats
from monitor.rules.data import Matrix
from monitor.rules.loader import RuleSet
from monitor.rules.measures import (
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
from monitor.rules.snapshot import SeriesDetail

HISTORY = 24


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
    """Return everything the scorecard row and the indicator page show for row ``i``."""
    from monitor.rules.engine import indicator_info

    ind = m.indicator
    h = headline(m)
    end = h.end
    kind = ind.headline_kind
    status = status_name(int(h.status[i]))
    value = float(h.value[i])
    comment = comment_for(m, i, matrices, ruleset)
    first = max(0, end - HISTORY + 1) if end >= 0 else 0
    cols = list(range(first, end + 1)) if end >= 0 else []
    level_hist: list[float | None] = []
    target_hist: list[float | None] = []
    for j in cols:
        level, _ = m.window(j, h.n if not ind.year_to_date else ind.window)
        level_hist.append(_num(level[i]))
        target_hist.append(_level_target(m, i, j, h.n))
    per_period = m.per_period()
    chart = per_period[i:i + 1, :end + 1] if end >= 0 else per_period[i:i + 1, :0]
    mean = upper = lower = None
    special: list[int] = []
    icon = "common_cause"
    if chart.shape[1] >= 2 and not np.isnan(chart).all():
        result, _ = conditions.spc_for(_one_row(m, i))
        mean, upper, lower = _num(result.mean[0]), _num(result.upper[0]), _num(result.lower[0])
        special = [int(v) for v in result.special[0, first:end + 1]]
        icon = str(stats.spc_icon(result)[0])
    provisional = [bool(m.provisional[i, j]) if m.provisional is not None else False
                   for j in cols]
    return SeriesDetail(
        indicator=indicator_info(ind), labels=dict(m.labels[i]),
        period_label=period_text(ind, m.grid.period(end)) if end >= 0 else "no data",
        window_label=window_text(m, end), value=_num(value),
        value_text=format_value(ind, value, kind), target=_num(float(h.target[i])),
        target_text=format_target(ind, h.fy), status=status, comment=comment,
        spc_icon=icon, periods=[period_text(ind, m.grid.period(j)) for j in cols],
        history=level_hist, targets=target_hist, mean=mean, upper=upper, lower=lower,
        special=special, provisional=provisional,
    )


def _one_row(m: Matrix, i: int) -> Matrix:
    from dataclasses import replace

    return replace(m, labels=[m.labels[i]], values=m.values[i:i + 1],
                   denominators=None if m.denominators is None else m.denominators[i:i + 1],
                   provisional=None if m.provisional is None else m.provisional[i:i + 1],
                   revisions=None if m.revisions is None else m.revisions[i:i + 1],
                   parts=None if m.parts is None else (_one_row(m.parts[0], i),
                                                       _one_row(m.parts[1], i)),
                   _index=None, _names=None, _by_key=None, _key_names=[])


def _num(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


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
        first, rest = ordered[:len(good)], ordered[len(good):]
        if first and rest:
            body = ", ".join(first) + ", but " + ", ".join(_lower_first(b) for b in rest)
        else:
            body = ", ".join(first or rest)
        return body + window + "."
    if levels:
        return "Parts: " + "; ".join(levels) + window + "."
    return ""


def _lower_first(text: str) -> str:
    """Lower-case a name that continues a sentence, leaving acronyms (``MV crime``)."""
    return text if text[:2].isupper() else text[0].lower() + text[1:]
