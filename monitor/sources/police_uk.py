"""Street-level crime from data.police.uk, counted per month and crime category.

A poll:

1. asks ``/crime-last-updated`` for the newest month published; when it is the month
   the last successful poll fetched, nothing else is requested (the poll is "unchanged");
2. takes the area: the configured polygon, or the neighbourhood boundaries of the
   configured force (``/{force}/neighbourhoods``, ``/{force}/{id}/boundary``);
3. for each new month (at most ``months`` back) and each polygon, fetches
   ``/crimes-street/{category}?poly=…&date=YYYY-MM``; the API answers 503 above 10,000
   crimes, so a polygon that gets a 503 is cut in two across its longer side and each
   half is fetched (up to ``max_depth`` times); crimes are de-duplicated by id, so a
   crime on a cut line or a shared boundary counts once;
4. for a force, adds ``/crimes-no-location`` (crimes the API could not place);
5. stays under ``rate_limit`` requests per second (token bucket, ``burst`` at once) and
   honours 429 ``Retry-After`` through the shared HTTP fetcher.

``parse`` then counts crimes per (category, month) — with a zero for every known category
in every fetched month — as observations of ``indicator`` (or of the indicator each
category maps to through ``indicators``), labelled ``category`` (and ``force``).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from monitor.errors import PayloadError
from monitor.model import Frequency, Observation, RowProblem
from monitor.retry import TokenBucket
from monitor.sources.base import IndicatorId, Parsed, Payload, Source, SourceBase, read_file_payload
from monitor.sources.http import HttpFetcher, HttpOptions
from monitor.sources.json import load_document
from monitor.store.sourcestate import Validators


class PoliceUkSource(SourceBase, HttpOptions):
    """Street-level crime from data.police.uk, counted per month and category."""

    kind: Literal["police_uk"]
    base_url: str = "https://data.police.uk/api"
    force: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,100}$")
    poly: str | None = None
    categories: list[str] = Field(default_factory=lambda: ["all-crime"])
    indicator: IndicatorId = "street_crime"
    indicators: dict[str, IndicatorId] = Field(default_factory=dict)
    unmapped: Literal["skip", "reject"] = "skip"
    months: int = Field(default=12, ge=1, le=60)
    rate_limit: float = Field(default=15.0, gt=0.0, le=100.0)
    burst: int = Field(default=15, ge=1, le=100)
    max_depth: int = Field(default=6, ge=0, le=12)
    include_no_location: bool = True

    @model_validator(mode="after")
    def _area(self) -> PoliceUkSource:
        if (self.force is None) == (self.poly is None):
            raise ValueError("give exactly one of force (e.g. \"metropolitan\") or poly "
                             "(\"lat,lng:lat,lng:…\")")
        if self.poly is not None:
            parse_poly(self.poly)
        if not re.match(r"^https?://", self.base_url):
            raise ValueError(f"base_url {self.base_url!r} must start with http:// or https://")
        return self

Point = tuple[float, float]  # (latitude, longitude)
MONTHLY = Frequency.MONTHLY
_MAX_GET_POLY = 1800  # characters of poly beyond which the query is POSTed
_CATEGORY = re.compile(r"^[a-z0-9-]{1,100}$")


def parse_poly(text: str) -> list[Point]:
    """Return the points of ``"lat,lng:lat,lng:…"``.

    Raises ValueError naming the bad point when the text is not such a polygon of at
    least three points within latitude/longitude ranges.
    """
    points: list[Point] = []
    for number, part in enumerate(text.strip().split(":"), start=1):
        try:
            lat_text, lng_text = part.split(",")
            lat, lng = float(lat_text), float(lng_text)
        except ValueError:
            raise ValueError(f"poly point {number} ({part!r}) is not \"lat,lng\"") from None
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            raise ValueError(f"poly point {number} ({part!r}) is outside latitude/longitude "
                             "ranges")
        points.append((lat, lng))
    if len(points) < 3:
        raise ValueError("poly needs at least three points \"lat,lng:lat,lng:lat,lng\"")
    return points


def format_poly(points: list[Point]) -> str:
    """Return the API's ``poly`` text for ``points``."""
    return ":".join(f"{lat:.6f},{lng:.6f}" for lat, lng in points)


def _clip(points: list[Point], axis: int, cut: float, below: bool) -> list[Point]:
    """Sutherland–Hodgman: the part of the polygon on one side of ``coordinate = cut``."""
    def inside(p: Point) -> bool:
        return p[axis] <= cut if below else p[axis] >= cut

    def crossing(a: Point, b: Point) -> Point:
        t = (cut - a[axis]) / (b[axis] - a[axis])
        lat, lng = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
        return (cut, lng) if axis == 0 else (lat, cut)

    out: list[Point] = []
    for i, current in enumerate(points):
        previous = points[i - 1]
        if inside(current):
            if not inside(previous):
                out.append(crossing(previous, current))
            out.append(current)
        elif inside(previous):
            out.append(crossing(previous, current))
    return out


