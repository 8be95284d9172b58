"""The PDF pack of the bundled example, July 2008: what it says and what it looks like.

One pack is generated per session (``packs`` in conftest.py) through ``monitor report``;
its text is read back with pdftotext and its pages rendered with pdftoppm.
"""

from __future__ import annotations

import html
import re
import subprocess
from collections import Counter
from pathlib import Path

from PIL import Image

from tests.report.conftest import Packs

RED, AMBER, GREEN, BASELINE = (0xD5, 0x28, 0x1B), (0xFF, 0xB8, 0x1C), (0x00, 0x70, 0x3C), \
    (0x76, 0x86, 0x92)
VALUES, TARGET = (0x00, 0x5E, 0xB8), (0xD5, 0x28, 0x1B)
IMPROVEMENT = (0x2B, 0x7B, 0xB9)


def words(text: str) -> str:
    """``text`` with every run of white space one space: pdftotext breaks lines anywhere."""
    return re.sub(r"\s+", " ", text).strip()


def is_part(page: str, name: str) -> bool:
    """True when ``page`` names itself ``name`` in its top margin (and nothing else does)."""
    return re.search(rf"^{name}$", page, flags=re.MULTILINE) is not None


def test_the_pdf_holds_every_value_status_and_comment_that_eval_prints(packs: Packs) -> None:
    text = words(packs.pdf_text().replace("-\n", "-\n"))
    flat = words(" ".join(packs.page_texts()))
    rows = packs.eval_json["scorecard"]
    assert len(rows) == 16
    for row in rows:
        assert row["value_text"] in text, row["indicator"]
        assert row["target_text"] in flat or words(row["target_text"]) in flat, row["indicator"]
        assert words(row["comment"]) in flat, row["indicator"]
    # Each status as many times as the scorecard has it, on the scorecard's pages.
    scorecard = " ".join(t for t in packs.page_texts() if is_part(t, "Scorecard"))
    statuses = Counter(row["status"] for row in rows)
    for status, n in statuses.items():
        word = status.replace("_", " ").capitalize()
        # (at least: "Baseline year" is also a target; the pixels count them exactly)
        assert len(re.findall(rf"^{word}$", scorecard, flags=re.MULTILINE)) >= n, status
    for alert in packs.eval_json["alerts"]:
        if alert["labels"].get("indicator") in {r["indicator"] for r in rows if
                                                r["status"] in ("red", "amber")}:
            assert alert["alertname"] in flat


def test_the_pack_has_cover_exceptions_scorecard_and_a_chart_page_per_indicator_in_need(
        packs: Packs) -> None:
    pages = packs.page_texts()
    rows = packs.eval_json["scorecard"]
    attention = [r for r in rows if r["status"] in ("red", "amber")
                 or r["spc"] != "common_cause"]
    assert len(attention) == 9
    assert len({r["indicator"] for r in attention}) == 9  # one series each here
    scorecard_pages = [p for p in pages if is_part(p, "Scorecard")]
    chart_pages = [p for p in pages if is_part(p, "SPC chart")]
    assert len(chart_pages) == len(attention)
    assert 1 <= len(scorecard_pages) <= 3
    assert len(pages) == 2 + len(scorecard_pages) + len(attention)
    assert is_part(pages[1], "Exceptions")
    assert "Metropolitan Police Service" not in pages[0] or "Data to Jul-08" in pages[0]
    assert "Data to Jul-08" in words(pages[0])
    assert "Generated 07 Aug 2008 09:00 UTC" in words(pages[0])
    assert "Exceptions since 2008-06" in words(pages[1])
    chart_titles = [words(p).removeprefix("SPC chart ") for p in chart_pages]
    for row, title in zip(attention, chart_titles, strict=True):
        assert title.startswith(row["name"][:30]), (row["name"], title)


def _runs(image: Image.Image, colour: tuple[int, int, int], x: int) -> int:
    """Count the vertical runs of exactly ``colour`` in column ``x``."""
    runs, inside = 0, False
    for y in range(image.height):
        hit = image.getpixel((x, y)) == colour
        runs += hit and not inside
        inside = hit
    return runs


