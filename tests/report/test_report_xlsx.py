"""The Excel pack, read back with openpyxl: the same values, statuses and comments as
``monitor eval --format json``, numbers stored as numbers in the indicator's format, the
status column's conditional formats and a native sparkline per row."""

from __future__ import annotations

import re
import zipfile

import pytest
from openpyxl import load_workbook

from monitor.report.xlsx import SCORECARD_COLUMNS, STATUS_FILL, number_format
from tests.report.conftest import Packs

# openpyxl reads the sparklines (XlsxWriter's x14 extension) but cannot keep them: the
# test reads them from the file's XML instead.
pytestmark = pytest.mark.filterwarnings("ignore:Sparkline Group extension:UserWarning")


def _scorecard_rows(packs: Packs) -> list[dict[str, object]]:
    sheet = load_workbook(packs.xlsx)["Scorecard"]
    rows = list(sheet.iter_rows(min_row=4, values_only=True))
    header, body = rows[0], rows[1:]
    assert tuple(header) == SCORECARD_COLUMNS
    return [dict(zip(header, r, strict=True)) for r in body if r[2] is not None]


def test_the_scorecard_sheet_holds_every_value_status_and_comment_eval_prints(
        packs: Packs) -> None:
    printed = packs.eval_json["scorecard"]
    rows = _scorecard_rows(packs)
    assert len(rows) == len(printed) == 16
    for row, want in zip(rows, printed, strict=True):
        assert row["Indicator"] == want["name"]
        assert row["Reference"] == (want["reference"] or None)
        assert row["Latest"] == pytest.approx(want["value"])  # a number, not text
        assert isinstance(row["Latest"], int | float)
        assert row["Latest data"] == want["window"]
        assert row["Target (as written)"] == want["target_text"]
        assert row["Status"] == want["status"].replace("_", " ").capitalize()
        assert row["Comment"] == want["comment"]


def test_numbers_carry_the_format_of_their_published_text(packs: Packs) -> None:
    sheet = load_workbook(packs.xlsx)["Scorecard"]
    formats = {}
    for r in range(5, sheet.max_row + 1):
        cell = sheet.cell(r, 5)
        if isinstance(cell.value, int | float):
            formats[sheet.cell(r, 3).value] = cell.number_format
    assert formats["Victim satisfaction with overall service"] == '#,##0.0"%"'
    assert formats["Criminal networks disrupted (monthly average)"] == "#,##0.0"
    assert formats["Cases where assets were seized (monthly average)"] == "#,##0"


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("77.0%", '#,##0.0"%"', id="percent"),
    pytest.param("-7.8%", '#,##0.0"%"', id="negative percent"),
    pytest.param("4.2pp", '#,##0.0"pp"', id="percentage points"),
    pytest.param("9,828", "#,##0", id="count with thousands"),
    pytest.param("30.8", "#,##0.0", id="one decimal"),
    pytest.param("Baseline year", None, id="words"),
])
def test_it_derives_the_excel_format_from_the_published_text(text: str,
                                                             expected: str | None) -> None:
    assert number_format(text) == expected


def test_status_cells_are_coloured_by_conditional_formats(packs: Packs) -> None:
    sheet = load_workbook(packs.xlsx)["Scorecard"]
    rules = {}
    for ranges in sheet.conditional_formatting:
        for rule in ranges.rules:
            if rule.formula:
                rules[rule.formula[0].strip('"')] = (str(ranges.sqref),
                                                     rule.dxf.fill.bgColor.rgb)
    assert set(rules) >= {"Red", "Amber", "Green", "Baseline"}
    assert rules["Red"][0].startswith("I5:I")  # the Status column
    assert rules["Red"][1].endswith("D5281B")
    assert rules["Green"][1].endswith("00703C")


def test_every_row_has_a_native_sparkline_reading_its_indicator_sheet(packs: Packs) -> None:
    with zipfile.ZipFile(packs.xlsx) as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    assert xml.count("<x14:sparkline>") == 16
    assert "'victim_satisfaction'!E" in xml


def test_each_indicator_has_a_sheet_of_its_monthly_data_limits_and_signals(packs: Packs) -> None:
    book = load_workbook(packs.xlsx)
    assert {"Scorecard", "Exceptions", "gun_crime", "victim_satisfaction"} <= set(
        book.sheetnames)
    sheet = book["gun_crime"]
    rows = list(sheet.iter_rows(min_row=3, values_only=True))
    header, body = rows[0], rows[1:]
    assert header[:10] == ("Series", "Period", "Value", "Target", "Level", "Level target",
                           "Mean", "Lower limit", "Upper limit", "Signal")
    assert body[-1][1] == "Jul-08"
    assert all(isinstance(r[6], float) and isinstance(r[8], float) for r in body)
    signals = [r for r in body if r[9]]
    assert signals and all(r[10] != "common cause" for r in signals)
    assert body[-1][10] == "improvement low"  # the scorecard's icon: the latest point's


def test_each_sparkline_marks_its_last_point_in_its_row_s_status_colour(packs: Packs) -> None:
    # The sparklines are grouped by status (one group's style per status, not per row):
    # every row's sparkline is in the group whose last-point colour is its status's.
    with zipfile.ZipFile(packs.xlsx) as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    colour_of = {}
    for group in re.findall(r"<x14:sparklineGroup .*?</x14:sparklineGroup>", xml):
        last = re.search(r'<x14:colorLast rgb="FF([0-9A-F]{6})"/>', group)
        assert last is not None
        for cell in re.findall(r"<xm:sqref>J(\d+)</xm:sqref>", group):
            colour_of[int(cell)] = "#" + last.group(1).lower()
    sheet = load_workbook(packs.xlsx)["Scorecard"]
    statuses = {status.word.capitalize(): fill for status, (fill, _) in STATUS_FILL.items()}
    rows = {r: sheet.cell(r, 9).value for r in range(5, sheet.max_row + 1)
            if sheet.cell(r, 3).value is not None}
    assert len(colour_of) == len(rows) == 16
    assert {r: statuses[str(status)] for r, status in rows.items()} == colour_of