def split_poly(points: list[Point]) -> list[list[Point]]:
    """Return the polygon cut in two across the middle of its longer side."""
    lats = [p[0] for p in points]
    lngs = [p[1] for p in points]
    axis = 0 if max(lats) - min(lats) >= max(lngs) - min(lngs) else 1
    values = lats if axis == 0 else lngs
    cut = (min(values) + max(values)) / 2
    pieces = [_clip(points, axis, cut, True), _clip(points, axis, cut, False)]
    return [piece for piece in pieces if len(piece) >= 3]


class PoliceUkKind(Source[PoliceUkSource]):
    """``kind = "police_uk"``."""

    kind = "police_uk"
    config_type = PoliceUkSource

    def fetch(self, previous: Validators) -> Payload:
        config = self.config
        previous = previous.for_config(self.digest)
        base = config.base_url.rstrip("/")
        limiter = TokenBucket(config.rate_limit, config.burst, self.deps.monotonic)
        with self.http() as http:
            latest = self._latest(http, limiter, base)
            if previous.cursor == MONTHLY.label(latest):
                return Payload(origin=base, validators=previous, unchanged=True)
            first = latest - config.months + 1
            if previous.cursor:
                first = max(first, MONTHLY.parse(previous.cursor) + 1)
            months = list(range(first, latest + 1))
            areas = self._areas(http, limiter, base)
            crimes: dict[str, list[Any]] = {}
            for month in months:
                label = MONTHLY.label(month)
                for category in config.categories:
                    for name, points in areas:
                        self._street(http, limiter, base, category, label, name, points, 0,
                                     crimes)
                    if config.force and config.include_no_location:
                        limiter.wait(self.deps.sleep)
                        found = self._json_list(http.get(
                            f"{base}/crimes-no-location",
                            params={"category": category, "force": config.force,
                                    "date": label}, accept="application/json"))
                        _add_crimes(crimes, found, label)
        data = {"months": [MONTHLY.label(m) for m in months], "crimes": list(crimes.values()),
                "requests": http.requests}
        return Payload(origin=base, data=data,
                       validators=Validators(cursor=MONTHLY.label(latest),
                                             config_digest=self.digest))

    def _latest(self, http: HttpFetcher, limiter: TokenBucket, base: str) -> int:
        limiter.wait(self.deps.sleep)
        response = http.get(f"{base}/crime-last-updated", accept="application/json")
        document = load_document(self.name, response.url, response.body, response.content_type)
        date_text = document.get("date") if isinstance(document, dict) else None
        try:
            return MONTHLY.parse(str(date_text))
        except ValueError:
            raise PayloadError(f"source {self.name!r}: {response.url} answered {document!r}, "
                               "not {\"date\": \"YYYY-MM-DD\"}") from None

    def _areas(self, http: HttpFetcher, limiter: TokenBucket, base: str
               ) -> list[tuple[str, list[Point]]]:
        config = self.config
        if config.poly is not None:
            return [("poly", parse_poly(config.poly))]
        assert config.force is not None
        limiter.wait(self.deps.sleep)
        listing = self._json_list(http.get(f"{base}/{config.force}/neighbourhoods",
                                           accept="application/json"))
        areas: list[tuple[str, list[Point]]] = []
        for item in listing:
            ident = str(item.get("id", "")) if isinstance(item, dict) else ""
            if not ident:
                raise PayloadError(f"source {self.name!r}: a neighbourhood of force "
                                   f"{config.force!r} has no id: {item!r}")
            limiter.wait(self.deps.sleep)
            boundary = self._json_list(http.get(f"{base}/{config.force}/{ident}/boundary",
                                                accept="application/json"))
            try:
                points = [(float(p["latitude"]), float(p["longitude"])) for p in boundary]
            except (KeyError, TypeError, ValueError):
                raise PayloadError(f"source {self.name!r}: the boundary of neighbourhood "
                                   f"{ident!r} is not a list of latitude/longitude points"
                                   ) from None
            if len(points) >= 3:
                areas.append((ident, points))
        if not areas:
            raise PayloadError(f"source {self.name!r}: force {config.force!r} has no "
                               "neighbourhood boundaries; check the force id "
                               "(see /api/forces)")
        return areas

    def _street(self, http: HttpFetcher, limiter: TokenBucket, base: str, category: str,
                month: str, name: str, points: list[Point], depth: int,
                crimes: dict[str, list[Any]]) -> None:
        url = f"{base}/crimes-street/{category}"
        poly = format_poly(points)
        limiter.wait(self.deps.sleep)
        if len(poly) > _MAX_GET_POLY:
            response = http.post_form(url, {"poly": poly, "date": month},
                                      accept="application/json", expect=(503,))
        else:
            response = http.get(url, params={"poly": poly, "date": month},
                                accept="application/json", expect=(503,))
        if response.status == 503:
            if depth >= self.config.max_depth:
                raise PayloadError(
                    f"source {self.name!r}: area {name!r} {month}: still 503 after cutting "
                    f"the polygon {depth} times (over 10,000 crimes, or the API is down); "
                    "raise max_depth or use a smaller area")
            for piece in split_poly(points):
                self._street(http, limiter, base, category, month, name, piece, depth + 1,
                             crimes)
            return
        _add_crimes(crimes, self._json_list(response), month)

    def _json_list(self, response: Any) -> list[Any]:
        document = load_document(self.name, response.url, response.body, response.content_type)
        if not isinstance(document, list):
            raise PayloadError(f"source {self.name!r}: {response.url} answered a "
                               f"{type(document).__name__}, not a list")
        return document

    def parse(self, payload: Payload) -> Parsed:
        return count_crimes(self.config, payload.data or {})

    def load_file(self, path: Path) -> Payload:
        """Return crimes from a saved ``crimes-street`` answer (a JSON list) for a backfill."""
        raw = read_file_payload(self.name, path)
        document = load_document(self.name, str(path), raw.body, "")
        if isinstance(document, dict) and "crimes" in document:
            return Payload(origin=str(path), data=document)
        if not isinstance(document, list):
            raise PayloadError(f"source {self.name!r}: {path} is not a list of crimes")
        crimes: dict[str, list[Any]] = {}
        _add_crimes(crimes, document, "")
        months = sorted({str(c[1]) for c in crimes.values() if c[1]})
        return Payload(origin=str(path), data={"months": months, "crimes": list(crimes.values())})


