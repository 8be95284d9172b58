"""Acceptance: every surface says the same thing about every series of both examples.

For each series of the London example and of the bundled MPS example, the scorecard page
(``/scorecard``, and its all-series view), the series page, ``/api/v1/series`` and the
series' detail in the API, ``/metrics`` and ``monitor eval --format json`` (run through
``monitor.cli.main`` on the store the daemon filled, as of the same month) give the same
value, status, SPC variation and comment — each surface compared on what it carries:
``/api/v1/series`` and ``/metrics`` carry the value, the status and (once the engine
publishes it with the snapshot) the SPC variation; ``monitor eval`` prints the
scorecard's rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.model import fingerprint
from tests.http.conftest import Served
from tests.http.dom import parse, series_page

Key = tuple[str, str]  # (indicator, series fingerprint)

# Two real daemons and 1,000 requests: run by `make test`, left out of the year-ahead run
# (`make test-future`), where libfaketime slows every clock read and CI has 15 minutes.
pytestmark = pytest.mark.slow


@dataclass
class Surfaces:
    """What each surface says, per series."""

    snapshot: set[Key]
    listed: dict[Key, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[Key, dict[str, float]] = field(default_factory=dict)
    detail: dict[Key, dict[str, Any]] = field(default_factory=dict)
    page: dict[Key, dict[str, str]] = field(default_factory=dict)
    all_rows: dict[Key, dict[str, str]] = field(default_factory=dict)
    scorecard: dict[Key, dict[str, str]] = field(default_factory=dict)
    evaluated: dict[Key, dict[str, Any]] = field(default_factory=dict)


@pytest.fixture(scope="module", params=["london", "mps"])
def surfaces(request: pytest.FixtureRequest) -> Iterator[Surfaces]:
    served: Served = request.getfixturevalue(request.param)
    snap = served.snapshot()
    out = Surfaces({(ind, fingerprint(labels)) for ind, frame in snap.frames.items()
                    for labels in frame.labels})
    with served.client() as client:
        body = client.get("/api/v1/series", params={"limit": 10_000}).json()
        out.listed = {(s["indicator"], s["fingerprint"]): s for s in body["series"]}
        out.metrics = metrics_by_series(client.get("/metrics").text)

        def fetch(key: Key) -> tuple[dict[str, Any], dict[str, str]]:
            indicator, fp = key
            return (client.get(f"/api/v1/indicators/{indicator}/series/{fp}").json(),
                    series_page(client.get(f"/indicators/{indicator}/series/{fp}").text))

        keys = sorted(out.listed)
        with ThreadPoolExecutor(max_workers=4) as pool:  # the server serves several at once
            for key, (detail, page) in zip(keys, pool.map(fetch, keys), strict=True):
                out.detail[key], out.page[key] = detail, page
        everything = client.get("/scorecard", params={"view": "all",
                                                      "per_indicator": 500}).text
        out.all_rows = {(r["indicator"], r["series"]): r for r in parse(everything).rows}
        reported = client.get("/scorecard").text
        out.scorecard = {(r["indicator"], r["series"]): r for r in parse(reported).rows}
    printed = served.eval_json()
    assert printed["at"] == served.as_of()
    out.evaluated = {(r["indicator"], fingerprint(r["labels"])): r
                     for r in printed["scorecard"]}
    yield out


def metrics_by_series(text: str) -> dict[Key, dict[str, float]]:
    """Return the value and status samples of ``/metrics`` per series."""
    out: dict[Key, dict[str, float]] = {}
    names = {"monitor_indicator_value": "value", "monitor_indicator_status": "status",
             "monitor_indicator_spc_variation": "spc"}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                labels = dict(sample.labels)
                key = (labels.pop("indicator"), fingerprint(labels))
                out.setdefault(key, {})[names[sample.name]] = sample.value
    return out


def test_every_surface_lists_every_series(surfaces: Surfaces) -> None:
    assert set(surfaces.listed) == surfaces.snapshot
    assert set(surfaces.metrics) == surfaces.snapshot
    assert set(surfaces.all_rows) == surfaces.snapshot
    assert set(surfaces.evaluated) == set(surfaces.scorecard)
    assert surfaces.scorecard and set(surfaces.scorecard) <= surfaces.snapshot


def test_every_surface_gives_the_same_value(surfaces: Surfaces) -> None:
    for key, listed in surfaces.listed.items():
        detail = surfaces.detail[key]
        exported = surfaces.metrics[key].get("value")
        assert listed["value"] == detail["value"], key
        if detail["value"] is None:
            assert exported is None, key
        else:
            assert exported == detail["value"], key
        assert surfaces.page[key]["value_text"] == detail["value_text"], key
        assert surfaces.all_rows[key]["value"] == detail["value_text"], key
    for key, printed in surfaces.evaluated.items():
        detail = surfaces.detail[key]
        assert printed["value"] == detail["value"] or (
            printed["value"] is None and detail["value"] is None), key
        assert printed["value_text"] == detail["value_text"], key
        assert surfaces.scorecard[key]["value"] == detail["value_text"], key


def test_every_surface_gives_the_same_status(surfaces: Surfaces) -> None:
    for key, listed in surfaces.listed.items():
        detail = surfaces.detail[key]
        assert listed["status"] == detail["status"], key
        assert surfaces.metrics[key]["status"] == detail["status_code"], key
        assert surfaces.page[key]["status"] == detail["status"], key
        assert surfaces.all_rows[key]["status"] == detail["status"], key
    for key, printed in surfaces.evaluated.items():
        assert printed["status"] == surfaces.detail[key]["status"], key
        assert surfaces.scorecard[key]["status"] == printed["status"], key


def test_every_surface_gives_the_same_spc_variation(surfaces: Surfaces) -> None:
    for key, detail in surfaces.detail.items():
        icon = detail["spc_icon"]
        assert icon == (detail["points"][-1]["variation"] if detail["points"]
                        else "common_cause"), key
        assert surfaces.page[key]["spc"] == icon, key
        assert surfaces.all_rows[key]["spc"] == icon, key
    for key, printed in surfaces.evaluated.items():
        assert printed["spc"] == surfaces.detail[key]["spc_icon"], key
        assert surfaces.scorecard[key]["spc"] == printed["spc"], key
    icons = {d["spc_icon"] for d in surfaces.detail.values()}
    assert icons - {"common_cause"}  # special causes are present in both examples


SPC_CODES = {"common": 0.0, "improvement": 1.0, "concern": -1.0, "neither": 2.0}


def test_the_series_list_and_metrics_give_the_same_spc_variation(surfaces: Surfaces) -> None:
    for key, listed in surfaces.listed.items():
        icon = surfaces.detail[key]["spc_icon"]
        assert listed["spc_icon"] == icon, key
        assert surfaces.metrics[key].get("spc") == SPC_CODES[icon.split("_")[0]], key


def test_every_surface_gives_the_same_comment(surfaces: Surfaces) -> None:
    for key, detail in surfaces.detail.items():
        assert surfaces.page[key]["comment"] == detail["comment"], key
        assert surfaces.all_rows[key]["comment"].strip() == detail["comment"], key
    for key, printed in surfaces.evaluated.items():
        assert printed["comment"] == surfaces.detail[key]["comment"], key
        assert surfaces.scorecard[key]["comment"].strip() == printed["comment"], key
    assert all(surfaces.evaluated[k]["comment"] for k in surfaces.evaluated)


def test_the_values_are_finite_numbers_or_absent(surfaces: Surfaces) -> None:
    for key, detail in surfaces.detail.items():
        assert detail["value"] is None or math.isfinite(detail["value"]), key
