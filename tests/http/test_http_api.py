"""The JSON API over a real uvicorn server: data, filters, auth, errors, OpenAPI."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import httpx
import pytest

from monitor.model import fingerprint
from tests.http.conftest import Served
from tests.http.fakes import TOKEN, LondonObserved

LONDON_FP = fingerprint({"borough": "London"})


def test_it_lists_indicators_in_scorecard_order_with_status_counts(
        api: httpx.Client, served: Served) -> None:
    body = api.get("/api/v1/indicators").json()
    frames = served.observed.frames
    assert [i["id"] for i in body["indicators"]] == list(frames)
    sac = body["indicators"][0]
    assert sac["reference"] == "SPI 5.2"
    assert sac["group"] == "Tackle serious acquisitive crime"
    assert sac["series_count"] == 33
    assert sum(sac["status_counts"].values()) == 33
    assert body["at"] == "2010-01-05T06:00:00Z"


def test_it_gives_each_series_latest_value_target_and_status(
        api: httpx.Client, served: Served) -> None:
    body = api.get("/api/v1/indicators/residential_burglary",
                   params={"match": 'borough="London"'}).json()
    assert body["total"] == 1
    [series] = body["series"]
    frame = served.observed.frames["residential_burglary"]
    assert series == {
        "indicator": "residential_burglary", "labels": {"borough": "London"},
        "fingerprint": LONDON_FP, "period": "2009-12",
        "value": pytest.approx(float(frame.value[0])), "target": -4.0, "status": "red",
        "status_code": 3,
        "changes": {"12m": pytest.approx(float(frame.changes["12m"][0])),
                    "1m_yoy": pytest.approx(float(frame.changes["1m_yoy"][0]))},
        "provisional": True}
    assert series["value"] == pytest.approx(6.04, abs=0.01)  # London, RY to Dec-09


@pytest.mark.parametrize(("params", "expected"), [
    pytest.param({}, 231, id="everything"),
    pytest.param({"indicator": "robbery"}, 33, id="one-indicator"),
    pytest.param({"indicator": ["robbery", "vehicle_crime"]}, 66, id="two-indicators"),
    pytest.param({"status": "baseline"}, 33, id="baseline-status"),
    pytest.param({"match": 'borough=~"Camden|Hackney"'}, 14, id="regex-matcher"),
    pytest.param({"match": ['borough!="London"', 'borough!~"[A-M].*"'],
                  "indicator": "robbery"}, 9, id="matchers-combine"),
])
def test_series_filters_combine(api: httpx.Client, served: Served, params: dict[str, Any],
                                expected: int) -> None:
    body = api.get("/api/v1/series", params=params).json()
    assert body["total"] == expected


def test_series_are_paged(api: httpx.Client) -> None:
    first = api.get("/api/v1/series", params={"limit": 50}).json()
    second = api.get("/api/v1/series", params={"limit": 50, "offset": 50}).json()
    assert len(first["series"]) == 50 and len(second["series"]) == 50
    keys = {(s["indicator"], s["fingerprint"]) for s in first["series"] + second["series"]}
    assert len(keys) == 100


def test_a_series_detail_carries_comment_spc_and_chart_points(api: httpx.Client) -> None:
    body = api.get(f"/api/v1/indicators/residential_burglary/series/{LONDON_FP}").json()
    assert body["value_text"] == "+6.0%"
    assert body["target_text"] == "-4%"
    assert body["comment"].startswith("Residential burglary is up 6.0% (3,540 offences)")
    assert body["spc_icon"] == "common_cause"
    assert len(body["points"]) == 24
    assert body["points"][12] == {"period": "2009-01", "value": 6203.0,
                                  "target": pytest.approx(4689.6),
                                  "special_cause": 1, "provisional": False}
    assert body["upper"] > body["mean"] > body["lower"]


def test_a_series_history_lists_revisions_and_provisional_values(api: httpx.Client) -> None:
    body = api.get(f"/api/v1/indicators/robbery/series/{LONDON_FP}/history").json()
    assert body["labels"] == {"borough": "London"}
    assert body["points"][0] == {"period": "2008-01", "value": 3157.0, "provisional": False,
                                 "revisions": 0}
    assert body["points"][-2]["revisions"] == 1
    assert body["points"][-1]["provisional"] is True


@pytest.mark.parametrize(("params", "count"), [
    pytest.param({}, 14, id="all"),
    pytest.param({"state": "firing"}, 12, id="firing"),
    pytest.param({"state": ["pending"]}, 2, id="pending"),
    pytest.param({"state": "firing", "match": 'severity="critical"'}, 1, id="with-matcher"),
    pytest.param({"match": 'borough="Barnet"'}, 2, id="one-borough"),
    pytest.param({"rule": "ViolenceSpecialCause"}, 0, id="quiet-rule"),
])
def test_alerts_filter_by_state_rule_and_labels(api: httpx.Client, served: Served,
                                                params: dict[str, Any], count: int) -> None:
    alerts = api.get("/api/v1/alerts", params=params).json()["alerts"]
    assert len(alerts) == count
    assert all(a["explanation"] for a in alerts)


def test_the_alert_counts_match_the_engine(served: Served) -> None:
    alerts = served.observed.published.alerts
    assert sum(1 for a in alerts if a.state.value == "firing") == 12
    assert sum(1 for a in alerts if a.labels["severity"] == "critical") == 1


def test_rules_show_health_last_error_and_duration(api: httpx.Client) -> None:
    rules = api.get("/api/v1/rules").json()["rules"]
    assert [r["name"] for r in rules] == ["AcquisitiveCrimeAboveTarget", "ViolenceSpecialCause",
                                          "DrugTraffickingTrend"]
    bad = api.get("/api/v1/rules", params={"health": "err"}).json()["rules"]
    assert len(bad) == 1
    assert bad[0]["last_error"].startswith("rules/drugs.yaml:14:9: rule DrugTraffickingTrend")
    assert bad[0]["duration_seconds"] == 0.0007


def test_sources_show_health(api: httpx.Client) -> None:
    sources = api.get("/api/v1/sources").json()["sources"]
    assert [(s["name"], s["health"]) for s in sources] == [
        ("london-datastore", "ok"), ("police-uk-street", "bad"), ("ct-milestones", "ok")]
    assert "503 Service Unavailable" in sources[1]["last_error"]
    assert sources[1]["consecutive_failures"] == 4


def test_milestones_have_todays_state(api: httpx.Client) -> None:
    body = api.get("/api/v1/milestones").json()
    assert body["as_of"] == "2010-01-05"
    states = {m["id"]: m["state"] for m in body["milestones"]}
    assert states["CT-01"] == "done" and states["CT-02"] == "done_late"
    assert states["CT-12"] == "overdue"
    overdue = api.get("/api/v1/milestones", params={"state": "overdue"}).json()["milestones"]
    assert {m["state"] for m in overdue} == {"overdue"}


def test_silences_are_created_listed_and_expired_with_the_token(
        api: httpx.Client, admin: httpx.Client, served: Served) -> None:
    created = admin.post("/api/v1/silences", json={
        "matchers": [{"name": "borough", "value": "Camden"},
                     {"name": "severity", "value": "warn.*", "op": "=~"}],
        "duration": "2h", "created_by": "analyst@met.example", "comment": "data reload"})
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["state"] == "active"
    assert silence["starts_at"] == "2010-01-05T06:00:00Z"
    assert silence["ends_at"] == "2010-01-05T08:00:00Z"
    listed = api.get("/api/v1/silences", params={"state": "active"}).json()["silences"]
    assert silence["id"] in [s["id"] for s in listed]
    expired = admin.delete(f"/api/v1/silences/{silence['id']}")
    assert expired.status_code == 200
    assert expired.json()["state"] == "expired"
    active = api.get("/api/v1/silences", params={"state": "active"}).json()["silences"]
    assert silence["id"] not in [s["id"] for s in active]


def test_a_recurring_silence_keeps_its_recurrence_and_the_page_shows_it(
        admin: httpx.Client, served: Served) -> None:
    recurrence = {"weekdays": ["saturday:sunday"],
                  "times": [{"start_time": "00:00", "end_time": "24:00"}],
                  "location": "Europe/London"}
    created = admin.post("/api/v1/silences", json={
        "matchers": [{"name": "severity", "value": "warning"}], "duration": "30d",
        "created_by": "ops", "comment": "no weekend warnings", "recurrence": recurrence})
    assert created.status_code == 201, created.text
    assert created.json()["recurrence"] == recurrence
    page = admin.get("/silences").text
    assert "recurring: saturday:sunday 00:00-24:00 Europe/London" in page


def test_a_future_silence_is_pending(admin: httpx.Client, served: Served) -> None:
    start = served.observed.clock.now() + timedelta(days=1)
    created = admin.post("/api/v1/silences", json={
        "matchers": [{"name": "indicator", "value": "robbery"}],
        "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat(),
        "created_by": "a", "comment": "b"})
    assert created.json()["state"] == "pending"


@pytest.mark.parametrize(("method", "path", "body"), [
    pytest.param("POST", "/api/v1/silences", {"matchers": [{"name": "a", "value": "b"}],
                                              "duration": "1h", "created_by": "x",
                                              "comment": "y"}, id="create-silence"),
    pytest.param("DELETE", "/api/v1/silences/s0001", None, id="expire-silence"),
    pytest.param("POST", "/-/reload", None, id="reload"),
])
@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x", TOKEN[:-1]])
def test_mutations_need_the_bearer_token(api: httpx.Client, served: Served, method: str,
                                         path: str, body: Any, token: str | None) -> None:
    before = (len(served.observed.stored_silences), served.daemon.reloads)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = api.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in response.json()["error"]
    assert (len(served.observed.stored_silences), served.daemon.reloads) == before


def test_without_a_configured_token_mutations_are_refused_and_say_how_to_enable_them(
        api: httpx.Client, served: Served) -> None:
    served.daemon.configure(api_token=None)
    response = api.post("/api/v1/silences", json={})
    assert response.status_code == 401
    assert "set server.api_token" in response.json()["error"]


def test_reload_with_the_token_reloads(admin: httpx.Client, served: Served) -> None:
    before = served.daemon.reloads
    response = admin.post("/-/reload")
    assert response.json() == {"reloaded": True, "message": "reloaded"}
    assert served.daemon.reloads == before + 1


def test_protect_reads_closes_the_api_but_not_metrics_or_health(
        api: httpx.Client, admin: httpx.Client, served: Served) -> None:
    served.daemon.configure(protect_reads=True)
    assert api.get("/api/v1/indicators").status_code == 401
    assert api.get("/scorecard").status_code == 401
    assert admin.get("/api/v1/indicators").status_code == 200
    assert api.get("/metrics").status_code == 200
    assert api.get("/-/healthy").status_code == 200
    served.daemon.configure(protect_reads=False)
    assert api.get("/api/v1/indicators").status_code == 200


@pytest.mark.parametrize(("method", "path", "params", "body", "status", "field"), [
    pytest.param("GET", "/api/v1/series", {"limit": 0}, None, 422, "limit", id="limit-zero"),
    pytest.param("GET", "/api/v1/series", {"limit": "ten"}, None, 422, "limit",
                 id="limit-not-a-number"),
    pytest.param("GET", "/api/v1/series", {"offset": -1}, None, 422, "offset",
                 id="negative-offset"),
    pytest.param("GET", "/api/v1/series", {"status": "purple"}, None, 422, "status",
                 id="unknown-status"),
    pytest.param("GET", "/api/v1/alerts", {"state": "burning"}, None, 422, "state",
                 id="unknown-state"),
    pytest.param("GET", "/api/v1/alerts", {"match": 'borough="Camden'}, None, 400, "match",
                 id="unclosed-matcher"),
    pytest.param("GET", "/api/v1/series", {"match": 'borough=~"(("'}, None, 400, "match",
                 id="bad-regex"),
    pytest.param("GET", "/api/v1/indicators/nope", {}, None, 404, "indicator",
                 id="unknown-indicator"),
    pytest.param("GET", "/api/v1/indicators/robbery/series/0000000000000000", {}, None, 404,
                 "fingerprint", id="unknown-series"),
    pytest.param("POST", "/api/v1/silences", {}, {"matchers": [], "duration": "1h",
                                                  "created_by": "a", "comment": "b"},
                 422, "matchers", id="no-matchers"),
    pytest.param("POST", "/api/v1/silences", {}, {"matchers": [{"name": "a", "value": "b"}],
                                                  "duration": "soon", "created_by": "a",
                                                  "comment": "b"}, 422, "duration",
                 id="bad-duration"),
    pytest.param("POST", "/api/v1/silences", {},
                 {"matchers": [{"name": "a", "value": "b", "op": "=="}], "duration": "1h",
                  "created_by": "a", "comment": "b"}, 422, "matchers.0.op", id="bad-op"),
    pytest.param("POST", "/api/v1/silences", {},
                 {"matchers": [{"name": "a", "value": "(", "op": "=~"}], "duration": "1h",
                  "created_by": "a", "comment": "b"}, 400, "matchers", id="bad-silence-regex"),
    pytest.param("POST", "/api/v1/silences", {},
                 {"matchers": [{"name": "a", "value": "b"}], "starts_at": "2010-01-05T07:00Z",
                  "ends_at": "2010-01-05T06:30Z", "created_by": "a", "comment": "b"},
                 400, "ends_at", id="ends-before-start"),
    pytest.param("POST", "/api/v1/silences", {},
                 {"matchers": [{"name": "a", "value": "b"}], "created_by": "a",
                  "comment": "b"}, 422, None, id="no-end"),
    pytest.param("POST", "/api/v1/silences", {}, "not json", 422, None, id="not-json"),
    pytest.param("DELETE", "/api/v1/silences/nope", {}, None, 404, "silence_id",
                 id="unknown-silence"),
])
def test_bad_input_is_a_4xx_naming_the_field(
        admin: httpx.Client, method: str, path: str, params: dict[str, Any], body: Any,
        status: int, field: str | None) -> None:
    kwargs: dict[str, Any] = {"params": params}
    if isinstance(body, str):
        kwargs["content"] = body
        kwargs["headers"] = {"content-type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    response = admin.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["error"]
    if field is not None:
        assert payload["field"] == field


def test_a_silence_the_notifier_rejects_is_a_400_with_its_reason(admin: httpx.Client) -> None:
    response = admin.post("/api/v1/silences", json={
        "matchers": [{"name": "borough", "value": "Camden", "op": "!="}], "duration": "1h",
        "created_by": "a", "comment": "b"})
    assert response.status_code == 400
    assert "at least one positive matcher" in response.json()["error"]


def test_the_openapi_description_covers_every_endpoint_with_typed_responses(
        api: httpx.Client) -> None:
    spec = api.get("/api/openapi.json").json()
    expected = {
        ("get", "/api/v1/indicators"), ("get", "/api/v1/series"),
        ("get", "/api/v1/indicators/{indicator}"),
        ("get", "/api/v1/indicators/{indicator}/series/{fingerprint}"),
        ("get", "/api/v1/indicators/{indicator}/series/{fingerprint}/history"),
        ("get", "/api/v1/alerts"), ("get", "/api/v1/rules"), ("get", "/api/v1/sources"),
        ("get", "/api/v1/milestones"), ("get", "/api/v1/silences"),
        ("post", "/api/v1/silences"), ("delete", "/api/v1/silences/{silence_id}"),
        ("post", "/-/reload"), ("get", "/-/healthy"), ("get", "/-/ready")}
    present = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert expected <= present
    assert not any(p.startswith(("/scorecard", "/metrics", "/static")) for _, p in present)
    for method, path in expected:
        if path.startswith("/api/v1"):
            ok = "201" if method == "post" else "200"
            schema = spec["paths"][path][method]["responses"][ok]["content"][
                "application/json"]["schema"]
            assert "$ref" in schema, (method, path)
    assert "SeriesOut" in spec["components"]["schemas"]


def test_json_never_carries_nan(api: httpx.Client, london: LondonObserved) -> None:
    body = api.get("/api/v1/series", params={"status": "baseline", "limit": 1}).json()
    assert body["series"][0]["target"] is None
    assert all(v is None or math.isfinite(v) for v in body["series"][0]["changes"].values())
