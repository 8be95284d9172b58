"""Every message links to the chart of its alert's month and to a pre-filled silence
form, built from ``server.external_url`` (issue #17), and says when a revision made the
alert fire; ``monitor.links`` builds the URLs the pages and messages share."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from monitor import links
from monitor.clock import FixedClock
from monitor.notify.channels import build_channels
from monitor.notify.config import ReceiverConfig
from monitor.notify.notification import Notification, NotifyAlert

NOW = datetime(2008, 8, 20, 9, tzinfo=UTC)
BASE = "https://kpi.example.org/monitor/"
CHART = "https://kpi.example.org/monitor/indicators/burglary/series/10e3e59220ee6126?at=2008-07"
CAUSE = "Jun-08 was revised 77.4 → 76.9"


def notification(value: float = 120.0, **annotations: str) -> Notification:
    alert = NotifyAlert(
        "a1", "BurglaryHigh",
        {"alertname": "BurglaryHigh", "area": 'North "A"', "indicator": "burglary",
         "severity": "warning"},
        {"summary": "Burglary high", "period": "Jul-08", "period_id": "2008-07",
         "series": "10e3e59220ee6126", "cause": CAUSE, **annotations},
        "firing", value, "Burglary is 120.", NOW)
    return Notification("alerts", "ops", "{}", {"alertname": "BurglaryHigh"}, (alert,), NOW,
                        "m1", "m1", BASE)


def silence_link(text: str) -> str:
    start = text.index(BASE.rstrip("/") + "/silences/new?")
    end = min(i for i in (text.find(c, start) for c in " \n\"<>|)'") if i > 0)
    return text[start:end].replace("&amp;", "&")


CHANNELS = pytest.mark.parametrize("kind, config", [
    ("file", {"path": "unused.log", "format": "text"}),
    ("console", {}),
    ("email", {"to": ["a@example.org"], "from": "m@example.org", "host": "localhost"}),
    ("slack", {"url": "https://hooks.example/x"}),
    ("teams", {"url": "https://teams.example/x"}),
    ("mattermost", {"url": "https://mm.example/x"}),
    ("webhook", {"url": "https://hook.example/x"}),
    ("alertmanager", {"url": "http://127.0.0.1:9093"}),
])


def rendered(kind: str, config: dict[str, Any], sent: Notification) -> str:
    """Return the message ``kind``'s default templates make of ``sent``, as text."""
    receiver = ReceiverConfig.model_validate({"name": "ops", kind: [config]})
    channel = build_channels(receiver, clock=FixedClock(NOW), timeout=5)[f"{kind}:0"]
    text = str(channel.render(sent).body)
    if kind == "email":  # both the text and the HTML part, decoded
        parsed = email.message_from_string(text, policy=email.policy.default)
        text = "\n".join(str(part.get_content()) for part in parsed.walk()
                         if part.get_content_maintype() == "text")
    return text.replace("\\u2192", "→").replace("\\/", "/")


@CHANNELS
def test_every_channel_carries_the_chart_the_silence_form_and_the_cause(
        kind: str, config: dict[str, Any]) -> None:
    text = rendered(kind, config, notification())
    assert CHART in text.replace("&amp;", "&"), text[:2000]
    query = parse_qs(urlparse(silence_link(text)).query)
    assert query["matcher"] == ['alertname="BurglaryHigh"', 'area="North \\"A\\""',
                                'indicator="burglary"']  # severity left out
    assert CAUSE in text


@CHANNELS
def test_every_channel_shows_the_value_in_the_unit_the_rules_published(
        kind: str, config: dict[str, Any]) -> None:
    """The ``value_text`` annotation (the page's "+0.6%") is the value a message shows;
    the raw 0.6 is left to the machine payloads' ``value`` annotation."""
    text = rendered(kind, config, notification(0.6, value_text="+0.6%"))
    assert "+0.6%" in text, text[:2000]
    if kind in ("webhook", "alertmanager"):  # payloads for programs: the annotations
        return
    assert not re.search(r"(?<![+\d.])0\.6(?!%)", text), text[:2000]
    # Without the annotation (a slope, a p-value): the plain number, as before.
    assert "120.0" in rendered(kind, config, notification(120.0))


def test_links_follow_the_contract() -> None:
    assert links.series_url("", "burglary rate", "f00", "2008-07") == \
        "/indicators/burglary%20rate/series/f00?at=2008-07"
    assert links.series_url("http://x/", "b", "f") == "http://x/indicators/b/series/f"
    assert links.silence_url("http://x", ['a="1"']) == "http://x/silences/new?matcher=a%3D%221%22"
    assert links.rule_url("", "BurglaryHigh") == "/rules#rule-BurglaryHigh"
    assert links.history_url("", rule="R", matchers=['a="1"'], since="2008-07") == \
        "/alerts/history?rule=R&match=a%3D%221%22&since=2008-07"
