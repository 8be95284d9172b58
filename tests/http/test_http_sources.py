"""The sources page and ``/api/v1/sources``: what the store holds from each source, the rows
its last poll rejected and when the poller runs it next, on real daemons."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.http import panel as data
from tests.http.conftest import Served, read_csv_rows


def stored_per_source(served: Served) -> dict[str, int]:
    """Count the observations and milestones in the daemon's SQLite file, per source."""
    with sqlite3.connect(served.store_path) as db:
        rows = db.execute("SELECT source, COUNT(*) FROM observation GROUP BY source "
                          "UNION ALL SELECT source, COUNT(*) FROM milestone GROUP BY source"
                          ).fetchall()
    out: dict[str, int] = {}
    for source, count in rows:
        out[source] = out.get(source, 0) + count
    return out


def page_rows(html: str) -> dict[str, dict[str, str]]:
    """Return, per source row of the sources page, its health and data attributes."""
    out = {}
    for match in re.finditer(r'<tr data-source="([^"]+)" data-health="([^"]+)">(.*?)</tr>',
                             html, re.S):
        cells = dict(re.findall(r'data-(observations|rejected|next-poll)="([^"]*)"',
                                match.group(3)))
        out[match.group(1)] = {"health": match.group(2), **cells}
    return out


def api_sources(served: Served) -> dict[str, dict[str, Any]]:
    with served.client() as client:
        return {s["name"]: s for s in client.get("/api/v1/sources").json()["sources"]}


def test_the_page_and_the_api_show_the_observations_the_store_holds(london: Served) -> None:
    stored = stored_per_source(london)
    listed = api_sources(london)
    shown = page_rows(httpx.get(f"{london.url}/sources").text)
    names = [s.name for s in london.app.settings.sources]
    assert list(listed) == names and list(shown) == names
    assert {n: listed[n]["observations"] for n in names} == {n: stored[n] for n in names}
    assert {n: int(shown[n]["observations"]) for n in names} == {n: stored[n] for n in names}
    assert sum(stored.values()) > 40_000  # sixteen years of boroughs, not 0
    # The London totals file: one observation per filled cell (empty cells are no data).
    total = next(s for s in london.app.settings.sources if s.name == "london-total")
    _header, *rows = read_csv_rows(Path(getattr(total, "path", "")))
    assert listed["london-total"]["observations"] == sum(1 for r in rows for v in r[2:] if v)
    assert {s["health"] for s in listed.values()} == {"ok"}


def test_rejected_rows_are_those_of_the_last_poll_that_read_data(panel: Served) -> None:
    header, *rows = read_csv_rows(panel.config.parent / "panel.csv")
    value = header.index("value")
    numeric = [r for r in rows if re.fullmatch(r"-?\d+(\.\d+)?", r[value])]
    listed = api_sources(panel)
    shown = page_rows(httpx.get(f"{panel.url}/sources").text)
    assert listed["panel"]["rejected"] == len(rows) - len(numeric) == data.REJECTED_ROWS
    assert shown["panel"]["rejected"] == str(data.REJECTED_ROWS)
    assert listed["panel"]["observations"] == len(numeric) == stored_per_source(panel)["panel"]


def test_a_failing_source_is_bad_with_its_error_and_nothing_stored(panel: Served) -> None:
    broken = api_sources(panel)["broken"]
    assert broken["health"] == "bad"
    assert "missing.csv" in broken["last_error"]
    assert broken["consecutive_failures"] == 1
    assert (broken["observations"], broken["last_success"]) == (0, None)
    assert page_rows(httpx.get(f"{panel.url}/sources").text)["broken"]["health"] == "bad"


def test_the_next_poll_is_the_poller_schedule(panel: Served) -> None:
    assert panel.app.scheduler is not None
    listed = api_sources(panel)
    shown = page_rows(httpx.get(f"{panel.url}/sources").text)
    for name, interval in (("panel", timedelta(hours=1)), ("broken", timedelta(hours=2))):
        job = panel.app.scheduler.get_job(f"source:{name}")
        assert datetime.fromisoformat(listed[name]["next_poll"]) == job.next_run_time
        assert datetime.fromisoformat(shown[name]["next-poll"]) == job.next_run_time
        assert timedelta(0) < job.next_run_time - panel.clock.now() <= interval


def test_a_source_backing_off_polls_next_after_its_backoff(panel: Served) -> None:
    """The second failure in a row waits two schedule periods (``failure_backoff``): the
    scheduled runs before then are skipped, so the next poll is the first one after."""
    assert panel.app.poller is not None
    result = panel.app.poller.poll("broken")
    assert result.outcome == "failed"
    listed = api_sources(panel)["broken"]
    failures = listed["consecutive_failures"]
    assert failures == 2
    every = timedelta(hours=2)
    backoff_ends = result.finished_at + every * 2 ** (failures - 1)
    next_poll = datetime.fromisoformat(listed["next_poll"])
    assert backoff_ends <= next_poll < backoff_ends + every
