"""The pages: the live scorecard in headless Chromium, the indicator chart, the other lists."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import httpx
import numpy as np
import pytest

from monitor.http.observed import EmptyObserved
from monitor.http.pages import format_number, status_word
from monitor.http.server import create_app
from monitor.model import Status, fingerprint, month
from monitor.rules.snapshot import IndicatorFrame, IndicatorInfo, Snapshot
from tests.http.conftest import Served, chromium_dom, serving
from tests.http.fakes import DEFINITIONS, FakeDaemon

WORDS = {"red": "Red", "amber": "Amber", "green": "Green", "baseline": "Baseline",
         "unknown": "No data"}


class Dom(HTMLParser):
    """Collects scorecard rows, their status badges, group headings and chart points."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.groups: list[str] = []
        self.special_points: list[str] = []
        self.spc: list[str] = []
        self._rag_depth = 0
        self._in_group = False
        self._row: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "tr" and "series-row" in classes:
            self._row = {"indicator": a["data-indicator"], "series": a["data-series"],
                         "status": a["data-status"], "rag": ""}
            self.rows.append(self._row)
        elif tag == "tr" and "group-head" in classes:
            self._in_group = True
            self.groups.append("")
        elif tag == "span" and self._row is not None and (self._rag_depth or "rag" in classes):
            self._rag_depth += 1
        elif tag == "circle" and a.get("data-special", "0") != "0":
            self.special_points.append(a["data-special"])
        elif tag == "svg" and "spc-icon" in classes and self._row is not None:
            self.spc.append(a["data-spc"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._rag_depth:
            self._rag_depth -= 1
        elif tag == "tr":
            self._row = None
            self._in_group = False

    def handle_data(self, data: str) -> None:
        if self._rag_depth and self._row is not None:
            self._row["rag"] += data
        if self._in_group:
            self.groups[-1] += data.strip()


def parse(html: str) -> Dom:
    dom = Dom()
    dom.feed(html)
    return dom


def test_the_scorecard_in_chromium_shows_every_reported_indicator_with_its_status(
        served: Served) -> None:
    dom = parse(chromium_dom(f"{served.url}/scorecard"))
    expected = [(d.indicator.id, fingerprint(d.labels), d.status.value)
                for d in served.observed.scorecard()]
    assert len(expected) == len(DEFINITIONS)
    assert [(r["indicator"], r["series"], r["status"]) for r in dom.rows] == expected
    for row in dom.rows:
        assert row["rag"].split()[1:] == WORDS[row["status"]].split()
    assert dom.groups == ["Tackle serious acquisitive crime", "Tackle serious violence",
                          "Increase sanction detections for Class A trafficking"]
    assert dom.spc == [d.spc_icon for d in served.observed.scorecard()]


def test_the_all_series_view_shows_every_series_with_its_status(served: Served) -> None:
    html = httpx.get(f"{served.url}/scorecard", params={"view": "all",
                                                        "per_indicator": 50}).text
    expected = [(ind, fingerprint(labels), next(s.value for s in Status if s.code == code))
                for ind, frame in served.observed.frames.items()
                for labels, code in zip(frame.labels, frame.status.tolist(), strict=True)]
    assert [(r["indicator"], r["series"], r["status"]) for r in parse(html).rows] == expected


def test_the_scorecard_row_reads_like_the_seed(served: Served) -> None:
    html = httpx.get(f"{served.url}/scorecard").text
    for text in ("Serious acquisitive crime rate", "[SPI 5.2]", "-4.4%", "12 mths to Dec-09",
                 "Residential burglary is up 6.0% (3,540 offences) over the rolling year to "
                 "Dec-09 (compared to the RY to Dec-08).", "Baseline year",
                 '<span class="chip-k">borough</span>London',
                 '<li data-milestones="ct-milestones">'):
        assert text in html
    assert {r["indicator"]: r["status"] for r in parse(html).rows}[
        "residential_burglary"] == "red"


@pytest.mark.parametrize(("params", "expected"), [
    pytest.param({"status": "red"}, "red-in-scorecard", id="scorecard-red"),
    pytest.param({"status": "red", "view": "all", "per_indicator": 500}, "red-everywhere",
                 id="all-series-red"),
    pytest.param({"match": 'borough="Camden"', "view": "all"}, "camden", id="all-camden"),
])
def test_the_scorecard_filters_by_status_and_labels(served: Served, params: dict[str, Any],
                                                    expected: str) -> None:
    rows = parse(httpx.get(f"{served.url}/scorecard", params=params).text).rows
    frames = served.observed.frames
    if expected == "red-in-scorecard":
        want = [d.indicator.id for d in served.observed.scorecard() if d.status is Status.RED]
        assert [r["indicator"] for r in rows] == want
    elif expected == "red-everywhere":
        assert len(rows) == sum(int((f.status == Status.RED.code).sum())
                                for f in frames.values())
        assert {r["status"] for r in rows} == {"red"}
    else:
        assert [r["series"] for r in rows] == [fingerprint({"borough": "Camden"})] * len(frames)


def test_the_all_series_view_caps_series_per_indicator(served: Served) -> None:
    html = httpx.get(f"{served.url}/scorecard", params={"view": "all", "per_indicator": 3}).text
    frames = served.observed.frames
    assert len(parse(html).rows) == 3 * len(frames)
    assert html.count("and 30 more series") == len(frames)


def test_a_bad_matcher_on_a_page_is_explained_not_a_500(served: Served) -> None:
    response = httpx.get(f"{served.url}/scorecard", params={"match": 'borough="Camden'})
    assert response.status_code == 200
    assert "Filter not applied" in response.text
    assert "is not closed" in response.text


def test_the_series_page_in_chromium_draws_values_target_limits_and_special_causes(
        served: Served) -> None:
    fp = fingerprint({"borough": "London"})
    html = chromium_dom(f"{served.url}/indicators/residential_burglary/series/{fp}")
    dom = parse(html)
    detail = served.observed.detail("residential_burglary", {"borough": "London"})
    assert detail is not None
    flagged = [str(s) for s in detail.special if s]
    assert sorted(dom.special_points) == sorted(flagged)
    assert flagged  # London burglary 2008-2009 has a shift and a point outside the limits
    for css in ('class="values"', 'class="target"', 'class="mean"', 'class="limit"'):
        assert css in html
    assert "concern: outside the process limits" in html


@pytest.mark.parametrize(("path", "texts"), [
    pytest.param("/alerts", ["AcquisitiveCrimeAboveTarget", "12 firing", "2 pending",
                             "against a target of -4%"], id="alerts"),
    pytest.param("/alerts?state=pending", ["Enfield", "Barnet"], id="alerts-pending"),
    pytest.param("/rules", ["DrugTraffickingTrend", "1 failing",
                            "seasonal Mann–Kendall needs 36 monthly points", "12.3 ms"],
                 id="rules"),
    pytest.param("/sources", ["police-uk-street", "1 failing", "503 Service Unavailable",
                              "1d ago"], id="sources"),
    pytest.param("/silences", ["0 active", "/api/v1/silences", "Authorization: Bearer"],
                 id="silences"),
    pytest.param("/milestones", ["CT-05", "Specialist Operations", "done late"],
                 id="milestones"),
    pytest.param("/indicators/robbery", ["Robbery", "33 series", "lower is better"],
                 id="indicator"),
])
def test_each_page_shows_what_the_engine_reports(served: Served, path: str,
                                                 texts: list[str]) -> None:
    with served.client() as client:  # httpx's default 5 s timed out on a loaded machine
        response = client.get(path)
    assert response.status_code == 200
    for text in texts:
        assert text in response.text


def test_the_root_redirects_to_the_scorecard_and_css_is_served(served: Served) -> None:
    response = httpx.get(served.url + "/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/scorecard"
    css = httpx.get(served.url + "/static/style.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


@pytest.mark.parametrize("path", [
    pytest.param("/indicators/nope", id="indicator"),
    pytest.param("/indicators/robbery/series/0000000000000000", id="series"),
])
def test_unknown_pages_are_404s_with_a_way_back(served: Served, path: str) -> None:
    response = httpx.get(served.url + path)
    assert response.status_code == 404
    assert 'href="/scorecard"' in response.text


def _client(*frames: IndicatorFrame) -> AbstractContextManager[httpx.Client]:
    snap = Snapshot(datetime(2010, 1, 5, tzinfo=UTC), {f.info.id: f for f in frames}, [], [])
    return serving(create_app(FakeDaemon(), EmptyObserved(snap)))


def _frame(name: str, labels: dict[str, str], status: Status) -> IndicatorFrame:
    info = IndicatorInfo(id="robbery", name=name, reference="", unit="count",
                         direction="down", frequency="monthly", aggregation="sum", window=12)
    return IndicatorFrame(info, [labels], np.array([month("2009-12")]), np.array([5.0]),
                          np.array([np.nan]), np.array([status.code]))


def test_text_from_data_is_escaped() -> None:
    hostile = '<script>alert("x")</script>'
    with _client(_frame(hostile, {"borough": hostile}, Status.GREEN)) as client:
        html = client.get("/scorecard").text
    assert hostile not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_an_indicator_with_one_series_opens_its_chart() -> None:
    with _client(_frame("Robbery", {"force": "MPS"}, Status.UNKNOWN)) as client:
        response = client.get("/indicators/robbery", follow_redirects=False)
        page = client.get(response.headers["location"])
    assert response.status_code == 307
    assert response.headers["location"] == \
        f"/indicators/robbery/series/{fingerprint({'force': 'MPS'})}"
    assert page.status_code == 200
    assert "No chart: the engine has no detail for this series yet." in page.text


def test_before_the_first_evaluation_the_pages_say_so() -> None:
    with serving(create_app(FakeDaemon())) as client:
        html = client.get("/scorecard").text
    assert "No evaluation yet" in html
    assert "Nothing to show yet" in html


@pytest.mark.parametrize(("value", "unit", "text"), [
    pytest.param(77.0, "percent", "77.0%", id="percent"),
    pytest.param(4.2, "pp", "4.2pp", id="pp"),
    pytest.param(9828.0, "count", "9,828", id="count"),
    pytest.param(30.8, "count", "30.8", id="average"),
    pytest.param(0.111, "ratio", "11.1%", id="ratio"),
    pytest.param(None, "count", "—", id="none"),
    pytest.param(float("nan"), "count", "—", id="nan"),
])
def test_numbers_are_written_as_a_scorecard_writes_them(value: float | None, unit: str,
                                                        text: str) -> None:
    assert format_number(value, unit) == text


@pytest.mark.parametrize(("status", "has_value", "word"), [
    pytest.param(Status.RED, True, "Red", id="red"),
    pytest.param(Status.BASELINE, True, "Baseline", id="baseline"),
    pytest.param(Status.UNKNOWN, False, "No data", id="no-data"),
    pytest.param(Status.UNKNOWN, True, "Not rated", id="value-without-a-status"),
])
def test_the_status_badge_says_not_rated_when_there_is_a_value_but_no_status(
        status: Status, has_value: bool, word: str) -> None:
    assert status_word(status, has_value) == word
