"""Polling end to end: real loopback servers, real stores, faults that keep the old data."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry

from monitor.clock import FixedClock
from monitor.errors import ConfigError, SourceError
from monitor.model import month
from monitor.sources.base import SourceDeps
from monitor.sources.config import CsvSource, JsonSource, MilestonesSource, SourceBase
from monitor.sources.poller import Poller, failure_backoff
from monitor.store import Store
from tests.sources.sourcekit import (
    EXAMPLE_DATA,
    LONDON_2008,
    NOW,
    Reply,
    Site,
    Sleeps,
    metric,
)

LONDON_LABELS = {"borough": "Borough", "major": "Major Category", "minor": "Minor Category"}
SMALL = b"indicator,force,period,value\nrobbery,Met,2008-04,5\nrobbery,Met,2008-05,6\n"


def london(url: str, **overrides: Any) -> CsvSource:
    return CsvSource.model_validate({"name": "london", "kind": "csv", "url": url,
                                     "layout": "wide", "indicator": "recorded_crime",
                                     "labels": LONDON_LABELS, "retries": 0} | overrides)


def small(url: str, name: str = "kpis", **overrides: Any) -> CsvSource:
    return CsvSource.model_validate({"name": name, "kind": "csv", "url": url,
                                     "indicator_column": "indicator",
                                     "labels": {"force": "force"}, "retries": 1,
                                     "timeout": "0.3s"} | overrides)


def poller(store: Store, configs: list[SourceBase], clock: FixedClock, deps: SourceDeps,
           registry: CollectorRegistry) -> Poller:
    return Poller(store, configs, clock, registry, deps=deps)


def test_it_polls_the_london_file_then_skips_it_unchanged_then_keeps_one_revision(
        store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    body = LONDON_2008.read_bytes()
    site.route("/london.csv", Reply(body=body, headers={"ETag": '"2016-12"'},
                                    content_type="text/csv"))
    p = poller(store, [london(site.url("/london.csv"))], clock, deps, registry)

    first = p.poll("london")
    assert first.outcome == "success", first.error
    assert (first.stored.inserted, first.stored.series_created) == (1056 * 108, 1056)

    clock.advance(timedelta(hours=1))
    second = p.poll("london")
    assert second.outcome == "unchanged"
    assert site.requests[-1].headers["if-none-match"] == '"2016-12"'

    lines = body.decode().splitlines()
    cells = lines[7].split(",")
    cells[50] = str(int(cells[50]) + 1)
    lines[7] = ",".join(cells)
    site.route("/london.csv", Reply(body=("\n".join(lines) + "\n").encode(),
                                    headers={"ETag": '"2016-12b"'}))
    clock.advance(timedelta(hours=1))
    third = p.poll("london")
    assert (third.outcome, third.stored.inserted, third.stored.revised) == ("success", 0, 1)
    assert store.observations.count() == 1056 * 108
    assert len(store.observations.revisions()) == 1

    assert metric(registry, "monitor_source_polls_total", source="london",
                  outcome="success") == 2
    assert metric(registry, "monitor_source_polls_total", source="london",
                  outcome="unchanged") == 1
    assert metric(registry, "monitor_source_revisions_total", source="london") == 1
    assert metric(registry, "monitor_source_observations_total", source="london",
                  result="inserted") == 1056 * 108
    assert metric(registry, "monitor_source_last_success_timestamp_seconds",
                  source="london") == third.finished_at.timestamp()
    [health] = p.health()
    assert (health.last_success_at, health.consecutive_failures) == (clock.now(), 0)


def test_it_skips_an_unchanged_body_by_its_hash_when_the_server_sends_no_validators(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    site.route("/kpis.csv", Reply(body=SMALL))
    p = poller(sqlite_store, [small(site.url("/kpis.csv"))], clock, deps, registry)
    assert p.poll("kpis").outcome == "success"
    assert p.poll("kpis").outcome == "unchanged"


def test_it_rereads_unchanged_data_after_the_mapping_changes(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    site.route("/kpis.csv", Reply(body=SMALL, headers={"ETag": '"v1"'}))
    p = poller(sqlite_store, [small(site.url("/kpis.csv"))], clock, deps, registry)
    assert p.poll("kpis").outcome == "success"
    p.update([small(site.url("/kpis.csv"), static_labels={"area": "London"})])
    result = p.poll("kpis")
    assert (result.outcome, result.stored.series_created) == ("success", 1)
    assert "if-none-match" not in site.requests[-1].headers


@pytest.mark.parametrize(("kind", "bad", "expected"), [
    pytest.param("csv", Reply(body=b"<!DOCTYPE html><html><title>Service Unavailable</title>",
                              content_type="text/html"),
                 "returned an HTML page ('Service Unavailable') where CSV was expected",
                 id="csv-html-page"),
    pytest.param("json", Reply(body=b"<html><head><title>Error 502</title></head></html>"),
                 "returned an HTML page ('Error 502') where JSON was expected",
                 id="json-html-page-with-200"),
    pytest.param("csv", Reply(body=SMALL[:-9]), "the body ends in the middle of a row",
                 id="truncated-csv"),
    pytest.param("csv", Reply(body=SMALL, truncate_to=40),
                 "the connection broke mid-response (truncated body?)",
                 id="truncated-transfer"),
    pytest.param("csv", Reply(body=SMALL.replace(b"force", b"force_name")),
                 "header (line 1): schema drift: column 'force' (labels.force) is missing",
                 id="changed-header"),
    pytest.param("json", Reply(body=b'{"data": [{"kpi": "robbery", "force": "Met", '
                                    b'"month": "2008-04", "count": 5}]}'),
                 "data[0]: schema drift: no field 'value' (value_column)",
                 id="json-field-renamed"),
    pytest.param("csv", Reply(500, b"oops"), "HTTP 500: oops (after 2 attempts)", id="http-500"),
    pytest.param("csv", Reply(body=SMALL, delay=1.0), "no answer within 0.3s (timeout)",
                 id="slow"),
    pytest.param("csv", Reply(body=b"indicator,force,period,value\nrobbery,Met,2008-04,x\n"
                                   b"robbery,Met,2008-05,y\nrobbery,Met,2008-06,7\n"),
                 "2 of 3 rows rejected (67%, more than max_reject_ratio 50%)",
                 id="mostly-rejected"),
])
def test_it_fails_a_broken_payload_and_keeps_the_previous_data(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry, kind: str, bad: Reply, expected: str) -> None:
    check_broken_payload(sqlite_store, site, clock, deps, registry, kind, bad, expected)


def test_it_keeps_the_previous_data_on_both_stores_when_the_header_drifts(
        store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    check_broken_payload(store, site, clock, deps, registry, "csv",
                         Reply(body=SMALL.replace(b"period", b"month")),
                         "schema drift: column 'period' (period_column) is missing")


def check_broken_payload(store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
                         registry: CollectorRegistry, kind: str, bad: Reply,
                         expected: str) -> None:
    if kind == "csv":
        config: SourceBase = small(site.url("/feed"))
        good = Reply(body=SMALL)
    else:
        config = JsonSource.model_validate({
            "name": "kpis", "kind": "json", "url": site.url("/feed"), "records": "data",
            "indicator_column": "kpi", "labels": {"force": "force"}, "period_column": "month",
            "retries": 1, "timeout": "0.3s"})
        good = Reply(body=b'{"data": [{"kpi": "robbery", "force": "Met", "month": "2008-04", '
                          b'"value": 5}, {"kpi": "robbery", "force": "Met", '
                          b'"month": "2008-05", "value": 6}]}', content_type="application/json")
    site.route("/feed", good, bad)
    p = poller(store, [config], clock, deps, registry)
    assert p.poll("kpis").outcome == "success"
    clock.advance(timedelta(hours=1))

    result = p.poll("kpis")

    assert result.outcome == "failed"
    assert result.error.startswith("source 'kpis'")
    assert expected in result.error
    assert [pt.value for pt in store.observations.history("robbery", {"force": "Met"})] == \
        [5.0, 6.0]
    [health] = p.health()
    assert (health.consecutive_failures, health.last_error) == (1, result.error)
    assert health.last_success_at == NOW
    assert metric(registry, "monitor_source_polls_total", source="kpis", outcome="failed") == 1
    assert metric(registry, "monitor_source_consecutive_failures", source="kpis") == 1


def test_it_retries_a_failing_server_within_one_poll(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry, sleeps: Sleeps) -> None:
    site.route("/kpis.csv", Reply(502, b"bad gateway"), Reply(body=SMALL))
    p = poller(sqlite_store, [small(site.url("/kpis.csv"))], clock, deps, registry)
    assert p.poll("kpis").outcome == "success"
    assert site.hits("/kpis.csv") == 2 and len(sleeps.waits) == 1


def test_it_logs_and_counts_every_rejected_row(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry, caplog: pytest.LogCaptureFixture) -> None:
    body = (b"indicator,force,period,value\nrobbery,Met,2008-04,5\nrobbery,Met,2008-05,-2\n"
            b"robbery,Met,2008-06,seven\nrobbery,Met,2008-07,8\nrobbery,Met,2008-08,9\n")
    site.route("/kpis.csv", Reply(body=body))
    p = poller(sqlite_store, [small(site.url("/kpis.csv"))], clock, deps, registry)
    with caplog.at_level(logging.WARNING, logger="monitor.sources.poller"):
        result = p.poll("kpis")
    assert (result.outcome, result.rejected, result.stored.inserted) == ("partial", 2, 3)
    logged = [r.fields for r in caplog.records if r.getMessage() == "row rejected"]  # type: ignore[attr-defined]
    assert logged == [
        {"source": "kpis", "row": 3, "field": "value", "reason": "negative",
         "error": "-2 is negative; counts cannot be (set allow_negative = true for values "
                  "that can)"},
        {"source": "kpis", "row": 4, "field": "value", "reason": "non_numeric",
         "error": "'seven' is not a number"},
    ]
    for reason in ("negative", "non_numeric"):
        assert metric(registry, "monitor_source_rows_rejected_total", source="kpis",
                      reason=reason) == 1
    assert metric(registry, "monitor_source_rows_rejected_total", source="kpis",
                  reason="duplicate_period") == 0
    assert metric(registry, "monitor_source_polls_total", source="kpis", outcome="partial") == 1


def test_it_keeps_polling_the_other_sources_when_one_fails(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    site.route("/kpis.csv", Reply(body=SMALL))
    p = poller(sqlite_store, [small(site.url("/gone.csv"), name="broken"),
                              small(site.url("/kpis.csv"))], clock, deps, registry)
    results = {r.source: r.outcome for r in p.poll_all()}
    assert results == {"broken": "failed", "kpis": "success"}
    assert {h.source: h.consecutive_failures for h in p.health()} == {"broken": 1, "kpis": 0}


def test_it_marks_the_last_periods_provisional_by_rule(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    site.route("/kpis.csv", Reply(body=SMALL + b"robbery,Met,2008-06,7\n"))
    p = poller(sqlite_store, [small(site.url("/kpis.csv"), provisional_last=2)], clock, deps,
               registry)
    p.poll("kpis")
    history = sqlite_store.observations.history("robbery", {"force": "Met"})
    assert [(pt.period, pt.provisional) for pt in history] == [
        (month("2008-04"), False), (month("2008-05"), True), (month("2008-06"), True)]


def test_it_backfills_from_a_local_file_with_the_sources_mapping(
        store: Store, tmp_path: Path, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    p = poller(store, [london("https://data.london.gov.uk/none.csv")], clock, deps, registry)
    result = p.ingest_file("london", LONDON_2008)
    assert (result.outcome, result.stored.inserted) == ("success", 1056 * 108)
    again = p.ingest_file("london", LONDON_2008)
    assert (again.stored.inserted, again.stored.unchanged) == (0, 1056 * 108)
    assert store.source_state.validators("london").etag == ""
    missing = p.ingest_file("london", tmp_path / "nope.csv")
    assert missing.outcome == "failed"
    assert "cannot read" in missing.error


def test_it_ingests_the_example_indicators_and_milestones(
        store: Store, clock: FixedClock, deps: SourceDeps, registry: CollectorRegistry) -> None:
    indicators = CsvSource.model_validate({
        "name": "scorecard", "kind": "csv", "path": str(EXAMPLE_DATA / "indicators.csv"),
        "indicator_column": "indicator", "labels": {"force": "force"},
        "denominator_column": "denominator", "provisional_column": "provisional"})
    plan_yaml = MilestonesSource.model_validate({
        "name": "ct-plan", "kind": "milestones", "path": str(EXAMPLE_DATA / "ct-milestones.yaml"),
        "static_labels": {"plan": "counter-terrorism"}})
    plan_csv = MilestonesSource.model_validate({
        "name": "ct-plan-csv", "kind": "milestones",
        "path": str(EXAMPLE_DATA / "ct-milestones.csv")})
    p = poller(store, [indicators, plan_yaml, plan_csv], clock, deps, registry)
    results = {r.source: r for r in p.poll_all()}
    assert {name: r.outcome for name, r in results.items()} == {
        "scorecard": "success", "ct-plan": "success", "ct-plan-csv": "success"}
    assert results["scorecard"].stored.inserted == 3576
    assert "robbery" in store.observations.read(["robbery"])
    from_yaml = store.observations.milestones("ct-plan")
    from_csv = store.observations.milestones("ct-plan-csv")
    assert len(from_yaml) == len(from_csv) == 12
    assert [(m.id, m.due, m.status, m.completed) for m in from_yaml] == \
        [(m.id, m.due, m.status, m.completed) for m in from_csv]
    assert dict(from_yaml[0].labels) == {"plan": "counter-terrorism"}
    assert p.poll("ct-plan").outcome == "unchanged"


def test_it_schedules_one_job_per_enabled_source_and_drops_removed_ones(
        sqlite_store: Store, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    every = small("https://example.org/a.csv", name="every", interval="15m", jitter="30s")
    daily = small("https://example.org/b.csv", name="daily", cron="0 6 * * 1-5")
    off = small("https://example.org/c.csv", name="off", enabled=False)
    scheduler = BackgroundScheduler(timezone="UTC")
    p = poller(sqlite_store, [every, daily, off], clock, deps, registry)
    assert p.schedule(scheduler) == ["source:every", "source:daily"]
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"source:every", "source:daily"}
    interval = jobs["source:every"]
    assert interval.trigger.interval == timedelta(minutes=15)
    assert interval.trigger.jitter == 30
    assert (interval.coalesce, interval.max_instances, interval.misfire_grace_time) == (
        True, 1, None)
    assert str(jobs["source:daily"].trigger) == \
        "cron[month='*', day='*', day_of_week='mon-fri', hour='6', minute='0']"
    p.update([daily])
    assert [job.id for job in scheduler.get_jobs()] == ["source:daily"]


def test_it_backs_off_a_failing_source_between_scheduled_polls(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    p = poller(sqlite_store, [small(site.url("/gone.csv"), interval="1m")], clock, deps,
               registry)
    outcomes = []
    for _ in range(6):
        result = p.scheduled_poll("kpis")
        outcomes.append(result.outcome if result else "skipped")
        clock.advance(timedelta(minutes=1))
    assert outcomes == ["failed", "failed", "skipped", "failed", "skipped", "skipped"]
    assert p.poll("kpis").outcome == "failed"  # a manual poll does not wait


@pytest.mark.parametrize(("failures", "every", "expected"), [
    pytest.param(1, 60.0, 0.0, id="first-failure"),
    pytest.param(2, 60.0, 120.0, id="doubles"),
    pytest.param(5, 60.0, 960.0, id="keeps-doubling"),
    pytest.param(20, 60.0, 6 * 3600.0, id="capped"),
    pytest.param(3, 86400.0, 86400.0, id="cap-at-least-the-period"),
])
def test_it_doubles_the_failure_backoff_up_to_a_cap(failures: int, every: float,
                                                    expected: float) -> None:
    assert failure_backoff(failures, every) == expected


def test_it_refuses_unknown_and_duplicated_source_names(
        sqlite_store: Store, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    with pytest.raises(ConfigError, match="source name 'kpis' is used by 2 sources"):
        poller(sqlite_store, [small("https://a.org/x"), small("https://a.org/y")], clock, deps,
               registry)
    p = poller(sqlite_store, [small("https://a.org/x")], clock, deps, registry)
    with pytest.raises(SourceError, match=r"no source named 'kpi' \(configured: kpis\)"):
        p.poll("kpi")


def test_it_polls_on_schedule_only_the_sources_this_replica_owns(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    site.route("/kpis.csv", Reply(body=SMALL))
    owned = {"mine"}
    p = Poller(sqlite_store, [small(site.url("/kpis.csv"), name="mine"),
                              small(site.url("/kpis.csv"), name="theirs")], clock, registry,
               deps=deps, owns=lambda name: name in owned)
    assert [p.scheduled_poll(name) is not None for name in ("mine", "theirs")] == [True, False]
    owned.add("theirs")  # a shard taken over
    result = p.scheduled_poll("theirs")
    assert result is not None and result.outcome == "success"


def test_it_forgets_failure_backoff_when_the_clock_jumps(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    p = poller(sqlite_store, [small(site.url("/gone.csv"), interval="1m")], clock, deps,
               registry)
    p.scheduled_poll("kpis")
    p.scheduled_poll("kpis")
    assert p.scheduled_poll("kpis") is None  # backing off
    p.clock_jumped()
    result = p.scheduled_poll("kpis")
    assert result is not None and result.outcome == "failed"


EMPTY_CASES = [
    pytest.param("csv", b"indicator,force,period,value\n", {},
                 "empty payload: no rows (a header alone, an empty list or an empty result)",
                 id="csv-header-only"),
    pytest.param("json", b'{"data": []}', {},
                 "empty payload: no rows (a header alone, an empty list or an empty result)",
                 id="json-empty-list"),
    pytest.param("csv", b"indicator,force,period,value\nburglary,Met,2008-04,5\n",
                 {"indicators": {"robbery": "robbery"}, "unmapped": "skip"},
                 "empty payload: every row (1) was left out by the source's filters",
                 id="csv-every-row-filtered-out"),
]


@pytest.mark.parametrize(("kind", "empty", "options", "expected"), EMPTY_CASES)
def test_an_empty_payload_warns_then_fails_and_the_source_turns_stale_and_failing(
        store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry, kind: str, empty: bytes, options: dict[str, Any],
        expected: str) -> None:
    from monitor.rules.sourcehealth import judge

    if kind == "csv":
        config: SourceBase = small(site.url("/feed"), **options)
        good = Reply(body=SMALL)
    else:
        config = JsonSource.model_validate({
            "name": "kpis", "kind": "json", "url": site.url("/feed"), "records": "data",
            "indicator_column": "kpi", "labels": {"force": "force"}, "period_column": "month"})
        good = Reply(body=b'{"data": [{"kpi": "robbery", "force": "Met", "month": "2008-04", '
                          b'"value": 5}]}', content_type="application/json")
    site.route("/feed", good)
    p = poller(store, [config], clock, deps, registry)
    assert p.poll("kpis").outcome == "success"
    stored = store.observations.count()
    validators = store.source_state.validators("kpis")
    site.route("/feed", Reply(body=empty))
    failures, verdicts = [], []
    for _ in range(5):  # hourly, as the source's interval says
        clock.advance(timedelta(hours=1))
        result = p.poll("kpis")
        assert (result.outcome, result.ok) == ("empty", False)
        assert result.error.startswith(f"source 'kpis': {site.url('/feed')}: {expected}")
        assert "nothing is stored and the previous data is kept" in result.error
        [health] = p.health()
        failures.append(health.consecutive_failures)
        verdict = judge(config, health, clock.now())
        verdicts.append((verdict.stale, verdict.failing))
        assert health.last_success_at == NOW  # an empty payload is not a success
    assert failures == [0, 0, 1, 2, 3]  # from the third empty payload in a row, failed polls
    assert verdicts == [(False, False), (False, False), (False, False), (True, False),
                        (True, True)]
    assert store.observations.count() == stored
    assert store.source_state.validators("kpis") == validators  # read again next time
    assert [r.outcome for r in store.source_state.polls("kpis")] == ["empty"] * 5 + ["success"]
    assert metric(registry, "monitor_source_polls_total", source="kpis", outcome="empty") == 5
    assert metric(registry, "monitor_source_consecutive_failures", source="kpis") == 3
    site.route("/feed", good)
    clock.advance(timedelta(hours=1))
    assert p.poll("kpis").outcome in ("success", "unchanged")
    [health] = p.health()
    assert (health.consecutive_failures, health.last_success_at) == (0, clock.now())


def test_empty_payloads_zero_accepts_an_empty_payload_as_a_success(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry) -> None:
    site.route("/feed", Reply(body=b"indicator,force,period,value\n"))
    p = poller(sqlite_store, [small(site.url("/feed"), empty_payloads=0)], clock, deps,
               registry)
    assert p.poll("kpis").outcome == "success"
    [health] = p.health()
    assert health.healthy


@pytest.mark.parametrize(("body", "outcome", "expected"), [
    pytest.param(b"indicator,force,2008-04,2008-05,2008-06\nrobbery,Met,x,y,z\n"
                 b"robbery,Brent,1,2,3\nrobbery,Barnet,1,2,3\n", "partial",
                 "3 rows, 6 observations: 6 new, 0 revised, 0 updated, 0 unchanged, "
                 "2 new series, 1 row rejected (3 values)", id="one-bad-row-of-three"),
    pytest.param(b"indicator,force,2008-04,2008-05\nrobbery,Met,nan,inf\n", "failed",
                 "1 of 1 rows rejected (100%, more than max_reject_ratio 50%)",
                 id="nan-inf"),
])
def test_the_reject_ratio_counts_rows_not_values(
        sqlite_store: Store, site: Site, clock: FixedClock, deps: SourceDeps,
        registry: CollectorRegistry, body: bytes, outcome: str, expected: str) -> None:
    site.route("/wide.csv", Reply(body=body))
    config = CsvSource.model_validate({
        "name": "wide", "kind": "csv", "url": site.url("/wide.csv"), "layout": "wide",
        "indicator_column": "indicator", "labels": {"force": "force"},
        "period_columns": r"^\d{4}-\d{2}$"})
    result = poller(sqlite_store, [config], clock, deps, registry).poll("wide")
    assert result.outcome == outcome
    assert expected in result.summary()
    if outcome == "partial":
        assert (result.rejected, result.rejected_values, len(result.problems)) == (1, 3, 3)
        assert metric(registry, "monitor_source_rows_rejected_total", source="wide",
                      reason="non_numeric") == 3  # each bad value is still reported