def _column_of(image: Image.Image, colour: tuple[int, int, int]) -> int | None:
    """The x of the column holding the most pixels of ``colour`` (None: there are none)."""
    counts: Counter[int] = Counter()
    pixels = image.load()
    assert pixels is not None
    for x in range(0, image.width, 2):
        for y in range(0, image.height, 2):
            if pixels[x, y] == colour:
                counts[x] += 1
    return counts.most_common(1)[0][0] if counts else None


def test_the_scorecard_pages_show_each_row_s_status_as_a_cell_in_its_colour(packs: Packs) -> None:
    pages = packs.page_texts()
    numbers = [i + 1 for i, p in enumerate(pages) if is_part(p, "Scorecard")]
    assert numbers[0] == 3
    expected = Counter(row["status"] for row in packs.eval_json["scorecard"])
    seen: Counter[str] = Counter()
    for number in numbers:
        image = Image.open(packs.page_image(number)).convert("RGB")
        assert image.width > image.height  # A4 landscape
        column = _column_of(image, GREEN)
        assert column is not None
        # Every status cell sits in the same column, one run of colour per row.
        for name, colour in (("red", RED), ("amber", AMBER), ("green", GREEN),
                             ("baseline", BASELINE)):
            seen[name] += _runs(image, colour, column)
        # The status column lies between the figures and the trend, in the left half.
        assert image.width * 0.3 < column < image.width * 0.55
    assert seen == Counter({k: v for k, v in expected.items()})


def test_an_spc_chart_page_draws_the_values_the_target_and_the_special_causes(
        packs: Packs) -> None:
    pages = packs.page_texts()
    # Gun crime: green, with a special cause (improvement, low values) in the latest month.
    number = next(i + 1 for i, p in enumerate(pages)
                  if is_part(p, "SPC chart") and "Gun crime [SPI 5.5]" in words(p))
    image = Image.open(packs.page_image(number, dpi=60)).convert("RGB")
    colours = Counter(image.get_flattened_data())
    assert colours[VALUES] > 300  # the line of monthly values
    assert colours[TARGET] > 50  # the dashed target line
    assert colours[IMPROVEMENT] > 20  # the special-cause points, filled blue
    assert colours[GREEN] > 50  # the status badge
    # The chart fills the middle band of the page: values drawn there, not elsewhere.
    band = [y for x in range(0, image.width, 3) for y in range(image.height)
            if image.getpixel((x, y)) == VALUES]
    assert min(band) > image.height * 0.12 and max(band) < image.height * 0.75
    text = words(pages[number - 1])
    assert "Special cause improvement: low values" in text
    assert "Signals" in text and "Jul-08" in text


def _words(pdf: Path, page: int) -> list[tuple[str, float, float, float]]:
    """Return each word of page ``page`` with its left, right and top (pdftotext -bbox)."""
    xhtml = subprocess.run(["pdftotext", "-bbox", "-f", str(page), "-l", str(page), str(pdf),
                            "-"], check=True, capture_output=True, text=True).stdout
    return [(html.unescape(word), float(x0), float(x1), float(y0)) for x0, y0, x1, word in
            re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" '
                       r'yMax="[\d.]+">([^<]*)</word>', xhtml)]


def scorecard_overflow(pdf: Path, page: int, cell_words: set[str]) -> list[str]:
    """Return the words of the latest data cells (``cell_words``: the values and their
    windows) on a scorecard page that start in the "Latest data" column and run on into
    the Target column, as a nowrap window ("rolling year to Jun-08") did."""
    words = _words(pdf, page)
    latest = min(x0 for w, x0, _, _ in words if w == "Latest")
    target = min(x0 for w, x0, _, _ in words if w == "Target")
    return [w for w, x0, x1, _ in words
            if w in cell_words and latest <= x0 < target and x1 > target - 1]


def test_the_scorecard_s_latest_data_and_its_window_stay_inside_their_column(
        packs: Packs) -> None:
    rows = packs.eval_json["scorecard"]
    cell_words = {w for row in rows for w in f"{row['value_text']} {row['window']}".split()}
    pages = packs.page_texts()
    numbers = [i + 1 for i, p in enumerate(pages) if is_part(p, "Scorecard")]
    windows = 0
    for number in numbers:
        assert scorecard_overflow(packs.pdf, number, cell_words) == [], number
        windows += sum(w == "rolling" for w, *_ in _words(packs.pdf, number))
    assert windows >= 8  # the windows are there, and were looked at
