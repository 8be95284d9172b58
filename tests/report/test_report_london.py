"""The London example's pack for December 2016: every one of the 33 areas (32 boroughs
and the airports) and London as a whole, from the real borough crime data."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.examples.daemons import example_config
from tests.report.conftest import run

AREAS = 33


def test_the_london_pack_of_december_2016_has_a_row_for_every_area(tmp_path: Path) -> None:
    config = example_config("london", tmp_path)
    assert run(["poll", "--all", "--config", str(config)])[0] == 0
    code, printed = run(["eval", "--config", str(config), "--at", "2016-12", "--format",
                         "json"])
    assert code == 0
    rows = json.loads(printed)["scorecard"]
    areas = sorted(r["labels"]["borough"] for r in rows if r["labels"]["borough"] != "London")
    assert len(areas) == AREAS
    pdf = tmp_path / "london-2016-12.pdf"
    assert run(["report", "--config", str(config), "--at", "2016-12", "--format", "pdf",
                "--out", str(pdf)])[0] == 0
    pages = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True,
                           text=True).stdout.split("\f")
    scorecard = re.sub(r"\s+", " ", " ".join(p for p in pages
                                             if re.search(r"^Scorecard$", p, re.M)))
    assert f"{AREAS + 1} scorecard rows" in pages[0]
    assert "Data to Dec-16" in re.sub(r"\s+", " ", pages[0])
    for row in rows:
        assert row["labels"]["borough"] in scorecard
        assert re.sub(r"\s+", " ", row["comment"]) in scorecard, row["labels"]
    # One SPC chart page per indicator needing attention; every such series (charted or
    # listed beneath the chart) is on those pages with its status and comment.
    attention = [r for r in rows if r["status"] in ("red", "amber")
                 or r["spc"] != "common_cause"]
    charts = [re.sub(r"\s+", " ", p) for p in pages if re.search(r"^SPC chart$", p, re.M)]
    indicators = len({r["indicator"] for r in attention})
    assert indicators >= 1
    assert f"{indicators} SPC chart{'s' if indicators != 1 else ''} (one per indicator; " \
           f"{len(attention)} series need attention)" in re.sub(r"\s+", " ", pages[0])
    assert indicators <= len(charts) <= 2 * indicators  # the list may run onto a page
    on_charts = " ".join(charts)
    for row in attention:
        assert row["labels"]["borough"] in on_charts, row["labels"]
        assert re.sub(r"\s+", " ", row["comment"]) in on_charts, row["labels"]
        assert row["status"].replace("_", " ").capitalize() in on_charts
