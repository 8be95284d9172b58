"""Issue #17 end to end, on a real daemon: a message links to the chart of its month and
to a pre-filled silence form; a silence created in headless Chromium from that link (a
real form submission) mutes the next real notification to a loopback webhook; the mute
is logged, counted and kept in the alert history; the history page and the API show it;
``monitor alerts query`` prints it.

A small data set of its own: ``burglary`` per area (North, South), monthly to Jul-08,
and one rule, ``BurglaryHigh`` (``level above 100``), so both areas fire at start.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import tomli_w

from monitor.cli import main
from monitor.model import AlertEvent
from tests.http.cdp import Browser
from tests.http.conftest import TOKEN, Served, running
from tests.notify.loopback import LoopbackReceiver

# The README's screenshots: `MONITOR_SCREENSHOTS=docs pytest tests/http/test_http_silence_flow.py`
SHOTS = os.environ.get("MONITOR_SCREENSHOTS")
PERIODS = [f"2008-{m:02d}" for m in range(1, 8)]
RULES = """
indicators:
  - id: burglary
    name: Residential burglary
    group: Acquisitive crime
    direction: down
    window: 1
    headline: level
    scorecard: true

groups:
  - name: crime
    rules:
      - alert: BurglaryHigh
        indicator: burglary
        when:
          level: {above: 100}
        severity: warning
        annotations:
          summary: "Burglary {{ value | number }} in {{ labels.area }}"
