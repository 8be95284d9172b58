"""Every source parser on generated payloads: never a traceback. A payload is either
parsed — each rejected row with its reason and message, every value finite — or refused
as a whole with a PayloadError that says what is wrong."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from monitor.errors import SourceError
from monitor.sources.base import Parsed, Payload, Source, SourceDeps
from monitor.sources.config import SourceConfig
from monitor.sources.police_uk import parse_poly
from monitor.sources.registry import build
from monitor.sources.sql import parse_rows
from tests.property.strategies import ODD_TEXT, SCALAR, TEXT, json_values, keys_of
from tests.property.tally import SETTINGS, scaled, tally

CONFIGS: dict[str, dict[str, Any]] = {
    "csv long": {"name": "scorecard", "kind": "csv", "path": "x.csv",
                 "indicator_column": "indicator", "labels": {"force": "force"},
                 "denominator_column": "denominator", "provisional_column": "provisional",
                 "null_values": ["..", "n/a"], "thousands_separator": ","},
    "csv wide": {"name": "boroughs", "kind": "csv", "path": "x.csv", "layout": "wide",
                 "indicator_column": "Minor Category", "unmapped": "skip",
                 "indicators": {"Burglary in a Dwelling": "residential_burglary"},
                 "labels": {"borough": "Borough"}},
    "json": {"name": "satisfaction", "kind": "json", "url": "https://example.org/api",
             "records": "data.items", "indicator": "victim_satisfaction",
             "labels": {"force": "area.name"}, "period_column": "period.start",
             "value_column": "measures.satisfied",
             "denominator_column": "measures.respondents"},
    "milestones (auto)": {"name": "plan", "kind": "milestones", "path": "plan.yaml"},
    "milestones (csv)": {"name": "plan", "kind": "milestones", "path": "plan.csv",
                         "format": "csv"},
    "prometheus (range)": {"name": "calls", "kind": "prometheus", "url": "http://prom:9090",
                           "query": "up", "mode": "range", "aggregate": "mean",
                           "indicator": "calls", "labels": {"centre": "centre"}},
    "prometheus (instant, by label)": {"name": "calls", "kind": "prometheus",
                                       "url": "http://prom:9090", "query": "up",
                                       "indicator_label": "kpi", "unmapped": "skip"},
}
ADAPTER: TypeAdapter[Any] = TypeAdapter(SourceConfig)


def source(kind: str) -> Source[Any]:
    return build(ADAPTER.validate_python(CONFIGS[kind]), SourceDeps())


SOURCES = {kind: source(kind) for kind in CONFIGS}


def check(parsed_or_error: Parsed | SourceError) -> None:
    """The invariants every parser keeps."""
    if isinstance(parsed_or_error, SourceError):
        assert str(parsed_or_error).strip()
        return
    parsed = parsed_or_error
    assert parsed.rows >= 0 and parsed.skipped >= 0
    for problem in parsed.problems:
        assert problem.reason and problem.message.strip(), problem
    for observation in parsed.observations:
        assert math.isfinite(observation.value), observation
        assert observation.denominator is None or math.isfinite(observation.denominator)


def parse(kind: str, body: bytes, content_type: str = "") -> None:
    tally(f"source parser {kind}")
    try:
        result: Parsed | SourceError = SOURCES[kind].parse(
            Payload(origin="generated", body=body, content_type=content_type))
    except SourceError as exc:
        result = exc
    check(result)


# --- any bytes, for every parser ------------------------------------------------------------


@SETTINGS
@given(st.sampled_from(sorted(CONFIGS)), st.binary(max_size=600),
       st.sampled_from(["", "text/csv", "application/json", "text/html", "application/yaml"]))
def test_every_parser_takes_any_bytes(kind: str, body: bytes, content_type: str) -> None:
    parse(kind, body, content_type)


# --- CSV: real headers, hostile cells ---------------------------------------------------------

CELL = st.one_of(ODD_TEXT, st.integers(-10**9, 10**12).map(str),
                 st.floats(allow_nan=True).map(str), st.sampled_from(
                     ["2008-07", "200807", "Jul-08", "2008-7", "true", "false", "p", "1,234",
                      "Metropolitan Police Service", "robbery", "=cmd|' /C calc'!A0"]))
LONG_HEADER = ["indicator", "force", "period", "value", "denominator", "provisional"]


def csv_text(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8", errors="surrogatepass")


@st.composite
def long_tables(draw: st.DrawFn) -> list[list[str]]:
    """The real header (or a shuffled, partial one) and rows of hostile cells, some ragged."""
    header = draw(st.one_of(st.just(LONG_HEADER),
                            st.lists(st.sampled_from(LONG_HEADER), max_size=7)))
    rows = draw(st.lists(st.lists(CELL, min_size=len(header), max_size=len(header) + 1),
                         max_size=12))
    return [header, *rows]


@SETTINGS
@given(long_tables())
def test_the_long_csv_parser_takes_any_cells(table: list[list[str]]) -> None:
    parse("csv long", csv_text(table), "text/csv")


@SETTINGS
@given(st.lists(st.one_of(st.sampled_from(["200801", "200802", "200813", "2008-01", "total"]),
                          TEXT), max_size=6),
       st.lists(st.lists(CELL, max_size=9), max_size=10))
def test_the_wide_csv_parser_takes_any_cells(periods: list[str], rows: list[list[str]]) -> None:
    header = ["Borough", "Major Category", "Minor Category", *periods]
    parse("csv wide", csv_text([header, *rows]), "text/csv")


# --- JSON-shaped payloads -------------------------------------------------------------------

JSON_KEYS = keys_of(["data", "items", "area", "name", "period", "start", "measures",
                     "satisfied", "respondents", "status", "result", "resultType", "metric",
                     "values", "value", "matrix", "vector", "success", "error", "errorType",
                     "centre", "kpi", "milestones", "id", "title", "owner", "due",
                     "completed"])


@SETTINGS
@given(st.sampled_from(["json", "prometheus (range)", "prometheus (instant, by label)",
                        "milestones (auto)"]), json_values(JSON_KEYS, max_leaves=40))
def test_json_parsers_take_any_document_with_real_keys(kind: str, document: Any) -> None:
    parse(kind, json.dumps(document).encode(), "application/json")


RECORD = st.fixed_dictionaries({}, optional={
    "area": st.one_of(SCALAR, st.fixed_dictionaries({}, optional={"name": SCALAR})),
    "period": st.one_of(SCALAR, st.fixed_dictionaries({}, optional={"start": SCALAR})),
    "measures": st.one_of(SCALAR, st.fixed_dictionaries(
        {}, optional={"satisfied": SCALAR, "respondents": SCALAR}))})


@SETTINGS
@given(st.lists(RECORD, max_size=10))
def test_the_json_parser_takes_any_records(records: list[dict[str, Any]]) -> None:
    parse("json", json.dumps({"data": {"items": records}}).encode(), "application/json")


SAMPLE = st.tuples(st.one_of(st.floats(allow_nan=True), st.integers(), TEXT),
                   st.one_of(TEXT, st.floats(allow_nan=True).map(str)))


@SETTINGS
@given(st.sampled_from(["matrix", "vector", "scalar", "string", "other"]),
       st.lists(st.fixed_dictionaries(
           {"metric": st.dictionaries(st.sampled_from(["centre", "kpi", "__name__", "x"]),
                                      TEXT, max_size=3)},
           optional={"values": st.lists(SAMPLE, max_size=5), "value": SAMPLE}), max_size=5))
def test_the_prometheus_parser_takes_any_result(result_type: str, result: list[Any]) -> None:
    body = {"status": "success", "data": {"resultType": result_type, "result": result}}
    for kind in ("prometheus (range)", "prometheus (instant, by label)"):
        parse(kind, json.dumps(body).encode(), "application/json")


MILESTONE = st.fixed_dictionaries({}, optional={
    "id": SCALAR, "title": SCALAR, "owner": SCALAR,
    "due": st.one_of(SCALAR, st.dates().map(str)), "status": st.one_of(
        SCALAR, st.sampled_from(["done", "in_progress", "not_started", "Done", "late"])),
    "completed": st.one_of(SCALAR, st.dates().map(str)), "labels": json_values(max_leaves=4)})


@SETTINGS
@given(st.lists(MILESTONE, max_size=8), st.sampled_from(["yaml", "json", "csv"]))
def test_the_milestone_parser_takes_any_plan(milestones: list[dict[str, Any]], form: str
                                             ) -> None:
    if form == "yaml":
        parse("milestones (auto)", yaml.safe_dump({"milestones": milestones}).encode(),
              "application/yaml")
    elif form == "json":
        parse("milestones (auto)", json.dumps({"milestones": milestones}).encode(),
              "application/json")
    else:
        header = ["id", "title", "owner", "due", "status", "completed"]
        rows = [[str(m.get(k, "")) for k in header] for m in milestones]
        parse("milestones (csv)", csv_text([header, *rows]), "text/csv")


# --- SQL rows and data.police.uk crimes: structured payloads ----------------------------------

SQL = ADAPTER.validate_python({
    "name": "warehouse", "kind": "sql", "url": "sqlite://", "query": "SELECT 1",
    "indicator_column": "offence_group", "labels": {"borough": "borough"},
    "period_column": "month_start", "value_column": "detections",
    "denominator_column": "offences"})
SQL_VALUE = st.one_of(SCALAR, st.dates(), st.datetimes(), st.decimals(allow_nan=True),
                      st.binary(max_size=8))


@SETTINGS
@given(st.lists(st.sampled_from(["offence_group", "borough", "month_start", "detections",
                                 "offences", "other"]), max_size=6),
       st.lists(st.lists(SQL_VALUE, max_size=7).map(tuple), max_size=8))
def test_the_sql_row_parser_takes_any_result(columns: list[str], rows: list[tuple[Any, ...]]
                                             ) -> None:
    tally("source parser sql rows")
    try:
        result: Parsed | SourceError = parse_rows(SQL, columns, rows, origin="generated")
    except SourceError as exc:
        result = exc
    check(result)


POLICE = build(ADAPTER.validate_python({"name": "met", "kind": "police_uk",
                                        "force": "metropolitan", "categories": ["burglary"],
                                        "indicators": {"burglary": "residential_burglary"}}))
CRIME = st.fixed_dictionaries({}, optional={
    "id": st.one_of(SCALAR, st.integers(1, 10**9)), "persistent_id": SCALAR,
    "month": st.one_of(SCALAR, st.sampled_from(["2024-01", "2024-13", "24-01"])),
    "category": st.one_of(SCALAR, st.sampled_from(["burglary", "robbery", "Bad Category!"])),
    "location": json_values(max_leaves=4)})


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="monitor-property-") as name:
        yield Path(name)


@scaled(0.5)
@given(st.one_of(st.lists(CRIME, max_size=10), json_values(max_leaves=20)))
def test_the_police_uk_parser_takes_any_saved_answer(folder: Path, document: Any) -> None:
    tally("source parser police_uk (saved answer)")
    path = folder / "crimes.json"
    path.write_text(json.dumps(document))
    try:
        result: Parsed | SourceError = POLICE.parse(POLICE.load_file(path))
    except SourceError as exc:
        result = exc
    check(result)


@SETTINGS
@given(st.one_of(st.text(max_size=80), st.lists(st.tuples(
    st.floats(allow_nan=True), st.floats(allow_nan=True)), max_size=6).map(
        lambda pts: ":".join(f"{a},{b}" for a, b in pts))))
def test_the_police_uk_polygon_parser_takes_any_text(text: str) -> None:
    tally("source parser police_uk poly")
    try:
        points = parse_poly(text)
    except ValueError as exc:
        assert str(exc).strip()
        return
    assert all(math.isfinite(lat) and math.isfinite(lng) for lat, lng in points)
