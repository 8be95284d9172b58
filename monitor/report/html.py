"""The pack as one HTML document: what ``--format html`` writes, what ``/report`` serves
and what WeasyPrint turns into the PDF.

The pictures are the pages' own (``monitor.http.charts``: sparklines, the XmR chart, the
SPC variation icons); each SVG carries its stylesheet inside it, because a PDF renderer
does not apply the document's CSS to inline SVG.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TypeVar

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from monitor.http import charts
from monitor.http.pages import STATUS_ORDER, STATUS_WORDS, format_number, labels_text
from monitor.report.pack import ASSURANCE_WORDS, COMPACT_FROM, Pack
from monitor.rules.snapshot import SeriesDetail

T = TypeVar("T")
TEMPLATES = Path(__file__).resolve().parent / "templates"
VALUES, TARGET, LIMIT = "#005eb8", "#d5281b", "#6f777b"
CHART_CSS = (f".grid{{stroke:#e5e8eb;stroke-width:1}}"
             f".axis{{fill:#59636e;font-size:12px;font-family:sans-serif}}"
             f".values{{fill:none;stroke:{VALUES};stroke-width:2;stroke-linejoin:round}}"
             f".target{{fill:none;stroke:{TARGET};stroke-width:2;stroke-dasharray:7 4}}"
             f".mean{{fill:none;stroke:{LIMIT};stroke-width:1.5}}"
             f".limit{{fill:none;stroke:{LIMIT};stroke-width:1.2;stroke-dasharray:3 3}}")
SPARK_CSS = (".spark-last{stroke:#fff;stroke-width:1;fill:#59636e}"
             ".status-red{fill:#d5281b}.status-amber{fill:#ffb81c}.status-green{fill:#00703c}")
ASSURANCE_ICONS = {  # verdict: (colour, letter)
    "pass": ("#2b7bb9", "P"), "fail": ("#e46c0a", "F"), "hit_and_miss": ("#8a8f94", "?"),
}


def _styled(svg: Markup, css: str) -> Markup:
    """Return ``svg`` with ``css`` in a ``<style>`` inside it (after the opening tag)."""
    text = str(svg)
    if not text.startswith("<svg"):
        return svg
    end = text.index(">") + 1
    return Markup(f"{text[:end]}<style>{css}</style>{text[end:]}")  # noqa: S704 - constants


def assurance_icon(verdict: str, size: int = 22) -> Markup:
    """Return the "Making Data Count" style assurance icon: P (the target is consistently
    met), F (consistently missed), ? (hit and miss); an empty dashed circle for none."""
    words = ASSURANCE_WORDS.get(verdict, ASSURANCE_WORDS["none"])
    colour, letter = ASSURANCE_ICONS.get(verdict, ("#ffffff", ""))
    stroke = "#b1b4b6" if not letter else "#fff"
    dash = ' stroke-dasharray="3 2"' if not letter else ""
    return Markup(  # noqa: S704 - text escaped, the rest numbers and constants
        f'<svg class="assurance-icon" width="{size}" height="{size}" viewBox="0 0 30 30" '
        f'role="img" aria-label="{escape(words)}" data-assurance="{escape(verdict)}">'
        f"<title>{escape(words)}</title>"
        f'<circle cx="15" cy="15" r="14" fill="{colour}" stroke="{stroke}" stroke-width="1"'
        f'{dash}/><text x="15" y="20" text-anchor="middle" font-size="14" font-weight="700" '
        f'fill="#fff" font-family="sans-serif">{letter}</text></svg>')


def sparkline(row: SeriesDetail) -> Markup:
    spark = row.sparkline
    return _styled(charts.sparkline([p.level for p in spark], [p.level_target for p in spark],
                                    status=row.status.value, width=96, height=26,
                                    label=f"{row.indicator.name}: last {len(spark)} periods"),
                   SPARK_CSS)


def chart(row: SeriesDetail) -> Markup:
    return _styled(charts.chart(row, width=960, height=300, print_points=True), CHART_CSS)


def groupby_compact(indicators: list[list[T]],
                    compact_from: int) -> list[tuple[bool, list[list[T]]]]:
    """Split indicators' rows into runs: (True, an indicator with more than
    ``compact_from`` series, laid out one line per series) and (False, consecutive
    indicators with fewer, one table)."""
    out: list[tuple[bool, list[list[T]]]] = []
    for rows in indicators:
        compact = len(rows) > compact_from
        if not out or out[-1][0] != compact or compact:
            out.append((compact, []))
        out[-1][1].append(rows)
    return out


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(
        ["html"]), undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(status_words=STATUS_WORDS, status_order=STATUS_ORDER,
                       spc_icon=charts.spc_icon, assurance_icon=assurance_icon,
                       spc_words={k: v[2] for k, v in charts.SPC_ICONS.items()},
                       assurance_words=ASSURANCE_WORDS, sparkline=sparkline, chart=chart)
    env.filters.update(number=format_number, labels_text=labels_text,
                       groupby_compact=groupby_compact)
    return env


def render(pack: Pack) -> str:
    """Return the pack as one self-contained HTML document (styles inline, no scripts)."""
    env = environment()
    css = (TEMPLATES / "pack.css").read_text(encoding="utf-8")
    counts = Counter(row.status for row in pack.rows)
    return env.get_template("pack.html").render(
        pack=pack, css=Markup(css), counts=counts,  # noqa: S704 - our own stylesheet
        show_labels=pack.several_series, compact_from=COMPACT_FROM,
        used_icons={r.spc_icon for r in pack.rows},
        used_assurance={r.assurance for r in pack.rows})
