"""The pack as an Excel workbook (XlsxWriter), for an analyst to keep working in.

Sheets:

- ``Scorecard``: the seed's columns, one row per scorecard row under its group; values
  and targets are numbers carrying the indicator's own number format (taken from the
  published text: ``77.0%`` is 77.0 shown as ``0.0"%"``), the status column coloured by
  conditional formats, a native Excel sparkline of the headline level per row;
- ``Exceptions``: what changed since the previous month, and why;
- one sheet per indicator: every period of every series with its value, target, level,
  SPC mean and limits, the special-cause rule and variation, and the provisional flag.
  The sparklines read their data from these sheets.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from monitor.http.charts import SPC_ICONS
from monitor.model import Status
from monitor.report.pack import ASSURANCE_WORDS, SPECIAL_RULES, Pack
from monitor.rules.snapshot import SPARKLINE, SeriesDetail

STATUS_FILL = {Status.RED: ("#d5281b", "#ffffff"), Status.AMBER: ("#ffb81c", "#1d2a36"),
               Status.GREEN: ("#00703c", "#ffffff"), Status.BASELINE: ("#768692", "#ffffff"),
               Status.NOT_RATED: ("#f0f4f5", "#1d2a36"), Status.NO_DATA: ("#f0f4f5", "#1d2a36")}
SCORECARD_COLUMNS = ("Group", "Reference", "Indicator", "Series", "Latest", "Latest data",
                     "Target", "Target (as written)", "Status", "Trend", "SPC variation",
                     "SPC assurance", "Comment")
DATA_COLUMNS = ("Series", "Period", "Value", "Target", "Level", "Level target", "Mean",
                "Lower limit", "Upper limit", "Signal", "Variation", "Provisional")
_NUMBER = re.compile(r"^[+-]?[\d,]*\.?(\d*)\s*(%|pp)?$")
_SHEET_BAD = re.compile(r"[\[\]:*?/\\']")


def number_format(text: str) -> str | None:
    """Return the Excel number format that prints a value as the published ``text`` does:
    ``77.0%`` → ``0.0"%"``, ``4.2pp`` → ``0.0"pp"``, ``9,828`` → ``#,##0``; None when the
    text is not a plain number (the value is then written as text)."""
    found = _NUMBER.match(text.strip())
    if found is None or not any(c.isdigit() for c in text):
        return None
    decimals, suffix = len(found.group(1)), found.group(2) or ""
    base = "#,##0" + ("." + "0" * decimals if decimals else "")
    return base + (f'"{suffix}"' if suffix else "")


def _sheet_name(base: str, used: set[str]) -> str:
    name = _SHEET_BAD.sub("_", base)[:31] or "Indicator"
    n = 2
    candidate = name
    while candidate.lower() in used:
        suffix = f" ({n})"
        candidate = name[:31 - len(suffix)] + suffix
        n += 1
    used.add(candidate.lower())
    return candidate


def _series(row: SeriesDetail) -> str:
    return " · ".join(row.labels.values())


def render(pack: Pack) -> bytes:
    """Return the workbook of ``pack`` as .xlsx bytes."""
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "nan_inf_to_errors": True})
    book.set_properties({"title": f"{pack.title} — {pack.data_to}",
                         "company": pack.organisation, "comments": "kpi-monitor"})
    fmt = _Formats(book)
    scorecard = book.add_worksheet("Scorecard")
    exceptions = book.add_worksheet("Exceptions")
    used = {"scorecard", "exceptions"}
    by_indicator: dict[str, list[tuple[int, SeriesDetail]]] = {}
    for i, row in enumerate(pack.rows):
        by_indicator.setdefault(row.indicator.id, []).append((i, row))
    # Each series' rows in its indicator's sheet: (sheet, first row, last row) of its levels.
    spans: dict[int, tuple[str, int, int]] = {}
    for indicator, rows in by_indicator.items():
        sheet_name = _sheet_name(indicator, used)
        spans.update(_indicator_sheet(book, fmt, sheet_name, rows))
    _scorecard_sheet(scorecard, fmt, pack, spans)
    _exceptions_sheet(exceptions, fmt, pack)
    book.close()
    return out.getvalue()


class _Formats:
    def __init__(self, book: Any) -> None:
        self.book = book
        self.head = book.add_format({"bold": True, "font_color": "#ffffff", "bg_color": "#003087",
                                     "text_wrap": True, "valign": "top", "border": 1})
        self.group = book.add_format({"bold": True, "font_color": "#003087",
                                      "bg_color": "#e8edee"})
        self.wrap = book.add_format({"text_wrap": True, "valign": "top"})
        self.top = book.add_format({"valign": "top"})
        self.title = book.add_format({"bold": True, "font_size": 14, "font_color": "#003087"})
        self.status = book.add_format({"bold": True, "align": "center", "valign": "top"})
        self.fills = {s: book.add_format({"bg_color": bg, "font_color": fg, "bold": True})
                      for s, (bg, fg) in STATUS_FILL.items()}
        self._numbers: dict[str, Any] = {}

    def number(self, num_format: str | None) -> Any:
        if num_format is None:
            return self.top
        if num_format not in self._numbers:
            self._numbers[num_format] = self.book.add_format({"num_format": num_format,
                                                              "valign": "top", "bold": True})
        return self._numbers[num_format]


def _status_rules(sheet: Any, fmt: _Formats, first: int, last: int, col: int) -> None:
    """Colour a status column by its words: conditional formats, so an edited cell
    recolours itself."""
    for status, cell_format in fmt.fills.items():
        sheet.conditional_format(first, col, last, col, {
            "type": "cell", "criteria": "==", "value": f'"{status.word.capitalize()}"',
            "format": cell_format})


def _scorecard_sheet(sheet: Any, fmt: _Formats, pack: Pack,
                     spans: dict[int, tuple[str, int, int]]) -> None:
    from xlsxwriter.utility import xl_rowcol_to_cell

    sheet.write(0, 0, f"{pack.title} — data to {pack.data_to}", fmt.title)
    sheet.write(1, 0, " · ".join(p for p in (pack.organisation, f"evaluated as of "
                                             f"{pack.period}", "generated "
                                             f"{pack.generated_at:%d %b %Y %H:%M %Z}") if p))
    header = 3
    for col, name in enumerate(SCORECARD_COLUMNS):
        sheet.write(header, col, name, fmt.head)
    r = header
    group = None
    sparklines: dict[Status, list[tuple[str, str]]] = {}
    for i, row in enumerate(pack.rows):
        if row.indicator.group != group and row.indicator.group:
            r += 1
            group = row.indicator.group
            sheet.merge_range(r, 0, r, len(SCORECARD_COLUMNS) - 1, group, fmt.group)
        r += 1
        value_format = number_format(row.value_text)
        sheet.write(r, 0, row.indicator.group, fmt.top)
        sheet.write(r, 1, row.indicator.reference, fmt.top)
        sheet.write(r, 2, row.indicator.name, fmt.wrap)
        sheet.write(r, 3, _series(row), fmt.top)
        if row.value is not None and value_format is not None:
            sheet.write_number(r, 4, row.value, fmt.number(value_format))
        else:
            sheet.write_string(r, 4, row.value_text, fmt.top)
        sheet.write(r, 5, row.window_label, fmt.top)
        target_format = number_format(row.target_text) or value_format
        if row.target is not None:
            sheet.write_number(r, 6, row.target, fmt.number(target_format))
        sheet.write(r, 7, row.target_text, fmt.wrap)
        sheet.write(r, 8, row.status.word.capitalize(), fmt.status)
        span = spans.get(i)
        if span is not None:
            name, first, last = span
            first = max(first, last - SPARKLINE + 1)
            location, source = xl_rowcol_to_cell(r, 9), f"'{name}'!E{first + 1}:E{last + 1}"
            sparklines.setdefault(row.status, []).append((location, source))
        sheet.write(r, 10, SPC_ICONS.get(row.spc_icon, ("", "", row.spc_icon))[2], fmt.wrap)
        sheet.write(r, 11, ASSURANCE_WORDS.get(row.assurance, row.assurance), fmt.wrap)
        sheet.write(r, 12, row.comment, fmt.wrap)
    # One sparkline group per status (its last point in the status's colour): Excel
    # keeps a group's sparklines together, and XlsxWriter builds a group's style once,
    # where a group per row cost a second of the workbook's time at 3,300 rows.
    for status, cells in sparklines.items():
        sheet.add_sparkline(cells[0][0], {
            "location": [c for c, _ in cells], "range": [s for _, s in cells],
            "markers": False, "last_point": True, "high_point": False,
            "series_color": "#005eb8", "last_color": STATUS_FILL[status][0]})
    _status_rules(sheet, fmt, header + 1, max(r, header + 1), 8)
    sheet.freeze_panes(header + 1, 3)
    sheet.autofilter(header, 0, max(r, header + 1), len(SCORECARD_COLUMNS) - 1)
    for col, width in enumerate((18, 10, 40, 18, 10, 20, 10, 18, 10, 16, 24, 24, 80)):
        sheet.set_column(col, col, width)
    sheet.set_landscape()
    sheet.fit_to_pages(1, 0)
    sheet.repeat_rows(header)


def _exceptions_sheet(sheet: Any, fmt: _Formats, pack: Pack) -> None:
    columns = ("Indicator", "Series", "Latest", "Status", "Was", "What changed", "Comment",
               "Alerts")
    for col, name in enumerate(columns):
        sheet.write(0, col, name, fmt.head)
    for r, ex in enumerate(pack.exceptions, start=1):
        row = ex.detail
        sheet.write(r, 0, row.indicator.name, fmt.wrap)
        sheet.write(r, 1, _series(row), fmt.top)
        value_format = number_format(row.value_text)
        if row.value is not None and value_format is not None:
            sheet.write_number(r, 2, row.value, fmt.number(value_format))
        else:
            sheet.write_string(r, 2, row.value_text, fmt.top)
        sheet.write(r, 3, row.status.word.capitalize(), fmt.status)
        sheet.write(r, 4, ex.previous.word.capitalize() if ex.previous else "", fmt.top)
        sheet.write(r, 5, ex.headline, fmt.wrap)
        sheet.write(r, 6, row.comment, fmt.wrap)
        sheet.write(r, 7, "\n".join(f"{a.rule}: {a.explanation}" for a in ex.alerts),
                    fmt.wrap)
    last = max(1, len(pack.exceptions))
    _status_rules(sheet, fmt, 1, last, 3)
    for col, width in enumerate((36, 18, 10, 10, 10, 30, 70, 70)):
        sheet.set_column(col, col, width)
    sheet.freeze_panes(1, 0)


def _indicator_sheet(book: Any, fmt: _Formats, name: str,
                     rows: Sequence[tuple[int, SeriesDetail]]) -> dict[int, tuple[str, int, int]]:
    """Write an indicator's sheet of ``rows`` (each with its index in the pack's rows);
    return each row's span of levels in it, by index."""
    sheet = book.add_worksheet(name)
    info = rows[0][1].indicator
    sheet.write(0, 0, f"{info.name}" + (f" [{info.reference}]" if info.reference else ""),
                fmt.title)
    header = 2
    for col, title in enumerate(DATA_COLUMNS):
        sheet.write(header, col, title, fmt.head)
    spans: dict[int, tuple[str, int, int]] = {}
    r = header
    value_format = fmt.number(number_format(rows[0][1].value_text))
    plain = fmt.number("#,##0.0##")
    # 160,000 rows at 100 indicators x 33 areas: the typed writes (no type dispatch per
    # cell), and each series' name made once.
    write_string, write_number = sheet.write_string, sheet.write_number
    for index, row in rows:
        first = r + 1
        series = _series(row)
        for p in row.points:
            r += 1
            if series:
                write_string(r, 0, series)
            write_string(r, 1, p.period_text)
            for col, value, cell in ((2, p.value, plain), (3, p.target, plain),
                                     (4, p.level, value_format), (5, p.level_target, plain),
                                     (6, p.mean, plain), (7, p.lower, plain),
                                     (8, p.upper, plain)):
                if value is not None:
                    write_number(r, col, value, cell)
            if p.special:
                write_string(r, 9, SPECIAL_RULES.get(p.special, "special cause"))
            write_string(r, 10, p.variation.replace("_", " "))
            if p.provisional:
                write_string(r, 11, "provisional")
        if r >= first:
            spans[index] = (name, first, r)
    if r > header:
        # Special-cause rows stand out where an analyst scrolls.
        sheet.conditional_format(header + 1, 0, r, len(DATA_COLUMNS) - 1, {
            "type": "formula", "criteria": f'=$J{header + 2}<>""',
            "format": book.add_format({"bg_color": "#fde9d9"})})
    sheet.freeze_panes(header + 1, 2)
    for col, width in enumerate((24, 10, 12, 12, 12, 12, 12, 12, 12, 30, 20, 12)):
        sheet.set_column(col, col, width)
    return spans
