"""The shared HTTP fetcher against a real loopback server: retries, limits, validators, auth."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.errors import FetchError, PayloadError
from monitor.sources.config import CsvSource, HttpOptions
from monitor.sources.http import HttpFetcher, host_allowed
from monitor.store.sourcestate import Validators
from tests.sources.sourcekit import Reply, Site, Sleeps


def options(**overrides: Any) -> HttpOptions:
    data = {"name": "feed", "kind": "csv", "url": "http://127.0.0.1/x.csv", "indicator": "x",
            "timeout": "2s", "retries": 3, "backoff": "1s"}
    return CsvSource.model_validate(data | overrides)


def fetcher(sleeps: Sleeps, **overrides: Any) -> HttpFetcher:
    return HttpFetcher(options(**overrides), source="feed", sleep=sleeps, rng=random.Random(1),
                       now=lambda: datetime(2024, 2, 1, tzinfo=UTC))


def test_it_retries_a_500_and_returns_the_later_success(site: Site, sleeps: Sleeps) -> None:
    site.route("/x.csv", Reply(500, b"boom"), Reply(body=b"a,b\n"))
    with fetcher(sleeps) as http:
        response = http.get(site.url("/x.csv"))
    assert (response.status, response.body, response.attempts) == (200, b"a,b\n", 2)
    assert site.hits("/x.csv") == 2
    assert len(sleeps.waits) == 1 and 0.5 <= sleeps.waits[0] <= 1.0


def test_it_waits_what_retry_after_asks_on_429(site: Site, sleeps: Sleeps) -> None:
    site.route("/x.csv", Reply(429, headers={"Retry-After": "7"}), Reply(body=b"ok"))
    with fetcher(sleeps) as http:
        assert http.get(site.url("/x.csv")).body == b"ok"
    assert sleeps.waits == [7.0]


def test_it_gives_up_when_retry_after_is_longer_than_allowed(site: Site, sleeps: Sleeps) -> None:
    site.route("/x.csv", Reply(429, headers={"Retry-After": "3600"}))
    with fetcher(sleeps, max_retry_after="5m") as http, pytest.raises(FetchError) as caught:
        http.get(site.url("/x.csv"))
    assert caught.value.retryable and caught.value.retry_after == 3600.0
    assert "asks to wait 3600s, more than max_retry_after (300s)" in str(caught.value)
    assert sleeps.waits == []


def test_it_backs_off_exponentially_and_then_fails_with_the_last_error(site: Site,
                                                                      sleeps: Sleeps) -> None:
    site.route("/x.csv", Reply(503, b"down for maintenance"))
    with fetcher(sleeps, retries=3) as http, pytest.raises(FetchError) as caught:
        http.get(site.url("/x.csv"))
    assert str(caught.value) == (f"source 'feed': GET {site.url('/x.csv')}: HTTP 503: down for "
                                 "maintenance (after 4 attempts)")
    assert caught.value.retryable
    # backoff = 1s, doubled per retry, ± 20 % jitter
    bands = [(0.8, 1.2), (1.6, 2.4), (3.2, 4.8)]
    assert all(lo <= w <= hi for w, (lo, hi) in zip(sleeps.waits, bands, strict=True))


def test_it_does_not_retry_a_404(site: Site, sleeps: Sleeps) -> None:
    with fetcher(sleeps) as http, pytest.raises(FetchError) as caught:
        http.get(site.url("/missing.csv"))
    assert not caught.value.retryable
    assert str(caught.value) == (f"source 'feed': GET {site.url('/missing.csv')}: HTTP 404: no "
                                 "such route; check the URL; the resource does not exist")
    assert site.hits("/missing.csv") == 1


def test_it_times_out_a_slow_server(site: Site, sleeps: Sleeps) -> None:
    site.route("/x.csv", Reply(body=b"late", delay=1.5))
    with fetcher(sleeps, timeout="0.2s", retries=1) as http, pytest.raises(FetchError) as caught:
        http.get(site.url("/x.csv"))
    assert "no answer within 0.2s (timeout) (after 2 attempts)" in str(caught.value)
    assert caught.value.retryable


def test_it_treats_a_body_shorter_than_its_content_length_as_a_failure(site: Site,
                                                                      sleeps: Sleeps) -> None:
    site.route("/x.csv", Reply(body=b"a,b\n1,2\n3,4\n", truncate_to=6))
    with fetcher(sleeps, retries=1) as http, pytest.raises(FetchError) as caught:
        http.get(site.url("/x.csv"))
    assert "the connection broke mid-response (truncated body?)" in str(caught.value)


@pytest.mark.parametrize("declared", [pytest.param(True, id="content-length"),
                                      pytest.param(False, id="streamed")])
def test_it_refuses_a_body_larger_than_max_bytes(site: Site, sleeps: Sleeps,
                                                 declared: bool) -> None:
    body = b"x" * 5000
    if declared:
        site.route("/x.csv", Reply(body=body))
    else:
        site.route("/x.csv", Reply(body=body, chunked=True))
    with fetcher(sleeps, max_bytes=2048) as http, pytest.raises(PayloadError) as caught:
        http.get(site.url("/x.csv"))
    assert "the response is larger than max_bytes (2,048 bytes; got at least" in str(caught.value)


def test_it_sends_validators_and_reports_not_modified(site: Site, sleeps: Sleeps) -> None:
    site.route("/x.csv", Reply(body=b"a\n", headers={"ETag": '"v1"',
                                                     "Last-Modified": "Wed, 31 Jan 2024 "
                                                                      "10:00:00 GMT"}))
    with fetcher(sleeps) as http:
        first = http.get(site.url("/x.csv"))
        second = http.get(site.url("/x.csv"), validators=first.validators)
    assert first.validators == Validators(etag='"v1"',
                                          last_modified="Wed, 31 Jan 2024 10:00:00 GMT")
    assert second.not_modified and second.body == b""
    assert site.requests[1].headers["if-none-match"] == '"v1"'
    assert site.requests[1].headers["if-modified-since"] == "Wed, 31 Jan 2024 10:00:00 GMT"


@pytest.mark.parametrize(("auth", "header", "expected"), [
    pytest.param({"type": "bearer", "token": "s3cret-token"}, "authorization",
                 "Bearer s3cret-token", id="bearer"),
    pytest.param({"type": "basic", "username": "ops", "password": "pa55word"}, "authorization",
                 "Basic " + base64.b64encode(b"ops:pa55word").decode(), id="basic"),
    pytest.param({"type": "header", "header": "X-API-Key", "value": "k3y-value"}, "x-api-key",
                 "k3y-value", id="header"),
])
def test_it_authenticates_from_secrets(site: Site, sleeps: Sleeps, auth: dict[str, str],
                                       header: str, expected: str) -> None:
    site.route("/x.csv", Reply(body=b"ok"))
    with fetcher(sleeps, auth=auth, headers={"X-Extra": "1"}) as http:
        http.get(site.url("/x.csv"))
    assert site.requests[0].headers[header] == expected
    assert site.requests[0].headers["x-extra"] == "1"


def test_it_refuses_hosts_outside_allowed_hosts_even_after_a_redirect(site: Site,
                                                                      sleeps: Sleeps) -> None:
    site.route("/moved", Reply(302, headers={"Location": "http://localhost:1/elsewhere"}))
    with fetcher(sleeps, allowed_hosts=["127.0.0.1"]) as http, \
            pytest.raises(FetchError) as caught:
        http.get(site.url("/moved"))
    assert str(caught.value) == ("source 'feed': host 'localhost' is not in allowed_hosts "
                                 "(127.0.0.1); add it if this URL is right")
    assert not caught.value.retryable


def test_it_verifies_tls_unless_told_not_to() -> None:
    assert options().verify_tls is True
    assert options(verify_tls=False).verify_tls is False


@pytest.mark.parametrize(("host", "allowed", "ok"), [
    pytest.param("data.police.uk", [], True, id="no-list-allows-all"),
    pytest.param("data.police.uk", ["data.police.uk"], True, id="exact"),
    pytest.param("files.london.gov.uk", ["*.london.gov.uk"], True, id="wildcard"),
    pytest.param("evil.example", ["*.london.gov.uk"], False, id="other"),
])
def test_it_matches_allowed_hosts(host: str, allowed: list[str], ok: bool) -> None:
    assert host_allowed(host, allowed) is ok


def test_it_keeps_credentials_and_query_strings_out_of_errors(site: Site,
                                                             sleeps: Sleeps) -> None:
    url = site.url("/missing.csv").replace("http://", "http://ops:pa55word@") + "?token=t0ken"
    with fetcher(sleeps) as http, pytest.raises(FetchError) as caught:
        http.get(url)
    message = str(caught.value)
    assert f"GET http://127.0.0.1:{site.port}/missing.csv: HTTP 404" in message
    assert "pa55word" not in message and "t0ken" not in message
