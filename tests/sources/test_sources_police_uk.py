"""data.police.uk: poll only new months, split polygons on 503, stay under the rate limit."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.clock import FixedClock
from monitor.model import month
from monitor.sources.base import SourceDeps
from monitor.sources.config import PoliceUkSource
from monitor.sources.police_uk import (
    count_crimes,
    format_poly,
    parse_poly,
    split_poly,
)
from monitor.sources.poller import Poller
from monitor.store import Store
from tests.sources.sourcekit import Reply, Seen, Site, Sleeps

SQUARE = [(51.50, -0.20), (51.50, -0.10), (51.60, -0.10), (51.60, -0.20)]
CATEGORIES = ("burglary", "robbery", "vehicle-crime")


@dataclass(frozen=True)
class Crime:
    id: int
    month: str
    category: str
    lat: float
    lng: float

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "persistent_id": f"p{self.id}", "month": self.month,
                "category": self.category, "location_type": "Force", "context": "",
                "location": {"latitude": f"{self.lat:.6f}", "longitude": f"{self.lng:.6f}",
                             "street": {"id": 1, "name": "On or near High Street"}},
                "outcome_status": None}


def crimes_for(months: dict[str, int]) -> list[Crime]:
    """A grid of crimes inside SQUARE (some on its middle lines), categories in turn."""
    out: list[Crime] = []
    for month_text, count in months.items():
        for k in range(count):
            lat = 51.50 + 0.1 * ((k % 7) + 0.5) / 7
            lng = -0.15 if k % 5 == 0 else -0.20 + 0.1 * ((k // 7 % 7) + 0.5) / 7
            out.append(Crime(len(out) + 1, month_text, CATEGORIES[k % 3], lat, lng))
    return out


def _on_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> bool:
    cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    return abs(cross) < 1e-12 and min(a[0], b[0]) - 1e-12 <= p[0] <= max(a[0], b[0]) + 1e-12 \
        and min(a[1], b[1]) - 1e-12 <= p[1] <= max(a[1], b[1]) + 1e-12


def inside(point: tuple[float, float], poly: list[tuple[float, float]]) -> bool:
    """Ray casting; points on an edge count as inside (both neighbours return them)."""
    if any(_on_segment(point, poly[i - 1], poly[i]) for i in range(len(poly))):
        return True
    lat, lng = point
    hit = False
    for i in range(len(poly)):
        (la1, ln1), (la2, ln2) = poly[i - 1], poly[i]
        if (ln1 > lng) != (ln2 > lng):
            cross_lat = la1 + (lng - ln1) * (la2 - la1) / (ln2 - ln1)
            if lat < cross_lat:
                hit = not hit
    return hit


class FakePolice:
    """data.police.uk-shaped answers over the loopback site."""

    def __init__(self, site: Site, crimes: list[Crime], latest: str = "2024-01-01",
                 limit: int = 10) -> None:
        self.site = site
        self.crimes = crimes
        self.latest = latest
        self.limit = limit
        self.no_location: list[Crime] = []
        self.neighbourhoods: dict[str, list[tuple[float, float]]] = {}
        self.throttle_next = False
        self.on_request: Callable[[], None] = lambda: None
        site.handle("/api/crime-last-updated", self.last_updated)
        site.handle("/api/crimes-street/all-crime", self.street)
        site.handle("/api/crimes-no-location", self.no_location_crimes)

    def last_updated(self, _seen: Seen) -> Reply:
        self.on_request()
        return self._json({"date": self.latest})

    def street(self, seen: Seen) -> Reply:
        self.on_request()
        if self.throttle_next:
            self.throttle_next = False
            return Reply(429, b"slow down", headers={"Retry-After": "2"})
        poly = parse_poly(seen.query["poly"])
        found = [c.json() for c in self.crimes
                 if c.month == seen.query["date"] and inside((c.lat, c.lng), poly)]
        if len(found) > self.limit:
            return Reply(503, b"")
        return self._json(found)

    def no_location_crimes(self, seen: Seen) -> Reply:
        return self._json([c.json() | {"location": None} for c in self.no_location
                           if c.month == seen.query["date"]])

    def add_force(self, force: str, areas: dict[str, list[tuple[float, float]]]) -> None:
        self.neighbourhoods = areas
        self.site.route(f"/api/{force}/neighbourhoods",
                        self._json([{"id": ident, "name": ident.title()} for ident in areas]))
        for ident, points in areas.items():
            self.site.route(f"/api/{force}/{ident}/boundary", self._json(
                [{"latitude": str(lat), "longitude": str(lng)} for lat, lng in points]))

    @staticmethod
    def _json(document: Any) -> Reply:
        return Reply(body=json.dumps(document).encode(), content_type="application/json")


def police_config(site: Site, **overrides: Any) -> PoliceUkSource:
    data = {"name": "street", "kind": "police_uk", "base_url": site.url("/api"),
            "poly": format_poly(SQUARE), "months": 2, "retries": 2}
    return PoliceUkSource.model_validate(data | overrides)


def counts(store: Store, indicator: str = "street_crime") -> dict[tuple[str, str], float]:
    block = store.observations.read([indicator])[indicator]
    return {(block.labels[int(r)]["category"], f"{p // 12}-{p % 12 + 1:02d}"): float(v)
            for r, p, v in zip(block.row, block.period, block.value, strict=True)}


def expected(crimes: list[Crime]) -> dict[tuple[str, str], float]:
    tally = Counter((c.category, c.month) for c in crimes)
    months = {c.month for c in crimes}
    return {(cat, m): float(tally[(cat, m)]) for cat in CATEGORIES for m in months}


def test_it_counts_a_polygon_exactly_splitting_it_on_503_and_polls_only_new_months(
        store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    crimes = crimes_for({"2023-12": 25, "2024-01": 31})
    police = FakePolice(site, crimes)
    poller = Poller(store, [police_config(site)], clock, registry, deps=deps)

    first = poller.poll("street")
    assert first.outcome == "success", first.error
    assert counts(store) == expected(crimes)
    street_calls = site.hits("/api/crimes-street/all-crime")
    assert street_calls > 2  # both months needed at least one split

    clock.advance(timedelta(days=1))
    assert poller.poll("street").outcome == "unchanged"
    assert site.hits("/api/crimes-street/all-crime") == street_calls

    february = crimes_for({"2024-02": 8})
    police.crimes += [Crime(c.id + 1000, c.month, c.category, c.lat, c.lng) for c in february]
    police.latest = "2024-02-01"
    third = poller.poll("street")
    assert (third.outcome, third.stored.inserted) == ("success", 3)
    dates = {r.query["date"] for r in site.requests[-(site.hits("/api/crimes-street/all-crime")
                                                       - street_calls):]
             if r.path.endswith("all-crime")}
    assert dates == {"2024-02"}
    assert counts(store)[("burglary", "2024-02")] == 3.0


def test_it_counts_a_force_by_its_neighbourhoods_once_per_crime(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    crimes = crimes_for({"2024-01": 14})
    police = FakePolice(site, crimes, limit=100)
    west = [(51.50, -0.20), (51.50, -0.15), (51.60, -0.15), (51.60, -0.20)]
    east = [(51.50, -0.15), (51.50, -0.10), (51.60, -0.10), (51.60, -0.15)]
    police.add_force("metropolitan", {"west": west, "east": east})
    police.no_location = [Crime(900, "2024-01", "robbery", 0, 0)]
    config = police_config(site, poly=None, force="metropolitan", months=1)
    poller = Poller(sqlite_store, [config], clock, registry, deps=deps)
    assert poller.poll("street").outcome == "success"
    on_the_shared_edge = sum(1 for c in crimes if c.lng == -0.15)
    assert on_the_shared_edge > 0
    assert counts(sqlite_store) == expected([*crimes, *police.no_location])
    block = sqlite_store.observations.read(["street_crime"])["street_crime"]
    assert {lab["force"] for lab in block.labels} == {"metropolitan"}


def test_it_maps_categories_to_indicators_and_skips_the_rest() -> None:
    config = PoliceUkSource.model_validate({
        "name": "street", "kind": "police_uk", "force": "metropolitan",
        "indicators": {"burglary": "residential_burglary", "robbery": "robbery"}})
    data = {"months": ["2024-01"], "crimes": [[1, "2024-01", "burglary"],
                                              [2, "2024-01", "shoplifting"],
                                              [3, "2024-01", "robbery"],
                                              [None, "2024-01", "robbery"]]}
    parsed = count_crimes(config, data)
    assert sorted((o.indicator, o.value) for o in parsed.observations) == [
        ("residential_burglary", 1.0), ("robbery", 1.0)]
    assert parsed.skipped == 1
    assert [(p.row, p.field, p.reason) for p in parsed.problems] == [
        ("crimes[3]", "id", "missing_value")]


def test_it_gives_up_when_a_polygon_is_still_too_big_after_max_depth(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    crimes = [Crime(i, "2024-01", "burglary", 51.55, -0.15) for i in range(1, 12)]
    FakePolice(site, crimes)
    poller = Poller(sqlite_store, [police_config(site, months=1, max_depth=3)], clock, registry,
                    deps=deps)
    result = poller.poll("street")
    assert result.outcome == "failed"
    assert result.error == ("source 'street': area 'poly' 2024-01: still 503 after cutting the "
                            "polygon 3 times (over 10,000 crimes, or the API is down); raise "
                            "max_depth or use a smaller area")
    assert sqlite_store.source_state.validators("street").cursor == ""


def test_it_stays_under_the_rate_limit_and_honours_retry_after(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry, sleeps: Sleeps) -> None:
    police = FakePolice(site, crimes_for({"2023-12": 25, "2024-01": 31}))
    police.throttle_next = True
    sent_at: list[float] = []
    police.on_request = lambda: sent_at.append(sleeps.clock)
    poller = Poller(sqlite_store, [police_config(site, rate_limit=4, burst=2)], clock, registry,
                    deps=deps)
    assert poller.poll("street").outcome == "success"
    assert 2.0 in sleeps.waits  # the 429's Retry-After
    # Sleeping is simulated, so a request's time is the sum of the waits before it: no
    # one-second window may hold more than rate + burst requests.
    assert len(sent_at) > 12
    busiest = max(sum(1 for t in sent_at if start <= t < start + 1.0) for start in sent_at)
    assert busiest <= 4 + 2
    assert sent_at[-1] - sent_at[0] >= (len(sent_at) - 2 - 2) / 4 - 1e-9


def _area(points: list[tuple[float, float]]) -> float:
    return abs(sum(a[0] * b[1] - b[0] * a[1]
                   for a, b in zip(points, points[1:] + points[:1], strict=True))) / 2


@pytest.mark.parametrize("poly", [
    pytest.param(SQUARE, id="square"),
    pytest.param([(51.5, -0.2), (51.6, -0.18), (51.52, -0.15), (51.61, -0.1), (51.45, -0.12)],
                 id="concave"),
])
def test_it_splits_a_polygon_into_pieces_covering_the_same_area(
        poly: list[tuple[float, float]]) -> None:
    pieces = split_poly(poly)
    assert len(pieces) == 2
    assert sum(_area(p) for p in pieces) == pytest.approx(_area(poly))


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("51.5,-0.2:51.6,-0.1", "poly needs at least three points", id="two-points"),
    pytest.param("51.5,-0.2:51.6:51.6,-0.1", "poly point 2 ('51.6') is not \"lat,lng\"",
                 id="malformed"),
    pytest.param("151.5,-0.2:51.6,-0.1:51.6,-0.2", "outside latitude/longitude ranges",
                 id="out-of-range"),
])
def test_it_refuses_a_malformed_polygon(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_poly(text)


def test_it_reads_a_saved_crimes_answer_for_a_backfill(tmp_path: Any, sqlite_store: Store,
                                                       clock: FixedClock, deps: SourceDeps,
                                                       registry: CollectorRegistry) -> None:
    saved = tmp_path / "crimes-2024-01.json"
    crimes = crimes_for({"2024-01": 9})
    saved.write_text(json.dumps([c.json() for c in crimes]))
    config = PoliceUkSource.model_validate({"name": "street", "kind": "police_uk",
                                            "force": "metropolitan"})
    poller = Poller(sqlite_store, [config], clock, registry, deps=deps)
    result = poller.ingest_file("street", saved)
    assert (result.outcome, result.stored.inserted) == ("success", 3)
    assert counts(sqlite_store)[("robbery", "2024-01")] == 3.0
    assert month("2024-01") in set(sqlite_store.observations.read()["street_crime"].period)
