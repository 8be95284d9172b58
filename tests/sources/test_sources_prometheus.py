"""Prometheus sources against a loopback server speaking the Prometheus HTTP API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.clock import FixedClock
from monitor.errors import PayloadError
from monitor.model import RowProblem, month
from monitor.sources.base import SourceDeps
from monitor.sources.config import PrometheusSource
from monitor.sources.poller import Poller
from monitor.sources.prometheus import parse_prometheus
from monitor.store import Store
from tests.sources.sourcekit import Reply, Site


def ts(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()


def config(url: str = "http://127.0.0.1:9090", **overrides: Any) -> PrometheusSource:
    data = {"name": "ops", "kind": "prometheus", "url": url, "query": "sum by (team) (tickets)",
            "mode": "range", "lookback": "62d", "step": "1d", "aggregate": "last",
            "indicator": "open_tickets", "labels": {"team": "team"}}
    return PrometheusSource.model_validate(data | overrides)


def answer(kind: str, result: list[dict[str, Any]]) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": kind,
                                                     "result": result}}).encode()


def test_it_polls_a_range_query_into_one_value_per_month(sqlite_store: Store, site: Site,
                                                         clock: FixedClock,
                                                         deps: SourceDeps) -> None:
    site.route("/api/v1/query_range", Reply(body=answer("matrix", [
        {"metric": {"team": "crime"}, "values": [[ts("2024-01-30"), "4"], [ts("2024-01-31"), "5"],
                                                 [ts("2024-02-01"), "7"]]},
        {"metric": {"team": "traffic"}, "values": [[ts("2024-01-31"), "NaN"]]},
    ]), content_type="application/json"))
    poller = Poller(sqlite_store, [config(site.url(""))], clock, CollectorRegistry(), deps=deps)
    result = poller.poll("ops")
    assert (result.outcome, result.stored.inserted, result.rejected) == ("partial", 2, 1)
    query = site.requests[0].query
    assert query["query"] == "sum by (team) (tickets)"
    assert (float(query["end"]) - float(query["start"]), query["step"]) == (62 * 86400, "86400")
    history = sqlite_store.observations.history("open_tickets", {"team": "crime"})
    assert [(p.period, p.value) for p in history] == [(month("2024-01"), 5.0),
                                                      (month("2024-02"), 7.0)]


@pytest.mark.parametrize(("aggregate", "expected"), [
    pytest.param("last", 5.0, id="last"), pytest.param("sum", 9.0, id="sum"),
    pytest.param("mean", 4.5, id="mean"), pytest.param("max", 5.0, id="max"),
    pytest.param("min", 4.0, id="min"),
])
def test_it_combines_the_samples_of_a_period(aggregate: str, expected: float) -> None:
    body = answer("matrix", [{"metric": {"team": "crime"},
                              "values": [[ts("2024-01-30"), "4"], [ts("2024-01-31"), "5"]]}])
    parsed = parse_prometheus(config(aggregate=aggregate), body, origin="prom")
    assert [o.value for o in parsed.observations] == [expected]


def test_it_reads_an_instant_vector_and_names_indicators_by_a_label() -> None:
    body = answer("vector", [
        {"metric": {"__name__": "tickets_open", "team": "crime"}, "value": [ts("2024-02-01"), "3"]},
        {"metric": {"__name__": "tickets_late", "team": "crime"}, "value": [ts("2024-02-01"), "1"]},
        {"metric": {"__name__": "tickets_open"}, "value": [ts("2024-02-01"), "2"]},
    ])
    cfg = config(mode="instant", indicator=None, indicator_label="__name__")
    parsed = parse_prometheus(cfg, body, origin="prom")
    assert sorted((o.indicator, o.value) for o in parsed.observations) == [
        ("tickets_late", 1.0), ("tickets_open", 3.0)]
    assert parsed.problems == [RowProblem("ops", "result[2]", "team", "missing_label",
                                          "the series has no label 'team' (labels.team)")]


@pytest.mark.parametrize(("body", "expected"), [
    pytest.param(json.dumps({"status": "error", "errorType": "bad_data",
                             "error": "parse error at char 5"}).encode(),
                 "source 'ops': Prometheus refused the query: bad_data: parse error at char 5",
                 id="query-error"),
    pytest.param(b'{"hello": "world"}', "source 'ops': prom did not answer like a Prometheus API",
                 id="not-prometheus"),
    pytest.param(answer("string", []), "source 'ops': unexpected Prometheus result type 'string'",
                 id="string-result"),
])
def test_it_refuses_answers_that_are_not_usable(body: bytes, expected: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_prometheus(config(), body, origin="prom")
    assert str(caught.value).startswith(expected)