"""


def write_csv(path: Path, values: dict[str, int], periods: list[str] = PERIODS) -> None:
    lines = ["indicator,area,period,value"]
    for area, last in values.items():
        lines += [f"burglary,{area},{p},{last if p == periods[-1] else 90}" for p in periods]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_config(folder: Path, hook: str) -> Path:
    (folder / "rules").mkdir()
    (folder / "rules" / "crime.yaml").write_text(RULES, encoding="utf-8")
    write_csv(folder / "crime.csv", {"North": 120, "South": 130})
    config = {
        "rules": {"paths": [str(folder / "rules")], "as_of": "2008-08"},
        "notify": {
            "route": {"receiver": "team", "group_by": ["area"], "group_wait": "0s",
                      "group_interval": "1s", "repeat_interval": "24h"},
            "receivers": [{"name": "team", "webhook": [{"url": hook}]}]},
        "sources": [{"name": "crime", "kind": "csv", "path": str(folder / "crime.csv"),
                     "layout": "long", "indicator_column": "indicator",
                     "labels": {"area": "area"}, "period_column": "period",
                     "value_column": "value", "interval": "1h"}],
    }
    path = folder / "crime.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hook() -> Iterator[LoopbackReceiver]:
    receiver = LoopbackReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def crime(tmp_path_factory: pytest.TempPathFactory, hook: LoopbackReceiver
          ) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("crime")
    with running(write_config(folder, hook.url()), folder) as served:
        yield served


def deliver(served: Served) -> None:
    """Run the notifier now: claim the transitions, fill the outbox, send what is due."""
    notifier = served.app.notifier
    assert notifier is not None
    notifier.process_transitions()
    notifier.dispatch()


def repoll(served: Served, values: dict[str, int], periods: list[str] = PERIODS) -> None:
    """Change the data, poll it a minute later and evaluate: new transitions."""
    write_csv(served.config.parent / "crime.csv", values, periods)
    served.clock.advance(timedelta(minutes=1))
    assert served.app.poller is not None and served.app.rules is not None
    served.app.poller.poll("crime")
    served.app.rules.evaluate()


def arrived(hook: LoopbackReceiver, start: int, status: str, area: str,
            timeout: float = 10.0) -> bool:
    """True once a request from ``start`` on carries a ``status`` alert for ``area``."""
    def seen() -> bool:
        return any(a["status"] == status and a["labels"].get("area") == area
                   for r in hook.requests[start:] for a in r.payload["alerts"])
    with hook.arrived:
        return hook.arrived.wait_for(seen, timeout)


def alerts_in(hook: LoopbackReceiver) -> list[dict[str, Any]]:
    return [a for r in hook.requests for a in r.payload["alerts"]]


def cli(served: Served, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--config", str(served.config)], clock=served.clock)
    return code, out.getvalue(), err.getvalue()


def test_a_silence_made_from_a_message_link_in_the_browser_mutes_the_next_notification(
        crime: Served, hook: LoopbackReceiver, tmp_path: Path) -> None:
    shots = Path(SHOTS) if SHOTS else tmp_path
    deliver(crime)
    assert hook.wait_for(2), "both areas' firing messages reach the receiver"
    fired = {a["labels"]["area"]: a for a in alerts_in(hook)}
    assert set(fired) == {"North", "South"}
    north = fired["North"]["annotations"]

    # The message links to the series chart with its month, built on server.external_url.
    chart = north["series_url"]
    assert chart.startswith(crime.url + "/indicators/burglary/series/")
    assert parse_qs(urlparse(chart).query) == {"at": ["2008-07"]}
    page = httpx.get(chart, timeout=30)
    assert page.status_code == 200
    assert "Jul-08" in page.text or "2008-07" in page.text
    assert 'data-alert="' in page.text and "Alert timeline" in page.text

    # …and to the silence form, pre-filled with the alert's labels.
    link = north["silence_url"]
    assert link.startswith(crime.url + "/silences/new?matcher=")
    with Browser() as browser:
        form = browser.open(link)
        assert 'area="North"' in form and 'alertname="BurglaryHigh"' in form
        preview = re.search(r'<section id="preview">.*?</section>', form, re.S)
        assert preview is not None and "Would mute now: 1 alert" in preview.group(0)
        assert preview.group(0).count("data-alert=") == 1
        browser.screenshot(shots / "silence-form.png")
        assert (shots / "silence-form.png").read_bytes().startswith(b"\x89PNG")
        done = browser.submit({"created_by": "analyst@example.org",
                               "comment": "North's figures are being re-keyed",
                               "duration": "2h", "token": TOKEN}, "#create")
    created = re.search(r'id="created">Silence <code>([0-9a-f-]+)</code>', done)
    assert created is not None, done[-3000:]
    silence_id = created.group(1)

    # The alerts page, the API and /metrics show North suppressed by that silence.
    api = crime.client()
    listed = {a["labels"]["area"]: a for a in api.get("/api/v1/alerts").json()["alerts"]}
    assert listed["North"]["status"] == {"state": "suppressed", "silencedBy": [silence_id],
                                         "inhibitedBy": []}
    assert listed["South"]["status"]["state"] == "active"
    assert 'data-suppressed="silenced"' in api.get("/alerts").text
    metrics = api.get("/metrics").text
    assert 'monitor_alerts_suppressed{alertname="BurglaryHigh",by="silenced"} 1' in metrics

    # The next real notifications: both areas resolve; North's message is muted.
    before = len(hook.requests)
    repoll(crime, {"North": 80, "South": 70})
    deliver(crime)
    assert hook.wait_for(before + 1)
    later = alerts_in(hook)[len(fired):]
    assert [(a["labels"]["area"], a["status"]) for a in later] == [("South", "resolved")]
    notifier = crime.app.notifier
    assert notifier is not None
    assert notifier.metrics.muted.labels("silenced")._value.get() >= 1

    # The history keeps the episode: fired, notified, resolved, muted.
    history = api.get("/api/v1/alerts/history",
                      params={"match": 'area="North"'}).json()["episodes"]
    assert len(history) == 1
    kinds = [(e["kind"], e["to_state"]) for e in history[0]["events"]]
    assert kinds == [("transition", "firing"), ("notified", ""), ("transition", "resolved"),
                     ("muted", "")]
    assert history[0]["events"][-1]["detail"]["silenced_by"] == [silence_id]
    code, out, _ = cli(crime, "alerts", "query", "--history", 'area="North"')
    assert code == 0 and "BurglaryHigh" in out and re.search(r"\s1\s+1\s+area=North", out)

    # The series page's timeline: North's episode, with its muted message; not South's.
    timeline = httpx.get(chart, timeout=30).text
    timeline = timeline[timeline.index('<section class="timeline"'):]
    timeline = timeline[:timeline.index("</section>")]
    assert re.findall(r'<li class="episode" data-alert="([^"]+)"', timeline) == \
        [history[0]["alert_id"]]
    assert "1 notified · 1 muted" in timeline and "silenced by" in timeline

    with Browser() as browser:
        page = browser.open(f"{crime.url}/alerts/history")
        assert page.count('<tr data-alert="') == 2
        browser.evaluate("document.querySelectorAll('details')[1].open = true")
        browser.screenshot(shots / "alert-history.png")


def test_the_api_previews_and_warns_and_a_kpi_silence_ends_when_the_next_period_lands(
        crime: Served, hook: LoopbackReceiver) -> None:
    repoll(crime, {"North": 150, "South": 140})
    deliver(crime)
    admin = crime.client(TOKEN)
    preview = admin.get("/api/v1/silences/preview", params={"match": 'aera="South"'}).json()
    assert preview["alerts"] == []
    assert any("'aera'; did you mean area?" in w for w in preview["warnings"])
    assert any("match no current alert" in w for w in preview["warnings"])
    typo = admin.post("/api/v1/silences", json={
        "matchers": [{"name": "aera", "value": "South"}], "duration": "1m",
        "created_by": "analyst", "comment": "a typo is made, and said"})
    assert typo.status_code == 201  # a silence made ahead of an alert is legitimate
    assert typo.json()["warnings"] == preview["warnings"]
    admin.delete(f"/api/v1/silences/{typo.json()['id']}")

    body = {"matchers": [{"name": "area", "value": "South"}], "until_next_period": True,
            "created_by": "analyst", "comment": "until the Aug-08 figure lands"}
    made = admin.post("/api/v1/silences", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["until_period"] == "2008-07" and made.json()["warnings"] == []
    schema = admin.get("/api/openapi.json").json()
    assert "/api/v1/alerts/history" in schema["paths"]
    assert "until_period" in schema["components"]["schemas"]["SilenceOut"]["properties"]

    code, out, _ = cli(crime, "alerts", "query", "--suppressed")
    assert code == 0
    assert re.search(r"firing suppressed\s+BurglaryHigh\s+Jul-08 .*area=South", out), out
    assert "silenced by " + made.json()["id"] in out
    code, out, _ = cli(crime, "alerts", "query", "--active")
    assert code == 0 and "area=South" not in out

    # Aug-08 lands: South is about a newer period now; the silence ends and it is told.
    before = len(hook.requests)
    repoll(crime, {"North": 150, "South": 145}, [*PERIODS, "2008-08"])
    deliver(crime)
    states = {s["id"]: s["state"] for s in admin.get("/api/v1/silences").json()["silences"]}
    assert states[made.json()["id"]] == "expired"
    code, out, err = cli(crime, "silence", "add", "alertnme=Foo", "-m", "typo", "-a", "me")
    assert code == 0 and "did you mean alertname?" in err and "match no current alert" in err
    assert len(hook.requests) >= before


def test_an_alert_a_revision_made_fire_says_so_in_its_message_and_history(
        crime: Served, hook: LoopbackReceiver) -> None:
    periods = [*PERIODS, "2008-08"]
    repoll(crime, {"North": 150, "South": 70}, periods)  # Aug-08 revised down: resolves
    deliver(crime)
    # The receiver records a request on its own thread: wait for the resolved message to be
    # recorded before counting, and for the firing one after (not for "any next request").
    assert arrived(hook, 0, "resolved", "South")
    before = len(hook.requests)
    repoll(crime, {"North": 150, "South": 160}, periods)  # …and up again: fires, no new month
    deliver(crime)
    assert arrived(hook, before, "firing", "South")
    fired = [a for r in hook.requests[before:] for a in r.payload["alerts"]
             if a["status"] == "firing"]
    assert [a["labels"]["area"] for a in fired] == ["South"]
    assert fired[0]["annotations"]["cause"] == "Aug-08 was revised 70.0 → 160.0"
    episodes = crime.client().get("/api/v1/alerts/history", params={
        "match": 'area="South"', "rule": "BurglaryHigh"}).json()["episodes"]
    assert episodes[0]["events"][0]["detail"]["cause"] == "Aug-08 was revised 70.0 → 160.0"


def test_silences_are_extended_and_expired_from_the_page_and_the_api(crime: Served) -> None:
    admin = crime.client(TOKEN)
    made = admin.post("/api/v1/silences", json={
        "matchers": [{"name": "area", "value": "North"}], "duration": "1h",
        "created_by": "analyst", "comment": "checking"}).json()
    longer = admin.post(f"/api/v1/silences/{made['id']}/extend", json={"duration": "3d"})
    assert longer.status_code == 200
    assert longer.json()["ends_at"] > made["ends_at"]
    row = f"#silence-{made['id']}"

    def ends_at() -> str:
        return next(s["ends_at"] for s in admin.get("/api/v1/silences").json()["silences"]
                    if s["id"] == made["id"])

    with Browser() as browser:  # the forms on the silences page, as a person uses them
        browser.open(f"{crime.url}/silences")
        wrong = browser.submit({"token": "nope"}, "button", within=f"{row} form[action$=expire]")
        assert "a valid bearer token is required" in wrong
        assert ends_at() == longer.json()["ends_at"]
        browser.open(f"{crime.url}/silences")
        extended = browser.submit({"duration": "5d", "token": TOKEN}, "button",
                                  within=f"{row} form[action$=extend]")
        assert f"Silence {made['id']} extended to" in extended
        assert ends_at() > longer.json()["ends_at"]
        expired = browser.submit({"token": TOKEN}, "button",
                                 within=f"{row} form[action$=expire]")
        assert f"Silence {made['id']} expired." in expired
    states = {s["id"]: s["state"] for s in admin.get("/api/v1/silences").json()["silences"]}
    assert states[made["id"]] == "expired"
    form = {"content-type": "application/x-www-form-urlencoded"}
    bad = crime.client().post("/silences/new", headers=form, content=(
        f"matchers=area%3D%22North%22&until=duration&duration=soon&created_by=me&comment=x"
        f"&action=create&token={TOKEN}").encode())
    assert bad.status_code == 400 and "duration:" in bad.text


def test_the_silence_form_warns_about_a_label_no_rule_produces(crime: Served) -> None:
    page = crime.client().get("/silences/new", params={"matcher": 'aera="North"'}).text
    warnings = re.findall(r"<p [^>]*data-warning>([^<]*)</p>", page)
    assert any("no rule produces the label &#39;aera&#39;; did you mean area?" in w
               for w in warnings), warnings
    assert any("match no current alert" in w for w in warnings)


def test_the_issue_17_endpoints_answer_as_their_openapi_description_says(crime: Served) -> None:
    """Real answers of the alerts, history, preview and silence endpoints, each checked
    against the schema the daemon publishes (schemathesis' conformance checks: status
    code, content type, body schema)."""
    import schemathesis
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{crime.url}/api/openapi.json")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    made = crime.client(TOKEN).post("/api/v1/silences", json={
        "matchers": [{"name": "area", "value": "North"}], "duration": "1h",
        "created_by": "analyst", "comment": "schema"}).json()
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("/api/v1/alerts", "GET", {}),
        ("/api/v1/alerts", "GET", {"query": {"match": 'area="North"'}}),
        ("/api/v1/alerts/history", "GET", {"query": {"rule": "BurglaryHigh",
                                                     "since": "2008-07"}}),
        ("/api/v1/silences/preview", "GET", {"query": {"match": 'aera="North"'}}),
        ("/api/v1/silences", "GET", {}),
        ("/api/v1/silences", "POST", {"headers": auth, "body": {
            "matchers": [{"name": "area", "value": "South"}], "until_next_period": True,
            "created_by": "analyst", "comment": "until the next figure"}}),
        ("/api/v1/silences/{silence_id}/extend", "POST", {
            "headers": auth, "path_parameters": {"silence_id": made["id"]},
            "body": {"duration": "2h"}}),
        ("/api/v1/silences/{silence_id}", "DELETE", {
            "headers": auth, "path_parameters": {"silence_id": made["id"]}}),
        ("/api/v1/alerts/history", "GET", {"query": {"since": "soon"}}),  # a 400
    ]
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    for path, method, parts in calls:
        operation = schema[path][method]
        case = operation.Case(**parts)
        response = case.call(base_url=crime.url, headers=parts.get("headers"))
        assert response.status_code < 500, (path, response.text)
        case.validate_response(response, checks=checks)


def test_a_kpi_silence_is_made_from_the_page(crime: Served) -> None:
    """The form's "until the next period's data arrives", chosen in Chromium: the silence
    lasts until data after the newest period of the alerts it mutes."""
    admin = crime.client(TOKEN)
    newest = max(a.annotations["period_id"] for a in crime.snapshot().alerts
                 if a.labels.get("area") == "North")
    with Browser() as browser:
        form = browser.open(f'{crime.url}/silences/new?matcher=area%3D%22North%22')
        word = datetime.strptime(newest, "%Y-%m").strftime("%b-%y")
        assert f"until the next period's data arrives (the figure after {word})" in form
        browser.evaluate("document.querySelector('input[name=until][value=next_period]')"
                         ".checked = true")
        done = browser.submit({"created_by": "analyst", "comment": "until the next figure",
                               "token": TOKEN}, "#create")
    created = re.search(r'id="created">Silence <code>([0-9a-f-]+)</code>', done)
    assert created is not None, done[-3000:]
    made = next(s for s in admin.get("/api/v1/silences").json()["silences"]
                if s["id"] == created.group(1))
    assert made["until_period"] == newest and made["state"] == "active"
    admin.delete(f"/api/v1/silences/{made['id']}")


def test_monitor_silence_add_until_next_period(crime: Served) -> None:
    """The CLI's KPI silence: ``--until-next-period`` records the newest period of the
    alerts it mutes, and says so; with no current alert to wait past it refuses."""
    newest = max(a.annotations["period_id"] for a in crime.snapshot().alerts
                 if a.labels.get("area") == "South")
    code, out, err = cli(crime, "silence", "add", 'area="South"', "--until-next-period",
                         "-m", "until the next figure", "-a", "analyst", "--json")
    assert code == 0, err
    made = json.loads(out)
    assert made["until_period"] == newest
    code, out, _ = cli(crime, "silence", "list")
    assert f"until data after {newest}" in out
    crime.client(TOKEN).delete(f"/api/v1/silences/{made['id']}")
    code, _, err = cli(crime, "silence", "add", 'area="Nowhere"', "--until-next-period",
                       "-m", "x", "-a", "analyst")
    assert code != 0 and "--until-next-period: no current alert" in err


def test_a_series_page_lists_its_episode_behind_10000_newer_events_of_other_series(
        tmp_path: Path) -> None:
    """The series page, the history API and the history page read one series' history
    from the store by its labels: an episode older than the newest 10,000 events of
    every series (the history's default read) is still shown."""
    receiver = LoopbackReceiver()  # this daemon's messages stay out of the module's hook
    try:
        with running(write_config(tmp_path, receiver.url()), tmp_path) as own:
            north = next(a for a in own.snapshot().alerts if a.labels.get("area") == "North")
            store = own.app.store
            assert store is not None
            at = own.clock.now() + timedelta(minutes=1)
            store.history.record([AlertEvent(
                f"other{i}", "BurglaryHigh",
                {"alertname": "BurglaryHigh", "indicator": "burglary", "area": f"Area{i}"},
                "transition", at, "inactive", "pending") for i in range(10_001)])
            page = httpx.get(f"{own.url}/indicators/burglary/series/"
                             f"{north.annotations['series']}", timeout=30).text
            timeline = page[page.index('<section class="timeline"'):]
            timeline = timeline[:timeline.index("</section>")]
            assert re.findall(r'<li class="episode" data-alert="([^"]+)"', timeline) == \
                [north.fingerprint]
            api = own.client(TOKEN)
            for match in ('area="North"', 'area=~"Nor.*"'):  # the database's, then Python's
                found = api.get("/api/v1/alerts/history", params={"match": match}).json()
                assert [ep["alert_id"] for ep in found["episodes"]] == [north.fingerprint]
                listed = api.get("/alerts/history", params={"match": match}).text
                assert re.findall(r'<tr data-alert="([^"]+)"', listed) == [north.fingerprint]
    finally:
        receiver.close()


def test_monitor_silence_add_knows_the_series_labels_with_no_alert_firing(
        tmp_path: Path) -> None:
    """``monitor silence add`` warns about the labels the API and the silence form warn
    about: with no alert firing, a series label (``area``) is known; a typo is not."""
    receiver = LoopbackReceiver()
    try:
        config = write_config(tmp_path, receiver.url())
        write_csv(tmp_path / "crime.csv", {"North": 90, "South": 90})  # nothing fires
        with running(config, tmp_path) as quiet:
            assert not [a for a in quiet.snapshot().alerts if a.state.value == "firing"]
            code, _, err = cli(quiet, "silence", "add", 'area="North"', "-m", "re-keying",
                               "-a", "analyst")
            assert code == 0, err
            assert "no rule produces" not in err
            assert "the matchers match no current alert" in err
            code, _, err = cli(quiet, "silence", "add", 'alertnme="Foo"', "-m", "typo",
                               "-a", "analyst")
            assert code == 0, err
            assert "matcher alertnme=\"Foo\": no rule produces the label 'alertnme'; " \
                "did you mean alertname?" in err
            # The same answers as the API's preview.
            api = quiet.client(TOKEN)
            for matcher, warned in (('area="North"', False), ('alertnme="Foo"', True)):
                preview = api.get("/api/v1/silences/preview",
                                  params={"match": matcher}).json()
                assert any("no rule produces" in w for w in preview["warnings"]) is warned
    finally:
        receiver.close()
