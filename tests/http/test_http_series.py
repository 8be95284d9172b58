"""One series as the API and its page show it: what the evaluation published, nothing re-derived.

Runs the real daemon on the small panel of ``tests/http/panel.py``; every expected number
is recomputed here from the panel's CSV file.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from monitor.model import fingerprint
from monitor.rules import stats
from tests.http import panel as data
from tests.http.conftest import Served, read_csv_rows

NORTH = fingerprint({"area": "North"})
SPC_LIMIT = 2.66  # NHS "Making Data Count": mean ± 2.66 × mean moving range


@pytest.fixture(scope="module")
def api(panel: Served) -> Iterator[httpx.Client]:
    with panel.client() as client:
        yield client


def file_values(served: Served, indicator: str, area: str
                ) -> dict[str, tuple[float, float | None, bool]]:
    """Return period -> (value, denominator, provisional) as the panel's CSV holds them."""
    header, *rows = read_csv_rows(served.config.parent / "panel.csv")
    out = {}
    for row in rows:
        record = dict(zip(header, row, strict=True))
        if record["indicator"] == indicator and record["area"] == area:
            out[record["period"]] = (float(record["value"]),
                                     float(record["denominator"]) if record["denominator"]
                                     else None, record["provisional"] == "true")
    return out


def test_a_rate_per_1000_history_ends_at_its_scorecard_value(panel: Served,
                                                             api: httpx.Client) -> None:
    stored = file_values(panel, "burglary_rate", "North")
    last_year = data.PERIODS[-12:]
    rolling = (sum(stored[p][0] for p in last_year)
               / sum(stored[p][1] or math.nan for p in last_year) * 1000)
    detail = api.get(f"/api/v1/indicators/burglary_rate/series/{NORTH}").json()
    listed = api.get("/api/v1/series", params={"indicator": "burglary_rate",
                                               "match": 'area="North"'}).json()["series"]
    history = api.get(f"/api/v1/indicators/burglary_rate/series/{NORTH}/history").json()
    assert detail["value"] == pytest.approx(rolling, rel=1e-12)
    assert listed[0]["value"] == detail["value"]
    assert detail["points"][-1]["level"] == detail["value"]
    # Each period's own rate, per 1,000 households as the indicator's unit says.
    assert [(p["period"], p["value"]) for p in history["points"]] == [
        (p, pytest.approx(stored[p][0] / (stored[p][1] or math.nan) * 1000, rel=1e-12))
        for p in data.PERIODS]
    assert [p["value"] for p in detail["points"]] == [p["value"] for p in history["points"]]
    assert history["points"][-1]["provisional"] is True
    assert not any(p["provisional"] for p in history["points"][:-1])
    page = api.get("/scorecard").text
    assert f'data-indicator="burglary_rate" data-series="{NORTH}"' in page
    assert detail["value_text"] == f"{rolling:.2f}"  # the rule file's precision: 2
    assert f'<span class="value">{detail["value_text"]}</span>' in page


def segment_limits(values: list[float]) -> tuple[float, float, float]:
    """Return (mean, lower, upper) of an XmR chart of ``values``."""
    mean = statistics.fmean(values)
    amr = statistics.fmean(abs(b - a) for a, b in itertools.pairwise(values))
    return mean, mean - SPC_LIMIT * amr, mean + SPC_LIMIT * amr


def test_each_point_carries_the_limits_of_its_segment_after_a_rebase(
        panel: Served, api: httpx.Client) -> None:
    stored = file_values(panel, "calls", "North")
    before = [stored[p][0] for p in data.PERIODS if p < data.REBASE]
    after = [stored[p][0] for p in data.PERIODS if p >= data.REBASE]
    limits = {"before": segment_limits(before), "after": segment_limits(after)}
    detail = api.get(f"/api/v1/indicators/calls/series/{NORTH}").json()
    assert [p["period"] for p in detail["points"]] == data.PERIODS
    for point in detail["points"]:
        mean, lower, upper = limits["before" if point["period"] < data.REBASE else "after"]
        assert (point["mean"], point["lower"], point["upper"]) == (
            pytest.approx(mean, rel=1e-12), pytest.approx(lower, rel=1e-12),
            pytest.approx(upper, rel=1e-12)), point["period"]
    assert (detail["mean"], detail["lower"], detail["upper"]) == pytest.approx(
        limits["after"], rel=1e-12)
    outlier = next(p for p in detail["points"] if p["period"] == data.OUTLIER)
    assert outlier["value"] > limits["after"][2]
    assert (outlier["special_cause"], outlier["variation"]) == (1, "concern_high")


def test_the_variation_of_each_point_is_what_the_rules_computed(panel: Served,
                                                                api: httpx.Client) -> None:
    stored = file_values(panel, "calls", "North")
    values = np.array([[stored[p][0] for p in data.PERIODS]])
    rebased = stats.spc_rebased(values, [data.PERIODS.index(data.REBASE)], direction=-1)
    one_mean = stats.spc(values, direction=-1)
    detail = api.get(f"/api/v1/indicators/calls/series/{NORTH}").json()
    assert [p["special_cause"] for p in detail["points"]] == rebased.special[0].tolist()
    assert [p["variation"] for p in detail["points"]] == \
        stats.spc_categories(rebased)[0].tolist()
    assert detail["spc_icon"] == detail["points"][-1]["variation"]
    # One mean over both segments would call every ordinary month since the re-base a
    # special-cause improvement (a shift below the mean); the published chart does not.
    ordinary = [i for i, p in enumerate(data.PERIODS)
                if p >= data.REBASE and p != data.OUTLIER]
    assert {stats.spc_categories(one_mean)[0, i] for i in ordinary} == {"improvement_low"}
    assert {detail["points"][i]["variation"] for i in ordinary} == {"common_cause"}


def test_the_chart_steps_from_one_segments_limits_to_the_next(api: httpx.Client) -> None:
    html = api.get(f"/indicators/calls/series/{NORTH}").text
    paths = dict(re.findall(r'<path d="([^"]*)" class="(mean)"/>', html)[:1])
    [mean_path] = paths
    levels = re.findall(r"M[\d.]+ ([\d.]+)", mean_path)
    assert len(levels) == 2  # one horizontal run per segment
    assert html.count('class="limit"') == 2
    assert html.count('data-variation="concern_high"') == 2  # the chart point and its row
    assert "concern: outside the process limits" in html


def test_the_history_shows_revisions_and_provisional_flags_as_stored(
        panel: Served, api: httpx.Client) -> None:
    stored = file_values(panel, "calls", "North")
    history = api.get(f"/api/v1/indicators/calls/series/{NORTH}/history").json()["points"]
    revised = data.REVISED[2]
    assert [(p["period"], p["value"]) for p in history] == [
        (p, stored[p][0]) for p in data.PERIODS]
    assert {p["period"]: p["revisions"] for p in history if p["revisions"]} == {revised: 1}
    page = api.get(f"/indicators/calls/series/{NORTH}").text
    assert re.search(rf'<th scope="row">{revised}</th><td class="num">[\d,]+</td><td></td>'
                     r'<td class="num">1</td>', page)


def test_an_indicator_with_one_series_opens_its_chart(api: httpx.Client) -> None:
    response = api.get("/indicators/calls", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == f"/indicators/calls/series/{NORTH}"
    assert api.get(response.headers["location"]).status_code == 200
