"""The API's request bodies and parameters on generated input, against a real daemon (the
``App``, a real SQLite store, uvicorn on loopback): never a server error. Every refusal
is a 4xx with a JSON ``error`` that says what is wrong."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.app import App
from monitor.settings import load
from tests.conftest import free_port
from tests.property.strategies import ODD_TEXT, SCALAR, TEXT, json_values
from tests.property.tally import SETTINGS, scaled, tally
from tests.reliability.rig import REPO

TOKEN = "property-token-5d1f0a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    with tempfile.TemporaryDirectory(prefix="monitor-api-") as folder:
        port = free_port()
        config = Path(folder) / "config.toml"
        config.write_text(f"""
[server]
listen = "127.0.0.1:{port}"
api_token = "{TOKEN}"
[store]
url = "sqlite:///{Path(folder) / 'monitor.db'}"
[rules]
paths = ["{REPO / 'rules' / 'mps-2008-09.yaml'}"]
as_of = "2008-07"
watch = false
""")
        app = App(load(config, environ={}), config)
        app.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                yield client
        finally:
            app.stop()


def check(response: httpx.Response, allowed: set[int]) -> None:
    assert response.status_code in allowed, (response.status_code, response.text[:500])
    body = response.json()
    if response.status_code >= 400:
        assert isinstance(body.get("error"), str) and body["error"].strip(), body


DATETIME_TEXT = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(lambda d: d.isoformat()),
    st.sampled_from(["2099-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                     "2026-02-30T00:00:00Z", "now", "-1", "0"]), TEXT)
MATCHER = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.sampled_from(["alertname", "indicator", "force", "__name__", ""]),
                      TEXT),
    "value": st.one_of(st.sampled_from(["(", "a{2,1}", ".*", "x" * 10_001, "(a+)+$"]), TEXT),
    "op": st.one_of(st.sampled_from(["=", "!=", "=~", "!~", "==", "~"]), TEXT)})
RECURRENCE = st.fixed_dictionaries({}, optional={
    "weekdays": st.lists(st.one_of(st.sampled_from(["monday:friday", "saturday", "funday",
                                                    "friday:monday"]), TEXT), max_size=3),
    "times": st.lists(st.fixed_dictionaries({}, optional={
        "start_time": st.one_of(st.sampled_from(["09:00", "24:00", "25:61"]), TEXT),
        "end_time": st.one_of(st.sampled_from(["17:30", "00:00"]), TEXT)}), max_size=2),
    "days_of_month": st.lists(st.one_of(st.sampled_from(["1:7", "-1", "0", "32"]), TEXT),
                              max_size=2),
    "months": st.lists(TEXT, max_size=2), "years": st.lists(TEXT, max_size=2),
    "location": st.one_of(st.sampled_from(["Europe/London", "Mars/Olympus", ""]), TEXT)})
SILENCE = st.fixed_dictionaries({}, optional={
    "matchers": st.one_of(st.lists(MATCHER, max_size=4), SCALAR),
    "starts_at": st.one_of(DATETIME_TEXT, SCALAR), "ends_at": st.one_of(DATETIME_TEXT, SCALAR),
    "duration": st.one_of(st.sampled_from(["2h", "30m", "1d", "0s", "-1h", "999999999d"]),
                          ODD_TEXT),
    "created_by": st.one_of(TEXT, SCALAR), "comment": st.one_of(TEXT, SCALAR),
    "recurrence": st.one_of(RECURRENCE, json_values(max_leaves=6))})


@SETTINGS
@given(SILENCE)
def test_silence_bodies_of_the_right_shape_never_fail_the_server(api: httpx.Client,
                                                                 body: dict[str, Any]) -> None:
    tally("API: POST /api/v1/silences (silence-shaped JSON)")
    check(api.post("/api/v1/silences", content=json.dumps(body).encode(),
                   headers={**AUTH, "Content-Type": "application/json"}), {201, 400, 422})


@SETTINGS
@given(st.one_of(json_values(max_leaves=20), st.binary(max_size=200)))
def test_any_body_never_fails_the_server(api: httpx.Client, body: Any) -> None:
    tally("API: POST /api/v1/silences (any JSON or bytes)")
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # NaN included
    response = api.post("/api/v1/silences", content=raw,
                        headers={**AUTH, "Content-Type": "application/json"})
    check(response, {201, 400, 422})


@scaled(0.5)
@given(st.text(min_size=1, max_size=60))
def test_any_silence_id_never_fails_the_server(api: httpx.Client, silence_id: str) -> None:
    tally("API: DELETE /api/v1/silences/{id}")
    response = api.delete(f"/api/v1/silences/{quote(silence_id, safe='')}", headers=AUTH)
    # 200 or 404; an id that is only slashes is redirected (307) or not routed (405).
    assert response.status_code in (200, 307, 404, 405), response.text[:300]


@SETTINGS
@given(st.lists(st.one_of(st.sampled_from(['force="Metropolitan Police Service"',
                                           'indicator=~"rob.*"', "x!~(", "=", 'a="b', "a=~"]),
                          TEXT), max_size=4),
       st.lists(st.one_of(st.sampled_from(["firing", "pending", "bogus"]), TEXT), max_size=3),
       st.one_of(st.integers(-5, 20_000).map(str), TEXT))
def test_any_query_parameters_never_fail_the_server(api: httpx.Client, match: list[str],
                                                    state: list[str], limit: str) -> None:
    tally("API: GET query parameters (match, state, limit)")
    check(api.get("/api/v1/series", params={"match": match, "limit": limit}), {200, 400, 422})
    check(api.get("/api/v1/alerts", params={"match": match, "state": state}), {200, 400, 422})
