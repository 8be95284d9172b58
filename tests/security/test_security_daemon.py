"""What a real daemon fed hostile data and planted secrets writes (see conftest.py):
secrets appear nowhere, data is escaped for every output format, and a source outside
its allowed hosts is never contacted."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from tests.security.conftest import HOSTILE, SECRETS, Hostile

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {SECRETS['api_token']}"}
API = ["/api/v1/indicators", "/api/v1/series", "/api/v1/indicators/kpi_hostile",
       "/api/v1/alerts", "/api/v1/rules", "/api/v1/sources", "/api/v1/milestones",
       "/api/v1/silences", "/api/openapi.json", "/-/ready", "/-/healthy"]
PAGES = ["/scorecard", "/alerts", "/rules", "/sources", "/silences", "/milestones",
         "/indicators/kpi_hostile"]


def store_dump(url: str) -> str:
    """Every row of every table of the store, as text."""
    dsn = make_url(url).render_as_string(hide_password=False)
    lines = []
    with psycopg.connect(dsn) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                lines.append(f"{table}: {row!r}")
    return "\n".join(lines)


def everything_written(h: Hostile) -> Iterator[tuple[str, str]]:
    """Yield (where, text) for everything the daemon wrote or answered."""
    yield "stdout/stderr", h.log.read_text(errors="replace")
    yield "notifications file", h.notifications.read_text()
    yield "/metrics", httpx.get(f"{h.base}/metrics", timeout=10).text
    for path in API + PAGES:
        yield path, httpx.get(f"{h.base}{path}", headers=AUTH, timeout=10).text
    for headers in ({}, {"Authorization": "Bearer wrong"}, AUTH):
        response = httpx.post(f"{h.base}/api/v1/silences", json={"matchers": "x"},
                              headers=headers, timeout=10)
        yield f"POST /api/v1/silences {headers}", response.text
        yield "POST /-/reload", httpx.post(f"{h.base}/-/reload", headers=headers,
                                           timeout=30).text
    yield "the store", store_dump(h.store_url)
    for delivery in h.webhook.deliveries:  # what receivers got (the URL path is the secret)
        yield "webhook bodies", delivery.raw.decode()


def test_no_secret_reaches_logs_errors_metrics_api_pages_notifications_or_the_store(
        hostile: Hostile) -> None:
    # Every secret was really used, and the errors that could echo it really happened.
    assert hostile.webhook.deliveries
    assert hostile.webhook.deliveries[0].path == f"/hooks/{SECRETS['webhook']}"
    assert hostile.http_source.deliveries[0].headers["authorization"] == \
        f"Bearer {SECRETS['bearer']}"
    log = hostile.log.read_text()
    for needle in ("source=warehouse", "source=api", "integration=email:0",
                   "integration=webhook:0"):
        assert needle in log, needle
    written = list(everything_written(hostile))
    where = dict(written)
    assert "SourceFailing" in where["the store"] and "HostileValueHigh" in where["/alerts"]
    leaks = [(place, name) for place, text in written
             for name, secret in SECRETS.items() if secret in text]
    assert leaks == []


def test_data_is_escaped_for_every_output_format(hostile: Hostile) -> None:
    # JSON (API, notifications): the values round-trip exactly.
    alerts = httpx.get(f"{hostile.base}/api/v1/alerts", timeout=10).json()["alerts"]
    kpi = [a for a in alerts if a["labels"].get("alertname") == "HostileValueHigh"]
    assert {a["labels"]["area"] for a in kpi} == set(HOSTILE)
    for alert in kpi:  # data is a value in templates, never template source
        assert alert["annotations"]["summary"].startswith(alert["labels"]["area"] + " is at")
    noted = [json.loads(line) for line in hostile.notifications.read_text().splitlines()]
    areas = {a["labels"].get("area") for n in noted for a in n["alerts"]}
    assert set(HOSTILE) <= areas
    # Prometheus text format: label values escaped, parsed back exactly.
    families = text_string_to_metric_families(
        httpx.get(f"{hostile.base}/metrics", timeout=10).text)
    exported = {s.labels["area"] for f in families if f.name == "monitor_indicator_value"
                for s in f.samples if "area" in s.labels}
    assert exported == set(HOSTILE)
    # HTML pages: markup from data is shown, never run.
    for page in PAGES:
        html = httpx.get(f"{hostile.base}{page}", timeout=10).text
        assert '<script>alert("x")</script>' not in html, page
        assert '" onmouseover="alert(1)' not in html, page
        assert "<b>indicator</b>" not in html, page
    alerts_page = httpx.get(f"{hostile.base}/alerts", timeout=10).text
    assert "&lt;script&gt;" in alerts_page
    assert "{{ 7*7 }}" in alerts_page and ">49<" not in alerts_page


def test_a_source_outside_its_allowed_hosts_is_never_contacted(hostile: Hostile) -> None:
    sources = httpx.get(f"{hostile.base}/api/v1/sources", timeout=10).json()["sources"]
    outside = next(s for s in sources if s["name"] == "outside")
    assert "is not in allowed_hosts (data.example.org)" in outside["last_error"]
    assert hostile.outside.deliveries == []
