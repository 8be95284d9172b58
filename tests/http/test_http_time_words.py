"""Two times and one word per status, on every surface.

The bundled example replays July 2008 on a daemon whose clock says today: every surface
must tell *the period the data is about* ("data to Jul-08") from *when the daemon
evaluated* ("evaluated 2s ago", "firing since <today>"), and call each status by one
word — "not rated", "no data", "baseline" — on the pages, in messages, the API, the
metrics, Grafana and ``monitor eval``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.cli import main
from monitor.model import Status, fingerprint
from monitor.notify.notification import Notification, NotifyAlert
from monitor.notify.templates import alert_context, compile_template, context, default_template
from tests.conftest import REPO
from tests.http.conftest import Served
from tests.http.dom import parse

DATA_TO = "Jul-08"  # the example's latest month with data (rules.as_of = 2008-07)


class Times(HTMLParser):
    """Collects the text of every element marked ``data-time`` (``data``/``evaluated``),
    per table row when inside one."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []  # (row key, kind, text)
        self._row = ""
        self._open: list[list[str]] = []  # [kind, text] of the elements being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr":
            self._row = a.get("data-alert", "")
        if "data-time" in a:
            self._open.append([a["data-time"], ""])
        elif self._open:
            self._open.append(["", ""])

    def handle_endtag(self, tag: str) -> None:
        if not self._open:
            return
        kind, text = self._open.pop()
        if kind:
            self.found.append((self._row, kind, " ".join(text.split())))
        elif self._open:
            self._open[-1][1] += text

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][1] += data


def times(html: str) -> list[tuple[str, str, str]]:
    parser = Times()
    parser.feed(html)
    return parser.found


def evaluated_at(served: Served) -> datetime:
    at = served.snapshot().evaluated_at
    assert at is not None
    return at


# --- pages -----------------------------------------------------------------------------


def test_the_scorecard_says_what_the_data_is_about_and_when_it_was_evaluated(
        mps: Served) -> None:
    html = httpx.get(f"{mps.url}/scorecard").text
    found = {kind: text for _, kind, text in times(html)}
    assert found["data"] == f"Data to {DATA_TO}"
    when = evaluated_at(mps)
    assert when.date() == mps.clock.now().date() != datetime(2008, 7, 31).date()
    assert re.fullmatch(rf"evaluated \d+[smhd] ago \({when:%Y-%m-%d %H:%M} UTC\)",
                        found["evaluated"]), found["evaluated"]
    assert "Latest evaluation" not in html and "2008-07-31" not in html


def test_the_alerts_page_shows_each_alerts_data_period_beside_the_daemons_time(
        mps: Served) -> None:
    html = httpx.get(f"{mps.url}/alerts").text
    periods = {alert: text for alert, kind, text in times(html) if kind == "data"}
    active = {alert: text for alert, kind, text in times(html) if kind == "evaluated"}
    by_id = {a.fingerprint: a for a in mps.snapshot().alerts}
    assert periods and periods.keys() == active.keys()
    with mps.client() as client:
        for fp, period in periods.items():
            alert = by_id[fp]
            if "indicator" not in alert.labels:  # a milestone: its time is its due date
                assert period == "—", alert.rule
                continue
            series = {k: v for k, v in alert.labels.items()
                      if k not in ("alertname", "severity", "indicator")}
            detail = client.get(f"/api/v1/indicators/{alert.labels['indicator']}/series/"
                                f"{fingerprint(series)}").json()
            assert period == detail["period_label"], alert.rule  # Jun-08 for the surveys
            assert re.fullmatch(r"\d+[smhd] ago", active[fp]), active[fp]
    assert set(periods.values()) >= {"Jun-08", "Mar-08", DATA_TO}


def test_the_tiles_and_badges_say_not_rated_for_rows_with_a_value_and_no_status(
        london: Served) -> None:
    html = httpx.get(f"{london.url}/scorecard", params={"view": "all",
                                                        "per_indicator": 500}).text
    statuses = [next(s for s in Status if s.code == code)
                for frame in london.snapshot().frames.values()
                for code in frame.status.tolist()]
    tiles = {status: (count, word) for status, count, word in re.findall(
        r'data-count-status="(\w+)">\s*<span class="tile-n">(\d+)</span>\s*'
        r'<span class="tile-label"><span aria-hidden="true">[^<]*</span> ([^<]+)</span>', html)}
    assert tiles["not_rated"] == (str(statuses.count(Status.NOT_RATED)), "Not rated")
    assert tiles["no_data"] == (str(statuses.count(Status.NO_DATA)), "No data")
    assert statuses.count(Status.NOT_RATED) > 0  # London sets no targets: rated by nobody
    rows = parse(html).rows
    for row in rows:
        word = " ".join(row["rag"].split()[1:])
        assert word == Status(row["status"]).word.capitalize(), row
    assert any(r["status"] == "not_rated" and r["value"].strip() not in ("", "—") for r in rows)


# --- the API -----------------------------------------------------------------------------


def test_the_api_gives_the_data_period_and_the_evaluation_time_apart(mps: Served) -> None:
    with mps.client() as client:
        listed = client.get("/api/v1/alerts").json()
        series = client.get("/api/v1/series", params={"limit": 1}).json()
    when = evaluated_at(mps)
    for body in (listed, series):
        assert body["data_to"] == DATA_TO
        assert body["data_as_of"].startswith("2008-07-31T")
        assert datetime.fromisoformat(body["evaluated_at"]) == when
        assert "at" not in body
    (satisfaction,) = [a for a in listed["alerts"]
                       if a["rule"] == "VictimSatisfactionBelowTarget"]
    assert satisfaction["period"] == "Jun-08"  # 12 months to Jun-08: the survey's lag
    assert datetime.fromisoformat(satisfaction["active_since"]).year == when.year


