"""JSON documents: records found by path, fields by dotted paths, bad records explained."""

from __future__ import annotations

import json
from typing import Any

import pytest

from monitor.errors import PayloadError
from monitor.model import RowProblem, month
from monitor.sources.config import JsonSource
from monitor.sources.json import field_path, parse_json


def config(**overrides: Any) -> JsonSource:
    data = {"name": "api", "kind": "json", "url": "https://kpi.example.org/v1/kpis",
            "records": "data.items", "indicator": "satisfaction",
            "labels": {"force": "area.name"}, "period_column": "period.start",
            "value_column": "measures.0", "denominator_column": "sample"}
    return JsonSource.model_validate(data | overrides)


def document(*items: dict[str, Any]) -> bytes:
    return json.dumps({"meta": {"v": 1}, "data": {"items": list(items)}}).encode()


def item(area: str, start: str, value: Any, sample: Any = 400) -> dict[str, Any]:
    return {"area": {"name": area}, "period": {"start": start}, "measures": [value],
            "sample": sample}


def test_it_reads_nested_records_with_dotted_paths() -> None:
    parsed = parse_json(config(), document(item("Met", "2008-04-01", 77.0),
                                           item("GMP", "2008-04-01", 80, None)), origin="api")
    assert parsed.problems == []
    assert [(dict(o.labels), o.period, o.value, o.denominator) for o in parsed.observations] == [
        ({"force": "Met"}, month("2008-04"), 77.0, 400.0),
        ({"force": "GMP"}, month("2008-04"), 80.0, None)]


@pytest.mark.parametrize(("bad", "problem"), [
    pytest.param(item("Met", "2008-05-01", "high"),
                 RowProblem("api", "data.items[1]", "measures.0", "non_numeric",
                            "'high' is not a number"), id="non-numeric"),
    pytest.param(item("Met", "2008-05-01", True),
                 RowProblem("api", "data.items[1]", "measures.0", "non_numeric",
                            "True is a boolean, not a number"), id="boolean"),
    pytest.param({"area": {"name": "Met"}, "period": {"start": "2008-05-01"}, "measures": []},
                 RowProblem("api", "data.items[1]", "measures.0", "missing_column",
                            "the row has no field 'measures.0'"), id="missing-field"),
    pytest.param(item("Met", "2008-04-01", 70),
                 RowProblem("api", "data.items[1]", "period", "duplicate_period",
                            "the same series and period as row data.items[0] (force=Met, "
                            f"indicator=satisfaction, period={month('2008-04')}); all of them "
                            "are rejected"), id="duplicate"),
])
def test_it_rejects_a_bad_record_by_its_path(bad: dict[str, Any], problem: RowProblem) -> None:
    parsed = parse_json(config(), document(item("Met", "2008-04-01", 77), bad), origin="api")
    assert problem in parsed.problems


@pytest.mark.parametrize(("body", "content_type", "expected"), [
    pytest.param(b"<html><title>Gateway Timeout</title></html>", "text/html",
                 "source 'api': api returned an HTML page ('Gateway Timeout') where JSON was "
                 "expected", id="html-page"),
    pytest.param(document(item("Met", "2008-04-01", 1))[:-7], "application/json",
                 "source 'api': api is not valid JSON at line 1 column", id="truncated"),
    pytest.param(b'{"data": {"rows": []}}', "application/json",
                 "source 'api': api: schema drift: the document has no 'data.items' (records)",
                 id="records-moved"),
    pytest.param(b'{"data": {"items": {"a": 1}}}', "application/json",
                 "source 'api': api: 'data.items' is a dict, not a list of records",
                 id="not-a-list"),
    pytest.param(document({"region": "Met", "period": {"start": "2008-04"}, "measures": [1]}),
                 "application/json", "source 'api': api data.items[0]: schema drift: no field "
                 "'area.name' (labels.force); the record has 'region', 'period', 'measures'",
                 id="field-renamed"),
])
def test_it_refuses_a_payload_that_is_not_the_expected_json(body: bytes, content_type: str,
                                                             expected: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_json(config(), body, origin="api", content_type=content_type)
    assert str(caught.value).startswith(expected)


def test_it_follows_paths_through_objects_and_lists() -> None:
    record = {"a": {"b": [{"c": 5}]}}
    assert field_path("a.b.0.c")(record) == 5
    with pytest.raises(KeyError):
        field_path("a.x")(record)
    with pytest.raises(IndexError):
        field_path("a.b.3")(record)


def test_it_rejects_objects_where_a_label_or_an_indicator_should_be() -> None:
    body = document({"area": {"name": "Met"}, "period": {"start": "2008-04"}, "measures": [1]},
                    {"area": {"name": {"en": "GMP"}}, "period": {"start": "2008-04"},
                     "measures": [2]})
    parsed = parse_json(config(), body, origin="api")
    assert [(p.row, p.field, p.reason) for p in parsed.problems] == [
        ("data.items[1]", "area.name", "missing_label")]
    by_kpi = parse_json(config(indicator=None, indicator_column="area"), body, origin="api")
    assert {p.reason for p in by_kpi.problems} == {"bad_indicator"}
