"""Issue #17's suppressed state for an *inhibited* alert, on a real daemon: the API's
``status.inhibitedBy`` names the inhibiting alert, the Alerts page and ``/metrics`` show
it, the message the inhibition kept back is logged, counted and kept in the alert history,
and ``monitor alerts query --suppressed`` says what inhibits it. (The silenced side is
``test_http_silence_flow.py``.)

Data: ``burglary`` in North only, 120 in Jul-08. Two rules fire on it: ``BurglaryHigh``
(warning, above 100) and ``BurglaryVeryHigh`` (critical, above 110); an inhibit rule lets
a critical alert mute a warning one of the same area.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import tomli_w

from monitor.logs import LogfmtFormatter
from tests.http.conftest import Served, running
from tests.http.test_http_silence_flow import alerts_in, cli, deliver, write_csv
from tests.notify.loopback import LoopbackReceiver

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
      - alert: BurglaryVeryHigh
        indicator: burglary
        when:
          level: {above: 110}
        severity: critical
"""


@pytest.fixture(scope="module")
def hook() -> Iterator[LoopbackReceiver]:
    receiver = LoopbackReceiver()
    yield receiver
    receiver.close()


class Kept(logging.Handler):
    """Keeps the records the notifier logs from the daemon's start on (its first run may
    come before a test's ``caplog`` is in place)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def logged() -> Iterator[Kept]:
    kept = Kept()
    logger = logging.getLogger("monitor.notify.notifier")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(kept)
    yield kept
    logger.removeHandler(kept)
    logger.setLevel(level)


@pytest.fixture(scope="module")
def inhibited(tmp_path_factory: pytest.TempPathFactory, hook: LoopbackReceiver,
              logged: Kept) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("inhibit")
    (folder / "rules").mkdir()
    (folder / "rules" / "crime.yaml").write_text(RULES, encoding="utf-8")
    write_csv(folder / "crime.csv", {"North": 120})
    config = {
        "rules": {"paths": [str(folder / "rules")], "as_of": "2008-08"},
        "notify": {
            "route": {"receiver": "team", "group_by": ["alertname", "area"],
                      "group_wait": "0s", "group_interval": "1s", "repeat_interval": "24h"},
            "receivers": [{"name": "team", "webhook": [{"url": hook.url()}]}],
            "inhibit_rules": [{"source_matchers": ['severity="critical"'],
                               "target_matchers": ['severity="warning"'],
                               "equal": ["area"]}]},
        "sources": [{"name": "crime", "kind": "csv", "path": str(folder / "crime.csv"),
                     "layout": "long", "indicator_column": "indicator",
                     "labels": {"area": "area"}, "period_column": "period",
                     "value_column": "value", "interval": "1h"}],
    }
    path = folder / "crime.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    with running(path, folder) as served:
        yield served


def test_an_inhibited_alert_is_shown_suppressed_with_what_inhibits_it_and_its_message_is_logged(
        inhibited: Served, hook: LoopbackReceiver, logged: Kept) -> None:
    deliver(inhibited)
    assert hook.wait_for(1)
    by_rule = {a.rule: a for a in inhibited.snapshot().alerts}
    critical, warning = by_rule["BurglaryVeryHigh"], by_rule["BurglaryHigh"]

    # Only the critical alert reaches the receiver; the warning one is kept back, and that
    # is logged with the inhibiting alert, counted and kept in the history.
    assert [a["labels"]["alertname"] for a in alerts_in(hook)] == ["BurglaryVeryHigh"]
    lines = [LogfmtFormatter().format(r) for r in logged.records
             if r.getMessage() == "notification muted"]
    assert len(lines) == 1, lines
    assert "alert=BurglaryHigh" in lines[0] and f"inhibited_by={critical.fingerprint}" in lines[0]
    notifier = inhibited.app.notifier
    assert notifier is not None
    assert notifier.metrics.muted.labels("inhibited")._value.get() == 1
    episodes = inhibited.client().get("/api/v1/alerts/history",
                                      params={"rule": "BurglaryHigh"}).json()["episodes"]
    muted = [e for e in episodes[0]["events"] if e["kind"] == "muted"]
    assert [e["detail"]["inhibited_by"] for e in muted] == [[critical.fingerprint]]

    # The API, the Alerts page and /metrics show it suppressed by that alert.
    api = inhibited.client()
    status = {a["labels"]["alertname"]: a["status"]
              for a in api.get("/api/v1/alerts").json()["alerts"]}
    assert status["BurglaryHigh"] == {"state": "suppressed", "silencedBy": [],
                                      "inhibitedBy": [critical.fingerprint]}
    assert status["BurglaryVeryHigh"]["state"] == "active"
    page = api.get("/alerts").text
    row = page[page.index(f'data-alert="{warning.fingerprint}"'):]
    row = row[:row.index("</tr>")]
    assert 'data-suppressed="inhibited"' in row
    # …naming the inhibiting alert and linking to its row
    assert (f'inhibited by <a class="inhibitor" href="/alerts#alert-{critical.fingerprint}">'
            "BurglaryVeryHigh</a>") in row
    assert f'id="alert-{critical.fingerprint}"' in page
    assert ('monitor_alerts_suppressed{alertname="BurglaryHigh",by="inhibited"} 1'
            in api.get("/metrics").text)

    code, out, _ = cli(inhibited, "alerts", "query", "--suppressed")
    assert code == 0
    assert "BurglaryHigh" in out and "BurglaryVeryHigh" not in out
    assert f"inhibited by {critical.fingerprint}" in out



def test_alerts_query_lines_its_columns_up_whatever_the_names_length(inhibited: Served) -> None:
    """Names of different lengths (BurglaryHigh, BurglaryVeryHigh; the bundled example's
    run to 53 characters) keep the columns under their headings, as amtool's table does."""
    code, out, _ = cli(inhibited, "alerts", "query")
    assert code == 0
    header, *lines = out.splitlines()
    rows = [line for line in lines if line.startswith("firing")]
    assert len(rows) == 2
    assert {row.index("Jul-08") for row in rows} == {header.index("DATA")}
    assert {row.index("area=North") for row in rows} == {header.index("LABELS")}
    code, out, _ = cli(inhibited, "alerts", "query", "--history")
    assert code == 0
    header, *rows = out.splitlines()
    assert len(rows) == 2
    assert {row.index("firing") for row in rows} == {header.index("STATE")}
    assert {row.index("area=North") for row in rows} == {header.index("LABELS")}


def test_the_notifier_forgets_history_older_than_notify_history_retention(
        inhibited: Served, logged: Kept) -> None:
    """Last in this module: it moves the daemon's clock past the retention."""
    api = inhibited.client()
    kept = api.get("/api/v1/alerts/history").json()["episodes"]
    assert kept
    notifier = inhibited.app.notifier
    assert notifier is not None
    retention = inhibited.app.settings.notify.history_retention
    assert retention == 90 * 86400  # the default, as config.example.toml says
    assert notifier.prune_history(inhibited.clock.now() + timedelta(days=89)) == 0
    inhibited.clock.advance(timedelta(seconds=retention, days=1))
    notifier.tick()  # the scheduled job prunes (at most hourly) as it runs
    cutoff = inhibited.clock.now() - timedelta(seconds=retention)
    left = [e for ep in api.get("/api/v1/alerts/history").json()["episodes"]
            for e in ep["events"]]
    # What is left is what this tick did (the critical alert's repeat message), nothing older.
    assert [e["kind"] for e in left] == ["notified"]
    assert all(datetime.fromisoformat(e["at"]) >= cutoff for e in left)
    assert any(r.getMessage() == "alert history pruned" for r in logged.records)
