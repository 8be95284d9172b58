"""Data values are escaped for every message format: an alert whose labels, annotations
and explanation carry markup, mentions, links and template syntax renders as text in
Slack, Teams, Mattermost, email (HTML and headers), the webhook and the file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.notify.channels import build_channels
from monitor.notify.config import ReceiverConfig
from monitor.notify.notification import Notification, NotifyAlert

NOW = datetime(2008, 7, 31, 12, tzinfo=UTC)
HOSTILE = {
    "script": '<script>alert("x")</script>',
    "ping": "<!channel> <!here> @here @channel @all",
    "link": "[click](http://evil.example) ![i](http://evil.example/i.png) <http://evil|x>",
    "markup": "*bold* _it_ ~strike~ `code` # heading",
    "template": "{{ 7*7 }}{% raw %}",
    "card": "${jndi:ldap://evil} {{DATE(2008-07-31T00:00:00Z)}}",
}


def notification() -> Notification:
    labels = {"alertname": "Hostile", "borough": HOSTILE["script"], **HOSTILE}
    alert = NotifyAlert("a1", "Hostile", labels,
                        {"summary": " ".join(HOSTILE.values()),
                         "description": HOSTILE["link"]},
                        "firing", 12.5, HOSTILE["ping"] + " " + HOSTILE["markup"], NOW, None,
                        NOW)
    return Notification(kind="alerts", receiver="ops", group_key="g",
                        group_labels={"alertname": "Hostile", "borough": HOSTILE["script"]},
                        alerts=(alert,), created_at=NOW, message_id="m1", thread_id="m1",
                        external_url="http://127.0.0.1:9108")


def rendered(kind: str, extra: dict[str, Any] | None = None) -> Any:
    integration: dict[str, Any] = {"url": "http://127.0.0.1:9/hook"}
    if kind == "email":
        integration = {"to": ["ops@example.org"], "host": "127.0.0.1"}
    if kind == "file":
        integration = {"path": "/dev/null", **(extra or {})}
    receiver = ReceiverConfig.model_validate({"name": "ops", kind: [integration]})
    [channel] = build_channels(receiver).values()
    message = channel.render(notification())
    assert message.template_error is None
    return message


def strings(value: Any) -> list[str]:
    """Every string inside a JSON-like value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def test_slack_text_has_no_live_markup_mention_or_link() -> None:
    texts = "\n".join(strings(rendered("slack").body))
    for raw in ("<script>", "<!channel>", "<!here>", "<http://evil|x>"):
        assert raw not in texts
    assert "&lt;script&gt;" in texts and "&lt;!channel&gt;" in texts


@pytest.mark.parametrize("kind", ["teams", "mattermost"])
def test_markdown_formats_show_data_literally(kind: str) -> None:
    texts = "\n".join(strings(rendered(kind).body))
    assert "[click](http://evil.example)" not in texts
    assert "\\[click\\]" in texts and "\\*bold\\*" in texts
    if kind == "mattermost":
        assert "@here" not in texts.replace("@\u2060here", "")
        assert "@channel" not in texts.replace("@\u2060channel", "")
    if kind == "teams":  # Adaptive Card template functions stay text
        assert "{{DATE(" not in texts


def test_email_html_is_escaped_and_headers_stay_one_line() -> None:
    message = rendered("email").body
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a href="http://evil.example"' not in html
    for name, value in message.items():
        assert "\r" not in value and "\n" not in value.replace("\n ", ""), name


def test_the_webhook_json_carries_the_values_exactly() -> None:
    body = rendered("webhook").body
    decoded = json.loads(json.dumps(body))
    assert decoded["alerts"][0]["labels"]["script"] == HOSTILE["script"]
    assert decoded["alerts"][0]["annotations"]["summary"] == " ".join(HOSTILE.values())


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_data_is_never_template_source(fmt: str) -> None:
    body = rendered("file", {"format": fmt}).body
    assert "{{ 7*7 }}" in body and "49" not in body


@pytest.mark.parametrize(("text", "shown"), [
    pytest.param("Barnet\r\nBcc: x@y", "Barnet\\r\\nBcc: x@y", id="crlf"),
    pytest.param("a\tb\x00c\x1b[31md\x7f", "a\\tb\\x00c\\x1b[31md\\x7f", id="c0-and-del"),
    pytest.param("a\x85b\u2028c\u2029d", "a\\x85b\\u2028c\\u2029d", id="unicode-breaks"),
    pytest.param("Camden C:\\dir «ok»", "Camden C:\\dir «ok»", id="printable-untouched"),
])
def test_one_line_shows_control_characters_escaped(text: str, shown: str) -> None:
    from monitor.textsafe import one_line

    assert one_line(text) == shown
    assert len(one_line(text).splitlines()) == 1


def test_a_logfmt_line_stays_one_line_whatever_a_value_holds() -> None:
    import io
    import logging

    from monitor import logs

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    logs.setup("info", "logfmt", stream=stream)
    try:
        logs.get_logger("test").warning("row rejected", label="Barnet\rBcc:x@y",
                                         other="a\x1b[2Jb")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    [line] = stream.getvalue().splitlines()
    assert 'label="Barnet\\rBcc:x@y"' in line and 'other="a\\u001b[2Jb"' in line
