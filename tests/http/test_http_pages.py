"""The pages: the live scorecard in headless Chromium, the indicator chart, the other lists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest

from monitor.http.observed import EmptyObserved
from monitor.http.pages import format_number, status_word
from monitor.http.server import create_app
from monitor.model import Status, fingerprint, month
from monitor.rules.snapshot import IndicatorFrame, IndicatorInfo, Snapshot
from tests.http import examples as ex
from tests.http.conftest import Served, chromium_dom, serving
from tests.http.dom import parse, series_page
from tests.rules.test_seed_scorecard import EXPECTED_FIRING

WORDS = {"red": "Red", "amber": "Amber", "green": "Green", "baseline": "Baseline",
         "not_rated": "Not rated", "no_data": "No data"}


def reported_in_file_order() -> list[dict[str, Any]]:
    """The MPS rule file's indicators the scorecard reports: those with a reference or a
    target, unless ``scorecard`` says otherwise (docs/rules.md)."""
    return [i for i in ex.mps_rules()["indicators"]
            if i.get("scorecard", bool(i.get("reference") or i.get("targets")))]


def details(served: Served, indicator: str, labels: dict[str, str]) -> dict[str, Any]:
    with served.client() as client:
        body: dict[str, Any] = client.get(
            f"/api/v1/indicators/{indicator}/series/{fingerprint(labels)}").json()
    return body


def test_the_scorecard_in_chromium_shows_every_reported_indicator_with_its_status(
        mps: Served) -> None:
    dom = parse(chromium_dom(f"{mps.url}/scorecard"))
    reported = reported_in_file_order()
    subject = {"force": ex.MPS}  # the peer group's subject speaks for each indicator
    assert [(r["indicator"], r["series"]) for r in dom.rows] == \
        [(i["id"], fingerprint(subject)) for i in reported]
    published = [details(mps, i["id"], subject) for i in reported]
    assert [r["status"] for r in dom.rows] == [d["status"] for d in published]
    for row in dom.rows:
        assert row["rag"].split()[1:] == WORDS[row["status"]].split()
    assert dom.groups == list(dict.fromkeys(i["group"] for i in reported))
    assert dom.spc == [d["spc_icon"] for d in published]


def test_the_all_series_view_shows_every_series_with_its_status(london: Served) -> None:
    html = httpx.get(f"{london.url}/scorecard", params={"view": "all",
                                                        "per_indicator": 50}).text
    expected = [(ind, fingerprint(labels), next(s.value for s in Status if s.code == code))
                for ind, frame in london.snapshot().frames.items()
                for labels, code in zip(frame.labels, frame.status.tolist(), strict=True)]
    assert [(r["indicator"], r["series"], r["status"]) for r in parse(html).rows] == expected
    assert len(expected) == sum(len(a) for a in ex.london_areas().values())


def test_the_scorecard_row_reads_like_the_seed(mps: Served) -> None:
    html = httpx.get(f"{mps.url}/scorecard").text
    for text in ("Serious acquisitive crime rate", "[SPI 5.2]", "-7.8%",
                 "rolling year to Jul-08",
                 "Robbery is down 22.3% (9,828 offences), MV crime is down 6.7% (8,367), but "
                 "residential burglary is up 0.6% (366) over the rolling year to Jul-08 "
                 "(compared to the RY to Jul-07).", "Baseline year",
                 f'<span class="chip-k">force</span>{ex.MPS}',
                 '<li data-milestones="ct_plan">'):
        assert text in html
    assert {r["indicator"]: r["status"] for r in parse(html).rows}[
        "victim_satisfaction"] == "red"


@pytest.mark.parametrize(("params", "expected"), [
    pytest.param({"status": "red"}, "red-in-scorecard", id="scorecard-red"),
    pytest.param({"status": "red", "view": "all", "per_indicator": 500}, "red-everywhere",
                 id="all-series-red"),
    pytest.param({"match": 'force="West Midlands Police"', "view": "all"}, "one-force",
                 id="all-one-force"),
])
def test_the_scorecard_filters_by_status_and_labels(mps: Served, params: dict[str, Any],
                                                    expected: str) -> None:
    rows = parse(httpx.get(f"{mps.url}/scorecard", params=params).text).rows
    with mps.client() as client:
        listed = client.get("/api/v1/series").json()["series"]
    if expected == "red-in-scorecard":
        subject = {"force": ex.MPS}
        want = [i["id"] for i in reported_in_file_order()
                if details(mps, i["id"], subject)["status"] == "red"]
        assert [r["indicator"] for r in rows] == want
        assert want  # the seed's reds: satisfaction, the gap, the SD rate, DV arrests, …
    elif expected == "red-everywhere":
        assert len(rows) == sum(1 for s in listed if s["status"] == "red")
        assert {r["status"] for r in rows} == {"red"}
    else:
        west = fingerprint({"force": "West Midlands Police"})
        assert [r["series"] for r in rows] == [west] * sum(
            1 for s in listed if s["fingerprint"] == west)
        assert rows


def test_the_all_series_view_caps_series_per_indicator(london: Served) -> None:
    html = httpx.get(f"{london.url}/scorecard", params={"view": "all", "per_indicator": 3}).text
    areas = ex.london_areas()
    assert len(parse(html).rows) == 3 * len(areas)
    for count in {len(a) for a in areas.values()}:
        assert html.count(f"and {count - 3} more series") == \
            sum(1 for a in areas.values() if len(a) == count)


def test_a_bad_matcher_on_a_page_is_explained_not_a_500(london: Served) -> None:
    response = httpx.get(f"{london.url}/scorecard", params={"match": 'borough="Camden'})
    assert response.status_code == 200
    assert "Filter not applied" in response.text
    assert "is not closed" in response.text


def test_the_series_page_in_chromium_draws_values_target_limits_and_special_causes(
        mps: Served) -> None:
    labels = {"force": ex.MPS}
    html = chromium_dom(f"{mps.url}/indicators/serious_acquisitive_crime/series/"
                        f"{fingerprint(labels)}")
    dom = parse(html)
    published = details(mps, "serious_acquisitive_crime", labels)
    flagged = [str(p["special_cause"]) for p in published["points"] if p["special_cause"]]
    assert sorted(dom.special_points) == sorted(flagged)
    assert flagged
    for css in ('class="values"', 'class="target"', 'class="mean"', 'class="limit"'):
        assert css in html
    kinds = {p["variation"].split("_")[0] for p in published["points"] if p["special_cause"]}
    for kind in kinds:
        assert f"{kind}: " in html


def test_the_series_page_shows_the_published_headline_and_comment(mps: Served) -> None:
    labels = {"force": ex.MPS}
    published = details(mps, "ksi", labels)
    html = httpx.get(f"{mps.url}/indicators/ksi/series/{fingerprint(labels)}").text
    page = series_page(html)
    assert page == {"value_text": published["value_text"], "status": published["status"],
                    "spc": published["spc_icon"], "comment": published["comment"]}
    assert "Data for Jan-08 to Mar-08 is provisional" in page["comment"]


@pytest.mark.parametrize(("path", "texts"), [
    pytest.param("/alerts", ["VictimSatisfactionBelowTarget",
                             f"{sum(EXPECTED_FIRING.values())} firing",
                             "against a target of 78.9%"], id="alerts"),
    pytest.param("/alerts?state=firing", ["CT milestone"], id="alerts-firing"),
    pytest.param("/rules", ["CounterTerrorismMilestoneOverdue", "critical-performance-areas",
                            "mps-2008-09.yaml"], id="rules"),
    pytest.param("/sources", ["mps-2008-09", "ct_plan", "milestones"], id="sources"),
    pytest.param("/silences", ["0 active", "/api/v1/silences", "Authorization: Bearer"],
                 id="silences"),
    pytest.param("/milestones", ["CT-05", "done late"], id="milestones"),
    pytest.param("/indicators/robbery", ["Robbery", "8 series", "lower is better"],
                 id="indicator"),
])
def test_each_page_shows_what_the_engine_reports(mps: Served, path: str,
                                                 texts: list[str]) -> None:
    response = httpx.get(mps.url + path, timeout=30)  # httpx's 5 s default is short under load
    assert response.status_code == 200
    for text in texts:
        assert text in response.text


def test_the_root_redirects_to_the_scorecard_and_css_is_served(london: Served) -> None:
    response = httpx.get(london.url + "/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/scorecard"
    css = httpx.get(london.url + "/static/style.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


@pytest.mark.parametrize("path", [
    pytest.param("/indicators/nope", id="indicator"),
    pytest.param("/indicators/robbery/series/0000000000000000", id="series"),
])
def test_unknown_pages_are_404s_with_a_way_back(london: Served, path: str) -> None:
    response = httpx.get(london.url + path)
    assert response.status_code == 404
    assert 'href="/scorecard"' in response.text


def _frame(name: str, labels: dict[str, str], status: Status) -> IndicatorFrame:
    info = IndicatorInfo(id="robbery", name=name, reference="", unit="count",
                         direction="down", frequency="monthly", aggregation="sum", window=12)
    return IndicatorFrame(info, [labels], np.array([month("2009-12")]), np.array([5.0]),
                          np.array([np.nan]), np.array([status.code]))


def test_text_from_data_is_escaped(london: Served) -> None:
    hostile = '<script>alert("x")</script>'
    frame = _frame(hostile, {"borough": hostile}, Status.GREEN)
    snap = Snapshot(datetime(2010, 1, 5, tzinfo=UTC), {"robbery": frame}, [], [])
    with serving(create_app(london.app, EmptyObserved(snap))) as client:
        html = client.get("/scorecard").text
        page = client.get("/indicators/robbery", follow_redirects=True)
    assert hostile not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "No chart: the engine has no detail for this series yet." in page.text


def test_before_the_first_evaluation_the_pages_say_so(london: Served) -> None:
    with serving(create_app(london.app)) as client:
        html = client.get("/scorecard").text
    assert "No evaluation yet" in html
    assert "Nothing to show yet" in html


@pytest.mark.parametrize(("value", "text"), [
    pytest.param(9828.0, "9,828", id="count"),
    pytest.param(30.8, "30.8", id="average"),
    pytest.param(0.111, "0.111", id="small-never-rescaled"),
    pytest.param(-2.5, "-2.5", id="negative"),
    pytest.param(None, "—", id="none"),
    pytest.param(float("nan"), "—", id="nan"),
])
def test_table_numbers_are_laid_out_never_rescaled(value: float | None, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize(("status", "word"), [
    pytest.param(Status.RED, "Red", id="red"),
    pytest.param(Status.BASELINE, "Baseline", id="baseline"),
    pytest.param(Status.NOT_RATED, "Not rated", id="a-value-but-nothing-to-judge-it-by"),
    pytest.param(Status.NO_DATA, "No data", id="no-value"),
])
def test_each_status_has_one_word(status: Status, word: str) -> None:
    assert status_word(status) == word == status.word.capitalize()
