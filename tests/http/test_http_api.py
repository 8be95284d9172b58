"""The JSON API of the real daemon on the examples: data, filters, auth, errors, OpenAPI.

Expected numbers are recomputed from the examples' data and rule files
(``tests/http/examples.py``) or are the seed scorecard's (``tests/rules``).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from monitor.http.context import BEARER_REQUIRED, READS_DISABLED
from monitor.model import fingerprint
from monitor.rules import stats
from tests.http import examples as ex
from tests.http.conftest import TOKEN, Served
from tests.rules.test_seed_scorecard import EXPECTED_FIRING

LONDON_FP = fingerprint({"borough": "London"})
MPS_FP = fingerprint({"force": ex.MPS})


@pytest.fixture
def api(london: Served) -> Iterator[httpx.Client]:
    """A client of the London daemon without a token; its settings are restored after."""
    saved = london.app.settings
    with london.client() as client:
        yield client
    london.app.settings = saved


@pytest.fixture
def admin(london: Served) -> Iterator[httpx.Client]:
    with london.client(TOKEN) as client:
        yield client


@pytest.fixture
def mps_api(mps: Served) -> Iterator[httpx.Client]:
    with mps.client() as client:
        yield client


def test_it_lists_indicators_in_the_order_the_engine_publishes_with_status_counts(
        mps_api: httpx.Client, mps: Served) -> None:
    body = mps_api.get("/api/v1/indicators").json()
    assert [i["id"] for i in body["indicators"]] == list(mps.snapshot().frames)
    assert {i["id"] for i in body["indicators"]} == \
        {i["id"] for i in ex.mps_rules()["indicators"]}
    sac = next(i for i in body["indicators"] if i["id"] == "serious_acquisitive_crime")
    rules = ex.mps_indicator("serious_acquisitive_crime")
    forces = {force for (ind, force) in ex.mps_rows() if ind == "robbery"}
    assert (sac["reference"], sac["group"]) == (rules["reference"], rules["group"])
    assert sac["series_count"] == len(forces) == sum(sac["status_counts"].values())
    assert body["data_as_of"].startswith("2008-07-31T")  # the end of rules.as_of's month
    assert body["data_to"] == "Jul-08"  # the latest period with data
    assert body["evaluated_at"] == mps.snapshot().evaluated_at.isoformat().replace(
        "+00:00", "Z")  # the daemon's clock


def test_a_series_carries_its_latest_value_target_and_status(api: httpx.Client) -> None:
    pct, _ = ex.rolling_change(ex.london_total()["dwelling_burglary"], "2024-01")
    body = api.get("/api/v1/indicators/dwelling_burglary",
                   params={"match": 'borough="London"'}).json()
    assert body["total"] == 1
    [series] = body["series"]
    detail = api.get(f"/api/v1/indicators/dwelling_burglary/series/{LONDON_FP}").json()
    assert series.pop("spc_icon") == detail["spc_icon"]  # published with the snapshot
    assert series == {
        "indicator": "dwelling_burglary", "labels": {"borough": "London"},
        "fingerprint": LONDON_FP, "period": "2024-01", "value": pytest.approx(pct, rel=1e-12),
        "target": None, "status": "not_rated", "status_code": -2,  # the example sets no target
        "changes": {"12": pytest.approx(pct / 100, rel=1e-12)}, "provisional": False}


def test_a_level_target_is_judged_as_the_rule_file_says(mps_api: httpx.Client) -> None:
    rows = ex.mps_rows()[("victim_satisfaction", ex.MPS)]
    last_year = sorted(rows)[-12:]
    value = sum(rows[m][0] for m in last_year) / sum(rows[m][1] or 0 for m in last_year) * 100
    rules = ex.mps_indicator("victim_satisfaction")
    target = rules["targets"]["2008/09"]["value"]
    status = "green" if value >= target else \
        "amber" if value >= target - rules["amber"] else "red"
    [series] = mps_api.get("/api/v1/indicators/victim_satisfaction",
                           params={"match": f'force="{ex.MPS}"'}).json()["series"]
    assert (series["value"], series["target"], series["status"]) == (
        pytest.approx(value, rel=1e-12), target, status)
    assert status == "red"  # the seed: 77.0% against 78.9%


def _expected(params: dict[str, Any]) -> int:
    areas = ex.london_areas()
    wanted = params.get("indicator", list(areas))
    wanted = [wanted] if isinstance(wanted, str) else wanted
    matchers = params.get("match", [])
    matchers = [matchers] if isinstance(matchers, str) else matchers
    count = 0
    for indicator in wanted:
        for area in areas[indicator]:
            ok = True
            for m in matchers:
                _name, op, value = re.fullmatch(r'(\w+)(=~|!~|!=|=)"(.*)"', m).groups()  # type: ignore[union-attr]
                hit = re.fullmatch(value, area) is not None if "~" in op else area == value
                ok &= hit if op in ("=", "=~") else not hit
            count += ok
    return count


@pytest.mark.parametrize("params", [
    pytest.param({}, id="everything"),
    pytest.param({"indicator": "robbery"}, id="one-indicator"),
    pytest.param({"indicator": ["robbery", "vehicle_crime"]}, id="two-indicators"),
    pytest.param({"match": 'borough=~"Camden|Hackney"'}, id="regex-matcher"),
    pytest.param({"match": ['borough!="London"', 'borough!~"[A-M].*"'],
                  "indicator": "robbery"}, id="matchers-combine"),
])
def test_series_filters_combine(api: httpx.Client, params: dict[str, Any]) -> None:
    body = api.get("/api/v1/series", params=params).json()
    assert body["total"] == _expected(params)


def test_series_filter_by_status(mps_api: httpx.Client, mps: Served) -> None:
    everything = mps_api.get("/api/v1/series").json()["series"]
    for status in ("red", "amber", "green", "baseline", "not_rated", "no_data"):
        body = mps_api.get("/api/v1/series", params={"status": status}).json()
        assert body["total"] == sum(1 for s in everything if s["status"] == status)
    assert mps_api.get("/api/v1/series", params={"status": "baseline"}).json()["total"] > 0


def test_series_are_paged(api: httpx.Client) -> None:
    first = api.get("/api/v1/series", params={"limit": 50}).json()
    second = api.get("/api/v1/series", params={"limit": 50, "offset": 50}).json()
    assert len(first["series"]) == 50 and len(second["series"]) == 50
    keys = {(s["indicator"], s["fingerprint"]) for s in first["series"] + second["series"]}
    assert len(keys) == 100


def test_a_series_detail_carries_comment_spc_and_chart_points(london: Served,
                                                              api: httpx.Client) -> None:
    monthly = ex.london_total()["dwelling_burglary"]
    pct, _ = ex.rolling_change(monthly, "2024-01")
    history = london.app.settings.rules.history
    months = ex.months_before("2024-01", history)
    values = np.array([[monthly[m] for m in months]])
    chart = stats.spc(values, direction=-1)  # down is good for burglary
    mean, lower, upper = stats.point_limits(chart)
    body = api.get(f"/api/v1/indicators/dwelling_burglary/series/{LONDON_FP}").json()
    assert body["value"] == pytest.approx(pct, rel=1e-12)
    assert body["value_text"] == f"{pct:+.0f}%"  # precision 0 in the rule file
    assert [p["period"] for p in body["points"]] == months
    assert [p["value"] for p in body["points"]] == [monthly[m] for m in months]
    assert body["points"][-1]["level"] == sum(monthly[m] for m in months[-12:])
    assert [p["special_cause"] for p in body["points"]] == chart.special[0].tolist()
    assert [p["variation"] for p in body["points"]] == \
        stats.spc_categories(chart)[0].tolist()
    assert [p["mean"] for p in body["points"]] == pytest.approx(mean[0].tolist())
    assert [(p["lower"], p["upper"]) for p in body["points"]] == \
        [pytest.approx((lo, up)) for lo, up in zip(lower[0], upper[0], strict=True)]
    assert body["spc_icon"] == body["points"][-1]["variation"]
    assert any(p["special_cause"] for p in body["points"])


def test_a_series_comment_gives_the_parts_changes_from_the_data(api: httpx.Client) -> None:
    body = api.get(f"/api/v1/indicators/serious_acquisitive_crime/series/{LONDON_FP}").json()
    totals = ex.london_total()
    parts = {"dwelling burglary": totals["dwelling_burglary"],
             "robbery": {m: totals["personal_robbery"][m] + totals["business_robbery"][m]
                         for m in totals["personal_robbery"]},
             "vehicle crime": {m: sum(totals[i][m] for i in (
                 "vehicle_taking", "theft_from_vehicle", "vehicle_interference"))
                 for m in totals["vehicle_taking"]}}
    comment = body["comment"].lower()
    for name, monthly in parts.items():
        pct, delta = ex.rolling_change(monthly, "2024-01")
        word = "up" if delta > 0 else "down"
        assert re.search(rf"{name} is {word} {abs(pct):.1f}% \({abs(delta):,.0f}( offences)?\)",
                         comment), (name, comment)
    assert comment.endswith("over the rolling year to jan-24 (compared to the ry to jan-23).")


def test_a_series_history_is_what_the_evaluation_read(london: Served,
                                                      api: httpx.Client) -> None:
    monthly = ex.london_total()["personal_robbery"]
    months = ex.months_before("2024-01", london.app.settings.rules.history)
    body = api.get(f"/api/v1/indicators/personal_robbery/series/{LONDON_FP}/history").json()
    assert body["labels"] == {"borough": "London"}
    assert body["points"] == [{"period": m, "value": monthly[m], "provisional": False,
                               "revisions": 0} for m in months]


def test_provisional_data_is_flagged_per_period(mps: Served, mps_api: httpx.Client) -> None:
    rows = ex.mps_rows()[("ksi", ex.MPS)]
    body = mps_api.get(f"/api/v1/indicators/ksi/series/{MPS_FP}/history").json()
    flagged = [p["period"] for p in body["points"] if p["provisional"]]
    assert flagged == sorted(m for m, (_, _, provisional) in rows.items() if provisional)
    assert flagged  # the seed: "KSI data provisional"
    assert {p["period"]: p["value"] for p in body["points"]} == \
        {m: v for m, (v, _, _) in rows.items() if m in {p["period"] for p in body["points"]}}


@pytest.mark.parametrize("params", [
    pytest.param({}, id="all"),
    pytest.param({"state": "firing"}, id="firing"),
    pytest.param({"state": ["pending"]}, id="pending"),
    pytest.param({"state": "firing", "match": 'severity="warning"'}, id="with-matcher"),
    pytest.param({"match": f'force="{ex.MPS}"'}, id="one-force"),
    pytest.param({"rule": "CounterTerrorismMilestoneOverdue"}, id="one-rule"),
])
def test_alerts_filter_by_state_rule_and_labels(mps_api: httpx.Client,
                                                params: dict[str, Any]) -> None:
    everything = mps_api.get("/api/v1/alerts").json()["alerts"]
    states = params.get("state", [])
    states = [states] if isinstance(states, str) else states
    label = re.fullmatch(r'(\w+)="(.*)"', params.get("match", "x=\"\"")).groups()  # type: ignore[union-attr]
    expected = [a for a in everything
                if (not states or a["state"] in states)
                and ("rule" not in params or a["rule"] == params["rule"])
                and ("match" not in params or a["labels"].get(label[0]) == label[1])]
    alerts = mps_api.get("/api/v1/alerts", params=params).json()["alerts"]
    assert alerts == expected
    assert all(a["explanation"] for a in alerts)


def test_the_seed_alerts_fire(mps_api: httpx.Client) -> None:
    firing = mps_api.get("/api/v1/alerts", params={"state": "firing"}).json()["alerts"]
    counts: dict[str, int] = {}
    for alert in firing:
        counts[alert["rule"]] = counts.get(alert["rule"], 0) + 1
    assert counts == EXPECTED_FIRING


def test_rules_show_health_last_evaluation_and_duration(mps: Served,
                                                        mps_api: httpx.Client) -> None:
    rules = mps_api.get("/api/v1/rules").json()["rules"]
    assert [r["name"] for r in rules] == [
        r["alert"] for g in ex.mps_rules()["groups"] for r in g["rules"]]
    assert {r["health"] for r in rules} == {"ok"}
    assert all(r["last_evaluation"] and r["duration_seconds"] >= 0 and r["evaluations"] >= 1
               for r in rules)
    overdue = next(r for r in rules if r["name"] == "CounterTerrorismMilestoneOverdue")
    assert overdue["alerts_firing"] == EXPECTED_FIRING["CounterTerrorismMilestoneOverdue"]
    assert mps_api.get("/api/v1/rules", params={"health": "err"}).json()["rules"] == []


def test_milestones_have_their_state_on_the_evaluation_day(mps_api: httpx.Client) -> None:
    body = mps_api.get("/api/v1/milestones").json()
    today = date(2008, 7, 31)  # rules.as_of = 2008-07: the day the plan is judged on
    assert body["as_of"] == today.isoformat()

    def state(m: dict[str, Any]) -> str:
        if m["status"] == "done":
            return "done_late" if m.get("completed") and m["completed"] > m["due"] else "done"
        return "overdue" if today > m["due"] else "open"

    assert {m["id"]: m["state"] for m in body["milestones"]} == \
        {m["id"]: state(m) for m in ex.ct_milestones()}
    overdue = mps_api.get("/api/v1/milestones", params={"state": "overdue"}).json()
    assert len(overdue["milestones"]) == EXPECTED_FIRING["CounterTerrorismMilestoneOverdue"]


def test_silences_are_created_listed_and_expired_with_the_token(
        api: httpx.Client, admin: httpx.Client, london: Served) -> None:
    now = london.clock.now()
    created = admin.post("/api/v1/silences", json={
        "matchers": [{"name": "borough", "value": "Camden"},
                     {"name": "severity", "value": "warn.*", "op": "=~"}],
        "duration": "2h", "created_by": "analyst@met.example", "comment": "data reload"})
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["state"] == "active"
    assert silence["starts_at"] == now.isoformat().replace("+00:00", "Z")
    assert silence["ends_at"] == (now + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    listed = api.get("/api/v1/silences", params={"state": "active"}).json()["silences"]
    assert silence["id"] in [s["id"] for s in listed]
    expired = admin.delete(f"/api/v1/silences/{silence['id']}")
    assert expired.status_code == 200
    assert expired.json()["state"] == "expired"
    active = api.get("/api/v1/silences", params={"state": "active"}).json()["silences"]
    assert silence["id"] not in [s["id"] for s in active]


def test_a_recurring_silence_keeps_its_recurrence_and_the_page_shows_it(
        admin: httpx.Client) -> None:
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


def test_a_future_silence_is_pending(admin: httpx.Client, london: Served) -> None:
    start = london.clock.now() + timedelta(days=1)
    created = admin.post("/api/v1/silences", json={
        "matchers": [{"name": "indicator", "value": "robbery"}],
        "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat(),
        "created_by": "a", "comment": "b"})
    assert created.json()["state"] == "pending"


def _reloaded_at(served: Served) -> float | None:
    return served.app.registry.get_sample_value(
        "monitor_config_last_reload_success_timestamp_seconds")


def _silence_count(served: Served) -> int:
    assert served.app.notifier is not None
    return len(served.app.notifier.silences())


@pytest.mark.parametrize(("method", "path", "body"), [
    pytest.param("POST", "/api/v1/silences", {"matchers": [{"name": "a", "value": "b"}],
                                              "duration": "1h", "created_by": "x",
                                              "comment": "y"}, id="create-silence"),
    pytest.param("DELETE", "/api/v1/silences/s0001", None, id="expire-silence"),
    pytest.param("POST", "/-/reload", None, id="reload"),
])
@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x", TOKEN[:-1]])
def test_mutations_need_the_bearer_token(api: httpx.Client, london: Served, method: str,
                                         path: str, body: Any, token: str | None) -> None:
    before = (_silence_count(london), _reloaded_at(london))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = api.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "bearer token" in response.json()["error"]
    assert (_silence_count(london), _reloaded_at(london)) == before


def routes(served: Served) -> list[tuple[str, str]]:
    """Every (method, path) the daemon's app serves, path parameters filled with ``x`` (an
    ``{action}`` with each action) —
    read from the app itself, so an endpoint added later is checked too."""
    from monitor.http.server import create_app
    from monitor.observing import DaemonView

    def walk(routes: list[Any]) -> Iterator[tuple[str, str]]:
        for route in routes:
            if hasattr(route, "original_router"):  # an included router (FastAPI >= 0.16x)
                yield from walk(route.original_router.routes)
            template = getattr(route, "path", "")
            paths = {re.sub(r"\{[^}]+\}", "x", template.replace("{action}", a))
                     for a in ("expire", "extend")}  # the pages' one Literal parameter
            yield from ((m, p) for m in sorted(getattr(route, "methods", None) or ())
                        if m != "HEAD" for p in sorted(paths))

    return list(walk(create_app(served.app, DaemonView(served.app), clock=served.clock).routes))


def refusal(answer: httpx.Response) -> str:
    """The refusal text of a 401: the API's ``error``, or a page's message (unescaped)."""
    if answer.headers["content-type"].startswith("application/json"):
        return str(answer.json()["error"])
    found = re.search(r'<p [^>]*(?:id="form-error"|id="notice"|id="error-message")[^>]*>(.*?)</p>',
                      answer.text, re.S)
    assert found is not None, answer.text[-2000:]
    return html.unescape(found.group(1))


def test_without_a_configured_token_mutations_are_refused_and_say_how_to_enable_them(
        api: httpx.Client, london: Served) -> None:
    london.configure(api_token=None)
    response = api.post("/api/v1/silences", json={})
    assert response.status_code == 401
    assert "set server.api_token" in response.json()["error"]
    # Every protected endpoint says the same helpful thing (issue #17): every change the
    # app serves — reload, the API's silence changes, the pages' silence forms.
    changes = [(m, p) for m, p in routes(london) if m != "GET"]
    assert {("POST", "/-/reload"), ("DELETE", "/api/v1/silences/x"),
            ("POST", "/silences/new"), ("POST", "/silences/x/expire")} <= set(changes)
    form = {"content-type": "application/x-www-form-urlencoded"}
    said = {}
    for method, path in changes:
        answer = (api.request(method, path, headers=form, content=b"action=create&token=x"
                              b"&duration=1h&matchers=area%3D%22North%22")
                  if not path.startswith(("/api/", "/-/"))
                  else api.request(method, path, json={"duration": "1h"}))
        assert answer.status_code == 401, (method, path)
        said[f"{method} {path}"] = refusal(answer)
    assert set(said.values()) == {response.json()["error"]}, said


def test_with_reads_protected_every_read_says_the_same_whatever_the_page_or_endpoint(
        api: httpx.Client, london: Served) -> None:
    """``server.protect_reads`` without a token, then with a wrong one: every read of the API
    and the pages refuses in the same words as the changes do, and says what to do."""
    open_always = {"/metrics", "/-/healthy", "/-/ready", "/", "/api/docs", "/api/openapi.json"}
    reads = [p for m, p in routes(london) if m == "GET" and p not in open_always
             and not p.startswith(("/static", "/api/docs/"))]
    assert {"/api/v1/alerts", "/api/v1/alerts/history", "/alerts", "/silences/new"} <= set(reads)
    for token, expected in ((None, READS_DISABLED), ("wrong", BEARER_REQUIRED)):
        london.configure(protect_reads=True, api_token=SecretStr(TOKEN) if token else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        said = {}
        for path in reads:
            answer = api.get(path, headers=headers)
            assert answer.status_code == 401, path
            said[path] = refusal(answer)
        assert all(text.startswith(expected) for text in said.values()), said
    assert "set server.api_token" in READS_DISABLED


def test_reload_with_the_token_reloads(admin: httpx.Client, london: Served) -> None:
    before = _reloaded_at(london)
    response = admin.post("/-/reload")
    assert response.json() == {"reloaded": True, "message": "reloaded"}
    after = _reloaded_at(london)
    assert before is not None and after is not None and after > before


def test_protect_reads_closes_the_api_but_not_metrics_or_health(
        api: httpx.Client, admin: httpx.Client, london: Served) -> None:
    london.configure(protect_reads=True)
    assert api.get("/api/v1/indicators").status_code == 401
    assert api.get("/scorecard").status_code == 401
    assert admin.get("/api/v1/indicators").status_code == 200
    assert api.get("/metrics").status_code == 200
    assert api.get("/-/healthy").status_code == 200
    london.configure(protect_reads=False)
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
    assert response.json()["error"].startswith("matchers: at least one matcher must not match")


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


def test_json_never_carries_nan(mps_api: httpx.Client, api: httpx.Client) -> None:
    body = mps_api.get("/api/v1/series", params={"status": "baseline", "limit": 1}).json()
    assert body["series"][0]["target"] is None
    assert all(v is None or math.isfinite(v) for v in body["series"][0]["changes"].values())
    # The airports have no dwelling burglary row in the 2022-24 file: no rolling year.
    assert "London Heathrow and London City Airports" not in {
        row[2] for row in ex.read_rows(ex.LONDON / "data" /
                                       "mps-borough-crime-2022-02-to-2024-01.csv")
        if row[1] == "Domestic Burglary"}
    [airports] = api.get("/api/v1/indicators/serious_acquisitive_crime", params={
        "match": 'borough="London Heathrow and London City Airports"'}).json()["series"]
    assert airports["value"] is None and airports["changes"] == {"12": None}
