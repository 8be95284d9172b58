"""SQL sources: a query against a real database (SQLite here, and the test PostgreSQL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url

from monitor.clock import FixedClock
from monitor.errors import PayloadError
from monitor.model import month
from monitor.sources.base import SourceDeps
from monitor.sources.config import SqlSource
from monitor.sources.poller import Poller
from monitor.sources.sql import SqlKind
from monitor.store import Store
from monitor.store.sourcestate import Validators

QUERY = ("SELECT kpi, borough, month, offences, detections FROM performance "
         "WHERE month >= :since ORDER BY month")


def warehouse(path: Path) -> str:
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE performance (kpi TEXT, borough TEXT, month TEXT, offences INTEGER,
                                  detections INTEGER);
        INSERT INTO performance VALUES
            ('robbery', 'Camden', '2008-04-01', 120, 30),
            ('robbery', 'Camden', '2008-05-01', 110, 28),
            ('robbery', 'Hackney', '2008-04-01', 150, NULL),
            ('robbery', 'Hackney', '2008-05-01', -1, 3),
            ('robbery', 'Hackney', '2007-01-01', 1, 1);
    """)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def config(url: str, **overrides: Any) -> SqlSource:
    data = {"name": "warehouse", "kind": "sql", "url": url, "query": QUERY,
            "params": {"since": "2008-04-01"}, "indicator_column": "kpi",
            "labels": {"borough": "borough"}, "period_column": "month",
            "value_column": "offences"}
    return SqlSource.model_validate(data | overrides)


def test_it_polls_a_query_and_rejects_bad_rows(sqlite_store: Store, tmp_path: Path,
                                               clock: FixedClock, deps: SourceDeps) -> None:
    poller = Poller(sqlite_store, [config(warehouse(tmp_path / "dw.db"))], clock,
                    CollectorRegistry(), deps=deps)
    result = poller.poll("warehouse")
    assert (result.outcome, result.rows, result.stored.inserted) == ("partial", 4, 3)
    [problem] = result.problems
    assert (problem.row, problem.field, problem.reason) == (4, "offences", "negative")
    block = sqlite_store.observations.read(["robbery"])["robbery"]
    assert sorted(zip(block.period.tolist(), block.value.tolist(), strict=True)) == [
        (month("2008-04"), 120.0), (month("2008-04"), 150.0), (month("2008-05"), 110.0)]
    assert poller.poll("warehouse").outcome == "unchanged"


def test_it_fails_when_the_query_no_longer_returns_a_mapped_column(tmp_path: Path) -> None:
    source = SqlKind(config(warehouse(tmp_path / "dw.db"), query="SELECT kpi, borough, month "
                            "AS period_start, offences FROM performance"))
    try:
        payload = source.fetch(Validators())
        with pytest.raises(PayloadError, match=r"query of source 'warehouse' columns: schema "
                                            r"drift: column 'month' \(period_column\) is missing"):
            source.parse(payload)
    finally:
        source.close()


def test_it_reports_a_failing_query_as_a_fetch_error(sqlite_store: Store, tmp_path: Path,
                                                     clock: FixedClock,
                                                     deps: SourceDeps) -> None:
    poller = Poller(sqlite_store, [config(warehouse(tmp_path / "dw.db"),
                                          query="SELECT * FROM nowhere")],
                    clock, CollectorRegistry(), deps=deps)
    result = poller.poll("warehouse")
    assert result.outcome == "failed"
    assert result.error == ("source 'warehouse': the query failed: no such table: nowhere; "
                            "check the query and the database")


@pytest.mark.postgres
def test_it_queries_postgresql_with_dates_and_decimals(postgres_url: str, sqlite_store: Store,
                                                       clock: FixedClock,
                                                       deps: SourceDeps) -> None:
    dsn = make_url(postgres_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE performance (kpi text, borough text, month date, "
                     "offences numeric(10,1), detections int)")
        conn.execute("INSERT INTO performance VALUES ('robbery', 'Camden', '2008-04-01', "
                     "120.0, 30), ('robbery', 'Camden', '2008-05-01', 110.5, 28)")
    poller = Poller(sqlite_store, [config(postgres_url, params={"since": "2008-01-01"},
                                          denominator_column="detections")],
                    clock, CollectorRegistry(), deps=deps)
    result = poller.poll("warehouse")
    assert (result.outcome, result.stored.inserted) == ("success", 2), result.error
    history = sqlite_store.observations.history("robbery", {"borough": "Camden"})
    assert [(p.period, p.value, p.denominator) for p in history] == [
        (month("2008-04"), 120.0, 30.0), (month("2008-05"), 110.5, 28.0)]
    poller.close()