# --- metrics and Grafana -----------------------------------------------------------------


def test_two_metrics_say_what_the_data_is_about_and_when_it_was_evaluated(
        mps: Served) -> None:
    text = httpx.get(f"{mps.url}/metrics").text
    samples = dict(re.findall(r"^(monitor_indicator_\w+_timestamp_seconds) (\S+)$", text,
                              re.MULTILINE))
    assert float(samples["monitor_indicator_data_period_timestamp_seconds"]) == \
        datetime(2008, 7, 1, tzinfo=UTC).timestamp()
    assert float(samples["monitor_indicator_evaluated_timestamp_seconds"]) == \
        evaluated_at(mps).timestamp()
    assert "monitor_indicator_snapshot_timestamp_seconds" not in text
    assert "# HELP monitor_indicator_status RAG status of the series' latest value: -2 not " \
           "rated, -1 no data, 0 baseline, 1 green, 2 amber, 3 red." in text


def test_the_dashboard_has_a_panel_for_each_time() -> None:
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "kpi-monitor.json")
                           .read_text(encoding="utf-8"))
    panels = {p["title"]: p for p in dashboard["panels"]}
    data, evaluated = panels["Data to"], panels["Evaluated"]
    assert data["targets"][0]["expr"] == \
        "max(monitor_indicator_data_period_timestamp_seconds) * 1000"
    assert data["fieldConfig"]["defaults"]["unit"] == "time:YYYY-MM"
    assert evaluated["targets"][0]["expr"] == \
        "time() - max(monitor_indicator_evaluated_timestamp_seconds)"
    assert evaluated["fieldConfig"]["defaults"]["unit"] == "s"
    top = sorted((p["gridPos"]["x"], p["gridPos"]["w"]) for p in dashboard["panels"]
                 if p["gridPos"]["y"] == 1)
    assert sum(w for _, w in top) == 24 and all(
        a + w == b for (a, w), (b, _) in pairwise(top))


# --- notifications -----------------------------------------------------------------------


def test_the_delivered_notification_gives_the_data_period_beside_firing_since(
        mps: Served) -> None:
    log = mps.config.parent / "notifications-local-0.log"
    notifier = mps.app.notifier
    assert notifier is not None
    # The daemon's clock stands still: step it past the group wait, as time would.
    later = mps.clock.now() + timedelta(seconds=5)
    notifier.flush(later)
    notifier.dispatch(later)
    text = log.read_text()
    section = text.split("VictimSatisfactionBelowTarget", 1)[1]
    today = f"{evaluated_at(mps):%Y-%m-%d}"
    assert re.search(rf"value 77\.0% \(data to Jun-08\), firing since {today} \d\d:\d\d UTC",
                     section), section[:600]


def notification(status: str = "firing") -> Notification:
    fired = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    alert = NotifyAlert("a1", "VictimSatisfactionBelowTarget",
                        {"alertname": "VictimSatisfactionBelowTarget"},
                        {"summary": "Victim satisfaction 77.0%", "period": "Jun-08"},
                        status, 77.0, "Victim satisfaction is 77.0% …", fired,
                        None if status == "firing" else fired)
    return Notification("alerts", "local", "k", {}, (alert,), fired, "m1", "m1")


@pytest.mark.parametrize("status", ["firing", "resolved"])
@pytest.mark.parametrize(("name", "fmt"), [
    pytest.param("text", "text", id="text"),
    pytest.param("email_text", "text", id="email-text"),
    pytest.param("email_html", "html", id="email-html"),
    pytest.param("markdown_alert", "markdown", id="markdown-teams"),
    pytest.param("slack_alert", "slack", id="slack"),
    pytest.param("mattermost_alert", "mattermost", id="mattermost"),
])
def test_every_default_template_says_what_the_value_is_about(name: str, fmt: str,
                                                             status: str) -> None:
    note = notification(status)
    ctx: dict[str, Any] = context(note)
    if name.endswith("_alert"):
        ctx = {**ctx, "alert": alert_context(note.alerts[0])}
    rendered = compile_template(fmt, default_template(name)).render(**ctx)
    assert "data to Jun-08" in rendered
    assert "2026-12-05 09:00 UTC" in rendered  # and the daemon's own time, apart


def test_the_digest_says_statuses_in_words() -> None:
    from monitor.notify.notification import Digest, DigestItem

    digest = Digest("weekly", "Weekly scorecard", None, (
        DigestItem("robbery", "f1", "no_data", "not_rated", "Not rated: …"),))
    note = Notification("digest", "local", "k", {}, (), datetime(2026, 12, 5, tzinfo=UTC),
                        "m1", "m1", digest=digest)
    for name, fmt in (("text", "text"), ("summary", "text"), ("email_html", "html")):
        rendered = compile_template(fmt, default_template(name)).render(**context(note))
        assert "no data" in rendered and "not rated" in rendered, name
        assert "not_rated" not in rendered, name


# --- monitor eval ------------------------------------------------------------------------


def test_monitor_eval_prints_the_status_words(london: Served, tmp_path: Path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["eval", "--config", str(london.config), "--at", london.as_of()],
                    clock=london.clock)
    assert code == 0
    table = out.getvalue().split("\n\nAlerts as of", 1)[0]
    assert " NOT RATED\n" in table
    assert "UNKNOWN" not in table and "NOT_RATED" not in table