def _add_crimes(crimes: dict[str, list[Any]], found: list[Any], month: str) -> None:
    """Add [id, month, category] per crime, keyed by id so a crime counts once."""
    for position, crime in enumerate(found):
        if not isinstance(crime, dict):
            crimes[f"bad:{month}:{position}:{len(crimes)}"] = [None, month, None]
            continue
        ident = crime.get("id") or crime.get("persistent_id")
        key = str(ident) if ident else f"noid:{month}:{position}:{len(crimes)}"
        crimes[key] = [ident, crime.get("month") or month, crime.get("category")]


def count_crimes(config: PoliceUkSource, data: dict[str, Any]) -> Parsed:
    """Return monthly counts per category from fetched crimes, and the crimes rejected.

    Pure. Every known category (seen in any fetched month, or configured) gets a count in
    every fetched month, zero included.
    """
    source = config.name
    problems: list[RowProblem] = []
    counts: Counter[tuple[str, int]] = Counter()
    months: set[int] = set()
    for text in data.get("months", []):
        try:
            months.add(MONTHLY.parse(str(text)))
        except ValueError:
            raise PayloadError(f"source {source!r}: {text!r} is not a month") from None
    rows = 0
    for position, item in enumerate(data.get("crimes", [])):
        rows += 1
        where = f"crimes[{position}]"
        ident, month_text, category = [*list(item), None, None, None][:3]
        if ident in (None, ""):
            problems.append(RowProblem(source, where, "id", "missing_value",
                                       "the crime has no id, so it cannot be de-duplicated"))
            continue
        if not isinstance(category, str) or not _CATEGORY.match(category):
            problems.append(RowProblem(source, where, "category", "missing_label",
                                       f"{category!r} is not a crime category"))
            continue
        try:
            month = MONTHLY.parse(str(month_text))
        except ValueError:
            problems.append(RowProblem(source, where, "month", "bad_period",
                                       f"{month_text!r} is not a month (YYYY-MM)"))
            continue
        months.add(month)
        counts[(category, month)] += 1
    categories = {c for c, _m in counts} | {c for c in config.categories if c != "all-crime"}
    static = dict(config.static_labels)
    if config.force:
        static["force"] = config.force
    observations: list[Observation] = []
    skipped = 0
    for category in sorted(categories):
        indicator = config.indicators.get(category) if config.indicators else config.indicator
        if indicator is None:
            if config.unmapped == "reject":
                problems.append(RowProblem(source, f"category {category}", "category",
                                           "unmapped", f"{category!r} is not in indicators"))
            skipped += sum(counts[(category, m)] for m in months)
            continue
        labels = tuple(sorted((static | {"category": category}).items()))
        observations += [Observation(indicator, labels, month, float(counts[(category, month)]))
                         for month in sorted(months)]
    return Parsed(observations, problems, rows=rows, skipped=skipped)

