"""Inline SVG drawn on the server: sparklines, the indicator chart, SPC icons.

Pure functions of their inputs returning ``Markup``; no JavaScript and no build step.
Every picture carries a text alternative (``<title>`` and ``aria-label``), and colours
never carry meaning alone: status and variation also have letters and words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from monitor.rules.snapshot import SeriesDetail

IMPROVEMENT, CONCERN, NEITHER, COMMON = "#2b7bb9", "#e46c0a", "#7e3794", "#8a8f94"
TARGET_COLOUR = "#b10e1e"
LINE_COLOUR = "#1d2a36"

SPC_ICONS: dict[str, tuple[str, str, str]] = {
    # category: (colour, letter, words)
    "common_cause": (COMMON, "", "Common cause variation: no significant change"),
    "improvement_high": (IMPROVEMENT, "H", "Special cause improvement: high values"),
    "improvement_low": (IMPROVEMENT, "L", "Special cause improvement: low values"),
    "concern_high": (CONCERN, "H", "Special cause concern: high values"),
    "concern_low": (CONCERN, "L", "Special cause concern: low values"),
    "neither_high": (NEITHER, "H", "Special cause variation (neither good nor bad): high"),
    "neither_low": (NEITHER, "L", "Special cause variation (neither good nor bad): low"),
}


def spc_icon(category: str, size: int = 30) -> Markup:
    """Return the NHS "Making Data Count" style variation icon for an SPC category.

    Drawn on a 30×30 grid and scaled to ``size`` pixels. Unknown categories draw as a
    neutral dashed circle titled "No SPC assessment".
    """
    colour, letter, words = SPC_ICONS.get(category, ("#b1b4b6", "?", "No SPC assessment"))
    if category == "common_cause":
        mark = ('<path d="M7.5 15.5 q3.75 -6 7.5 0 t7.5 0" fill="none" stroke="#fff" '
                'stroke-width="2.6" stroke-linecap="round"/>')
    elif letter in ("H", "L"):
        tip, tail, barb = (8.0, 21.5, 11.0) if letter == "H" else (21.5, 8.0, 18.5)
        mark = (f'<text x="12.5" y="19.6" text-anchor="middle" font-size="13" '
                f'font-weight="700" fill="#fff" font-family="system-ui, sans-serif">'
                f'{letter}</text><path d="M21.5 {tail} L21.5 {tip} M18.7 {barb} L21.5 {tip} '
                f'L24.3 {barb}" fill="none" stroke="#fff" stroke-width="1.9" '
                f'stroke-linecap="round" stroke-linejoin="round"/>')
    else:
        mark = ('<text x="15" y="20" text-anchor="middle" font-size="13" font-weight="700" '
                'fill="#fff" font-family="system-ui, sans-serif">?</text>')
    dash = ' stroke-dasharray="3 2"' if category not in SPC_ICONS else ""
    # Safe: every interpolated text is escaped; the rest are numbers and constants.
    return Markup(  # noqa: S704
        f'<svg class="spc-icon" width="{size}" height="{size}" viewBox="0 0 30 30" '
        f'role="img" aria-label="{escape(words)}" data-spc="{escape(category)}">'
        f"<title>{escape(words)}</title>"
        f'<circle cx="15" cy="15" r="14" fill="{colour}" stroke="#fff" '
        f'stroke-width="1"{dash}/>{mark}</svg>')


def _clean(values: Sequence[float | None]) -> list[float | None]:
    return [v if v is not None and math.isfinite(v) else None for v in values]


def _segments(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Split a line where values are missing; return runs of (x, y) with y present."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


def _path(runs: list[list[tuple[float, float]]]) -> str:
    return " ".join("M" + " L".join(f"{x:.1f} {y:.1f}" for x, y in run) for run in runs)


def _step_path(xs: Sequence[float], ys: Sequence[float | None], half: float) -> str:
    """Return a stepped line: each value spans its own period (half a step either side).

    The line never reaches past the first and last points. A run of periods at one value
    is one segment (limits and targets are flat for years: one vertex per period would
    be dozens of points a renderer parses and strokes for nothing).
    """
    parts: list[str] = []
    first, last = (xs[0], xs[-1]) if xs else (0.0, 0.0)
    run: tuple[float, float, float] | None = None  # (left, right, y) of the open segment
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            if run is not None:
                parts.append(f"M{run[0]:.1f} {run[2]:.1f} L{run[1]:.1f} {run[2]:.1f}")
            run = None
            continue
        left, right = max(first, x - half), min(last, x + half)
        if run is not None and run[2] == y:
            run = (run[0], right, y)
            continue
        if run is not None:
            parts.append(f"M{run[0]:.1f} {run[2]:.1f} L{run[1]:.1f} {run[2]:.1f}")
        run = (left, right, y)
    if run is not None:
        parts.append(f"M{run[0]:.1f} {run[2]:.1f} L{run[1]:.1f} {run[2]:.1f}")
    return " ".join(parts)


def sparkline(values: Sequence[float | None], targets: Sequence[float | None] = (),
              *, status: str = "no_data", width: int = 132, height: int = 34,
              label: str = "") -> Markup:
    """Return a small line of ``values`` with a dashed target line and the last point marked.

    Returns an em dash when there is nothing to draw.
    """
    vals = _clean(values)
    tgts = _clean(list(targets) + [None] * (len(vals) - len(targets)))[:len(vals)]
    present = [v for v in vals + tgts if v is not None]
    if not any(v is not None for v in vals):
        return Markup('<span class="muted" aria-label="no history">—</span>')
    lo, hi = min(present), max(present)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    pad = 3.0
    n = len(vals)
    step = (width - 2 * pad) / max(1, n - 1)

    def y(v: float) -> float:
        return pad + (hi - v) / (hi - lo) * (height - 2 * pad)

    xs = [pad + i * step for i in range(n)]
    line = _path(_segments([(x, y(v) if v is not None else None) for x, v in zip(xs, vals,
                                                                               strict=True)]))
    target = _step_path(xs, [y(t) if t is not None else None for t in tgts], step / 2)
    last = max(i for i, v in enumerate(vals) if v is not None)
    last_value = vals[last]
    assert last_value is not None
    title = escape(label or "trend")
    target_svg = (f'<path d="{target}" fill="none" stroke="{TARGET_COLOUR}" '
                  f'stroke-width="1.2" stroke-dasharray="3 2"/>' if target else "")
    return Markup(  # noqa: S704 - text escaped, the rest numbers and constants
        f'<svg class="sparkline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{title}"><title>{title}</title>'
        f"{target_svg}"
        f'<path d="{line}" fill="none" stroke="{LINE_COLOUR}" stroke-width="1.5" '
        f'stroke-linejoin="round"/>'
        f'<circle class="spark-last status-{escape(status)}" cx="{xs[last]:.1f}" '
        f'cy="{y(last_value):.1f}" r="2.8"/></svg>')


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Return round tick values covering [lo, hi], about ``count`` of them."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 0.5:
        ticks.append(round(value, 10))
        value += step
    return ticks


def format_tick(value: float) -> str:
    """Return a compact axis label: ``1,200``, ``0.25``, ``-4``."""
    if abs(value) >= 1000 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class ChartPointView:
    """One point as the chart draws it and its data table lists it."""

    period: str
    value: float | None
    target: float | None
    mean: float | None
    lower: float | None
    upper: float | None
    special: int
    variation: str  # improvement | concern | neither | "" (common cause)
    category: str  # the published category: common_cause, concern_high, …
    provisional: bool
    key: str = ""  # the period as links name it: 2008-07 (``?at=2008-07``)


SPECIAL_RULES = {1: "outside the process limits", 2: "trend", 3: "two of three near a limit",
                 4: "shift"}


def _kind(category: str) -> str:
    """``concern_high`` -> ``concern``; ``common_cause`` -> ``""``."""
    return "" if category == "common_cause" else category.split("_", 1)[0]


def chart_points(detail: SeriesDetail) -> list[ChartPointView]:
    """Return the chart's points as the engine published them (see ``SeriesPoint``)."""
    return [ChartPointView(p.period_text, _finite(p.value), _finite(p.target),
                           _finite(p.mean), _finite(p.lower), _finite(p.upper), p.special,
                           _kind(p.variation), p.variation, p.provisional, p.period)
            for p in detail.points]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def chart(detail: SeriesDetail, *, width: int = 960, height: int = 340,
          at: str | None = None, print_points: bool = False) -> Markup:
    """Return the XmR chart of a series: each period's value, its target, the SPC mean and
    process limits of each point's segment (stepping at a re-base) and the special causes.

    Everything is drawn as the engine published it (``SeriesDetail.points``). Special-cause
    points are filled with their variation's colour (blue improvement, orange concern,
    purple neither); provisional points are hollow. ``at`` (``2008-07``) highlights that
    period with a band behind it and a ring round its point. ``print_points`` (the PDF
    pack) marks only the special-cause and provisional points, and names the chart with
    ``aria-label`` instead of ``<title>`` and ``<desc>`` elements, without a hover title
    per point: paper has no hover, and WeasyPrint spends as long on those elements as on
    the lines and text it draws.
    """
    points = chart_points(detail)
    if not any(p.value is not None for p in points):
        return Markup('<p class="muted">No values yet.</p>')
    left, right, top, bottom = 64, 20, 16, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    present = [v for p in points for v in (p.value, p.target, p.mean, p.lower, p.upper)
               if v is not None]
    lo, hi = min(present), max(present)
    span = (hi - lo) or abs(hi) or 1.0
    lo, hi = lo - span * 0.06, hi + span * 0.06
    ticks = [t for t in nice_ticks(lo, hi) if lo <= t <= hi] or [lo, hi]
    n = len(points)
    step = plot_w / max(1, n - 1)

    def x(i: int) -> float:
        return left + i * step

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    if print_points:
        name = f"{detail.indicator.name}: {_chart_description(detail, points)}"
        parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
                 f'aria-label="{escape(name)}" preserveAspectRatio="xMidYMid meet">']
    else:
        parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
                 f'aria-labelledby="chart-title chart-desc" '
                 f'preserveAspectRatio="xMidYMid meet">',
                 f'<title id="chart-title">{escape(detail.indicator.name)}</title>',
                 f'<desc id="chart-desc">{escape(_chart_description(detail, points))}</desc>']
    marked = next((i for i, p in enumerate(points) if at and p.key == at), None)
    if marked is not None:
        half = max(step / 2, 4.0)
        parts.append(f'<rect class="at-band" x="{x(marked) - half:.1f}" y="{top}" '
                     f'width="{2 * half:.1f}" height="{plot_h}" '
                     f'data-period="{escape(points[marked].key)}"/>')
    for t in ticks:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                     f'class="grid"/><text x="{left - 8}" y="{y(t) + 4:.1f}" '
                     f'text-anchor="end" class="axis">{escape(format_tick(t))}</text>')
    every = max(1, math.ceil(n / 12))
    for i in range(0, n, every):
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 18}" text-anchor="middle" '
                     f'class="axis">{escape(points[i].period)}</text>')
    xs = [x(i) for i in range(n)]
    for cls, ys in (("limit", [p.upper for p in points]), ("limit", [p.lower for p in points]),
                    ("mean", [p.mean for p in points])):
        # Each point's own segment limits: the lines step where the chart was re-based.
        line = _step_path(xs, [y(v) if v is not None else None for v in ys], step / 2)
        if line:
            parts.append(f'<path d="{line}" class="{cls}"/>')
    target = _step_path(xs, [y(p.target) if p.target is not None else None for p in points],
                        step / 2)
    if target:
        parts.append(f'<path d="{target}" class="target"/>')
    line = _path(_segments([(x(i), y(p.value) if p.value is not None else None)
                            for i, p in enumerate(points)]))
    parts.append(f'<path d="{line}" class="values"/>')
    for i, p in enumerate(points):
        # In print (``print_points``) a common-cause point is the line's vertex, without
        # a marker: half the time a PDF renderer spends on a chart is its circles.
        if p.value is None or (print_points and not p.variation and not p.provisional):
            continue
        colour = SPC_ICONS[p.category][0] if p.variation and p.category in SPC_ICONS \
            else LINE_COLOUR
        fill = "#fff" if p.provisional else colour
        radius = 4.5 if p.variation else 3
        label = p.period + (f": special cause ({SPECIAL_RULES.get(p.special, 'rule')}), "
                            f"{p.variation}" if p.variation else "")
        circle = (f'<circle cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="{radius}" '
                  f'fill="{fill}" stroke="{colour}" stroke-width="1.6" '
                  f'data-special="{p.special}" data-variation="{escape(p.category)}"')
        parts.append(f"{circle}/>" if print_points
                     else f"{circle}><title>{escape(label)}</title></circle>")
    marked_value = points[marked].value if marked is not None else None
    if marked is not None and marked_value is not None:
        parts.append(f'<circle class="at-ring" cx="{x(marked):.1f}" '
                     f'cy="{y(marked_value):.1f}" r="9"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - text escaped, the rest numbers and constants


def _chart_description(detail: SeriesDetail, points: list[ChartPointView]) -> str:
    flagged = sum(1 for p in points if p.variation)
    return (f"{len(points)} periods from {points[0].period} to {points[-1].period}; latest "
            f"{detail.value_text} against a target of {detail.target_text}; "
            f"{flagged} special-cause point{'s' if flagged != 1 else ''}.")
