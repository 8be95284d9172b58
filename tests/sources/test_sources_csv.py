"""CSV parsing: long and wide tables, every bad row explained, payload faults refused."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.errors import PayloadError
from monitor.model import RowProblem, month
from monitor.sources.config import CsvSource
from monitor.sources.csv import parse_csv
from tests.sources.sourcekit import EXAMPLE_DATA, LONDON_2008

HEADER = "indicator,force,period,value\n"


def long_config(**overrides: Any) -> CsvSource:
    data = {"name": "kpis", "kind": "csv", "path": "kpis.csv", "indicator_column": "indicator",
            "labels": {"force": "force"}}
    return CsvSource.model_validate(data | overrides)


def london_config(**overrides: Any) -> CsvSource:
    data = {"name": "london", "kind": "csv", "path": str(LONDON_2008), "layout": "wide",
            "indicator": "recorded_crime",
            "labels": {"borough": "Borough", "major": "Major Category",
                       "minor": "Minor Category"}}
    return CsvSource.model_validate(data | overrides)


def test_it_reads_a_long_table_into_observations() -> None:
    body = (HEADER + "robbery,Met,2008-04,912\nrobbery,Met,2008-05,870\n").encode()
    parsed = parse_csv(long_config(), body, origin="kpis.csv")
    assert parsed.problems == []
    assert [(o.indicator, dict(o.labels), o.period, o.value) for o in parsed.observations] == [
        ("robbery", {"force": "Met"}, month("2008-04"), 912.0),
        ("robbery", {"force": "Met"}, month("2008-05"), 870.0),
    ]


@pytest.mark.parametrize(("row", "field", "reason", "message"), [
    pytest.param("robbery,Met,2008-04,n/a", "value", "non_numeric", "'n/a' is not a number",
                 id="non-numeric"),
    pytest.param("robbery,Met,2008-04,-3", "value", "negative",
                 "-3 is negative; counts cannot be (set allow_negative = true for values that "
                 "can)", id="negative-count"),
    pytest.param("robbery,Met,2008-04,nan", "value", "non_numeric", "nan is not a finite number",
                 id="not-finite"),
    pytest.param("robbery,Met,2008-04", "value", "missing_column",
                 "the row has 3 fields, the header 4: no value for 'value'", id="missing-column"),
    pytest.param("robbery,Met,2008-04,1,2", "field 5", "extra_fields",
                 "the row has 5 fields, the header 4; a value probably contains an unquoted "
                 "delimiter", id="extra-field"),
    pytest.param("robbery,Met,2008-13,5", "period", "bad_period",
                 "'2008-13' is not a period: '2008-13' is not a monthly period; write it like "
                 "2008-07", id="bad-period"),
    pytest.param("robbery,,2008-04,5", "force", "missing_label",
                 "empty value for label 'force'", id="empty-label"),
    pytest.param("robbery,Met,2008-04,", "value", "missing_value",
                 "empty value; add \"\" to null_values if empty means no data", id="empty-value"),
    pytest.param("rob bery,Met,2008-04,5", "indicator", "bad_indicator",
                 "'rob bery' is not an indicator id (letters, digits, _ . : -)",
                 id="bad-indicator"),
])
def test_it_rejects_a_bad_row_naming_source_line_and_field(row: str, field: str, reason: str,
                                                           message: str) -> None:
    body = (HEADER + "robbery,Met,2008-03,1\n" + row + "\n").encode()
    parsed = parse_csv(long_config(), body, origin="kpis.csv")
    assert parsed.problems == [RowProblem("kpis", 3, field, reason, message)]
    assert [o.period for o in parsed.observations] == [month("2008-03")]
    assert parsed.rows == 2


def test_it_rejects_both_rows_of_a_duplicate_period() -> None:
    body = (HEADER + "robbery,Met,2008-04,5\nrobbery,Met,2008-05,6\n"
            "robbery,Met,2008-04,7\n").encode()
    parsed = parse_csv(long_config(), body, origin="kpis.csv")
    assert [o.value for o in parsed.observations] == [6.0]
    assert [(p.row, p.reason) for p in parsed.problems] == [(2, "duplicate_period"),
                                                            (4, "duplicate_period")]
    assert str(parsed.problems[0]) == (
        "source 'kpis' row 2: period: the same series and period as row 4 (force=Met, "
        f"indicator=robbery, period={month('2008-04')}); all of them are rejected")


def test_it_adds_up_rows_of_one_series_and_period_when_told_to() -> None:
    # Two categories mapped to one indicator: vehicle crime = theft of + theft from.
    body = (HEADER + "Theft of MV,Met,2008-04,5\nTheft from MV,Met,2008-04,7\n"
            "Theft of MV,Met,2008-05,1\n").encode()
    table = {"Theft of MV": "vehicle_crime", "Theft from MV": "vehicle_crime"}
    parsed = parse_csv(long_config(indicators=table, duplicates="sum"), body, origin="x")
    assert parsed.problems == []
    assert [(o.period, o.value) for o in parsed.observations] == [
        (month("2008-04"), 12.0), (month("2008-05"), 1.0)]


def test_it_maps_indicator_names_through_the_table_and_skips_or_rejects_the_rest() -> None:
    body = (HEADER + "Burglary in a Dwelling,Met,2008-04,5\nShoplifting,Met,2008-04,9\n").encode()
    table = {"Burglary in a Dwelling": "residential_burglary"}
    skipped = parse_csv(long_config(indicators=table, unmapped="skip"), body, origin="x")
    assert [o.indicator for o in skipped.observations] == ["residential_burglary"]
    assert (skipped.skipped, skipped.problems) == (1, [])
    rejected = parse_csv(long_config(indicators=table), body, origin="x")
    assert [(p.row, p.field, p.reason) for p in rejected.problems] == [
        (3, "indicator", "unmapped")]


def test_it_reads_denominators_flags_and_null_markers() -> None:
    body = (b"indicator,force,period,value,denominator,provisional\n"
            b"confidence,Met,2008-04,44,90,false\n"
            b"ksi,Met,2008-04,70,,true\n"
            b"ksi,Met,2008-05,..,,true\n")
    config = long_config(denominator_column="denominator", provisional_column="provisional",
                         null_values=[".."])
    parsed = parse_csv(config, body, origin="x")
    assert parsed.problems == []
    assert [(o.indicator, o.value, o.denominator, o.provisional)
            for o in parsed.observations] == [("confidence", 44.0, 90.0, False),
                                              ("ksi", 70.0, None, True)]
    assert parsed.skipped == 1


def test_it_reads_the_wide_london_file_into_one_observation_per_borough_category_month() -> None:
    parsed = parse_csv(london_config(), LONDON_2008.read_bytes(), origin="london.csv")
    assert parsed.problems == []
    assert parsed.rows == 1056
    assert len(parsed.observations) == 1056 * 108
    keys = {(o.labels, o.period) for o in parsed.observations}
    assert len(keys) == 1056 * 108
    first = parsed.observations[0]
    assert dict(first.labels) == {"borough": "Barking and Dagenham", "major": "Burglary",
                                  "minor": "Burglary in a Dwelling"}
    assert (first.period, first.value) == (month("2008-01"), 82.0)


def test_it_rejects_one_bad_cell_of_a_wide_row_and_keeps_the_others() -> None:
    lines = LONDON_2008.read_text().splitlines()
    cells = lines[1].split(",")
    cells[3] = "x"
    body = "\n".join([lines[0], ",".join(cells), *lines[2:4]]).encode() + b"\n"
    parsed = parse_csv(london_config(), body, origin="london.csv")
    assert parsed.problems == [RowProblem("london", 2, "200801", "non_numeric",
                                          "'x' is not a number")]
    assert len(parsed.observations) == 3 * 108 - 1


def test_it_fails_the_payload_when_the_header_drifts() -> None:
    body = LONDON_2008.read_bytes().replace(b"Borough,", b"LookUp_BoroughName,", 1)
    with pytest.raises(PayloadError) as caught:
        parse_csv(london_config(), body, origin="london.csv")
    assert str(caught.value).startswith(
        "source 'london' london.csv header (line 1): schema drift: column 'Borough' "
        "(labels.borough) is missing; the header has 'LookUp_BoroughName', 'Major Category', "
        "'Minor Category', '200801'")
    assert str(caught.value).endswith("If the publisher renamed a column, update the mapping; "
                                      "the previous data is kept")


def test_it_fails_the_payload_when_the_body_is_truncated_mid_row() -> None:
    body = LONDON_2008.read_bytes()
    cut = body.index(b"\n", 5000) + 40
    with pytest.raises(PayloadError, match=r"^source 'london': london.csv line \d+: the body "
                                           r"ends in the middle of a row \(\d+ of 111 fields, "
                                           r"no line end\): truncated"):
        parse_csv(london_config(), body[:cut], origin="london.csv")


@pytest.mark.parametrize(("body", "content_type", "expected"), [
    pytest.param(b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head></html>",
                 "text/html", "returned an HTML page ('502 Bad Gateway') where CSV was expected",
                 id="html-error-page"),
    pytest.param(b"", "text/csv", "is empty; expected a header on line 1", id="empty"),
    pytest.param(b"indicator,force,period,value\n\"robbery,Met", "text/csv",
                 "not valid CSV", id="open-quote"),
    pytest.param(b"indicator,force,period,value\n\xff\xfe", "text/csv",
                 "is not utf-8-sig text (byte 29)", id="not-utf8"),
])
def test_it_refuses_a_payload_that_is_not_a_csv_table(body: bytes, content_type: str,
                                                      expected: str) -> None:
    with pytest.raises(PayloadError, match=r"^source 'kpis'") as caught:
        parse_csv(long_config(), body, origin="kpis.csv", content_type=content_type)
    assert expected in str(caught.value)


def test_it_reads_the_example_indicators_file() -> None:
    config = long_config(path=str(EXAMPLE_DATA / "indicators.csv"),
                         denominator_column="denominator", provisional_column="provisional")
    parsed = parse_csv(config, (EXAMPLE_DATA / "indicators.csv").read_bytes(), origin="x")
    assert parsed.problems == []
    assert len(parsed.observations) == parsed.rows == 3576
    assert {o.indicator for o in parsed.observations} >= {"robbery", "ksi", "confidence"}
    assert any(o.provisional for o in parsed.observations)
    assert any(o.denominator for o in parsed.observations)


@pytest.mark.parametrize("overrides", [
    pytest.param({}, id="london-2008"),
    pytest.param({"indicator": None, "indicator_column": "Minor Category", "unmapped": "skip",
                  "indicators": {"Burglary in a Dwelling": "burglary",
                                 "Burglary in Other Buildings": "burglary"},
                  "labels": {"borough": "Borough"}, "duplicates": "sum"},
                 id="categories-summed-into-one-indicator"),
    pytest.param({"indicator": None, "indicator_column": "Minor Category", "unmapped": "skip",
                  "indicators": {"Burglary in a Dwelling": "residential_burglary"},
                  "labels": {"borough": "Borough"}}, id="unmapped-rows-skipped"),
])
def test_it_reads_a_clean_wide_table_into_columns_exactly_as_row_by_row(
        overrides: dict[str, Any]) -> None:
    config = london_config(**overrides)
    body = LONDON_2008.read_bytes()
    columnar = parse_csv(config, body, origin="london.csv")
    rows = parse_csv(config, body, origin="london.csv", columnar=False)
    assert columnar.observations == rows.observations
    assert (columnar.rows, columnar.skipped, columnar.problems) == \
        (rows.rows, rows.skipped, rows.problems)
    assert columnar.count() > 0
    assert len({(o.indicator, o.labels, o.period) for o in columnar.observations}) == \
        columnar.count()


def test_it_reads_provisional_flags_of_a_wide_table_into_columns() -> None:
    body = b"area,status,202001,202002\nnorth,provisional,1,2\nsouth,final,3,4.5\n"
    config = CsvSource.model_validate({
        "name": "w", "kind": "csv", "path": "w.csv", "layout": "wide", "indicator": "x",
        "labels": {"area": "area"}, "provisional_column": "status"})
    columnar = parse_csv(config, body, origin="w.csv")
    assert columnar.observations == parse_csv(config, body, origin="w.csv",
                                              columnar=False).observations
    assert [(dict(o.labels)["area"], o.value, o.provisional) for o in columnar.observations] \
        == [("north", 1.0, True), ("north", 2.0, True), ("south", 3.0, False),
            ("south", 4.5, False)]


@pytest.mark.parametrize(("cell", "reason"), [
    pytest.param("", "missing_value", id="empty"),
    pytest.param("-1", "negative", id="negative"),
    pytest.param("inf", "non_numeric", id="infinite"),
    pytest.param("1,234", "extra_fields", id="unquoted-delimiter"),
])
def test_it_words_a_bad_cell_of_a_wide_table_as_the_row_reader_does(cell: str,
                                                                     reason: str) -> None:
    body = f"area,202001,202002\nnorth,1,2\nsouth,3,{cell}\n".encode()
    config = CsvSource.model_validate({
        "name": "w", "kind": "csv", "path": "w.csv", "layout": "wide", "indicator": "x",
        "labels": {"area": "area"}})
    parsed = parse_csv(config, body, origin="w.csv")
    assert parsed == parse_csv(config, body, origin="w.csv", columnar=False)
    assert [(p.row, p.reason) for p in parsed.problems] == [(3, reason)]
