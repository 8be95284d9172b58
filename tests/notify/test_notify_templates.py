"""Templates: per-format escaping, strict undefined, the sandbox, the plain fallback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import ConfigError
from monitor.notify.channels import CHANNELS, build_channels
from monitor.notify.config import ReceiverConfig
from monitor.notify.notification import Notification, NotifyAlert
from monitor.notify.templates import (
    escape_markdown,
    escape_mattermost,
    escape_slack,
    fallback_text,
)
from monitor.settings import load

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
HOSTILE = "<!channel> @here *bold* [x](http://evil) & {{DATE(2017-02-14T06:00:00Z)}}"


def notification(borough: str = "Camden", status: str = "firing") -> Notification:
    labels = {"alertname": "BurglaryRising", "borough": borough, "severity": "warning"}
    alert = NotifyAlert("a1", "BurglaryRising", labels,
                        {"summary": f"Burglary up in {borough}"}, status, 6.1,
                        f"Burglary in {borough} is up 6.1%", NOW,
                        NOW if status == "resolved" else None)
    return Notification("alerts", "ops", '{}:{alertname="BurglaryRising"}',
                        {"alertname": "BurglaryRising"}, (alert,), NOW, "m1", "m1",
                        "http://monitor.example")


@pytest.mark.parametrize(("escape", "text", "expected"), [
    pytest.param(escape_slack, "<!channel> & <@U123>", "&lt;!channel&gt; &amp; &lt;@U123&gt;",
                 id="slack"),
    pytest.param(escape_markdown, "*a* _b_ [c](d) `e` <f> {{g}}",
                 r"\*a\* \_b\_ \[c\](d) \`e\` \<f\> \{\{g\}\}", id="markdown-inline"),
    pytest.param(escape_markdown, "# title\n- item\n1. first\nUp 6.1%",
                 "\\# title\n\\- item\n1\\. first\nUp 6.1%", id="markdown-line-starts"),
    pytest.param(escape_mattermost, "@channel <!here>", "@\u2060channel \\<!here\\>",
                 id="mattermost-mentions"),
])
def test_it_escapes_each_format(escape: Any, text: str, expected: str) -> None:
    assert escape(text) == expected


def channel(kind: str, templates: dict[str, str] | None = None) -> Any:
    config: dict[str, Any] = {"url": "http://127.0.0.1:1/x"}
    if kind == "email":
        config = {"to": ["ops@example.org"]}
    elif kind == "alertmanager":
        config = {"url": "http://127.0.0.1:1"}
    elif kind == "file":
        config = {"path": "/tmp/unused.log"}
    elif kind == "console":
        config = {}
    if templates:
        config["templates"] = templates
    receiver = ReceiverConfig.model_validate({"name": "ops", kind: [config]})
    return next(iter(build_channels(receiver).values()))


@pytest.mark.parametrize("kind", ["slack", "teams", "mattermost", "email"])
def test_a_borough_named_channel_pings_nobody(kind: str) -> None:
    message = channel(kind).render(notification(HOSTILE))
    text = message.preview if kind != "email" else message.body.get_body(("html",)).get_content()
    assert "<!channel>" not in text
    if kind == "mattermost":  # the only one of these where a bare @here is a mention
        assert "@here" not in text and "@\u2060here" in json.loads(text)["text"]
    if kind == "email":
        assert "&lt;!channel&gt;" in text
    if kind == "teams":
        assert "{{DATE(" not in text


def test_slack_text_keeps_template_markup_but_escapes_data() -> None:
    message = channel("slack").render(notification("<b>&"))
    sections = [b["text"]["text"] for b in message.body["blocks"] if b["type"] == "section"]
    assert any(s.startswith(":red_circle: *Burglary up in &lt;b&gt;&amp;*") for s in sections)


@pytest.mark.parametrize("kind", ["slack", "teams", "mattermost", "email", "file", "console"])
def test_a_template_error_at_send_time_still_delivers_a_plain_body(
        kind: str, caplog: pytest.LogCaptureFixture) -> None:
    part = {"email": "subject", "file": "text", "console": "text"}.get(kind, "title")
    errors: list[str] = []
    ch = channel(kind, {part: "{{ common_labels.no_such_label }}"})
    ch.on_template_error = lambda receiver, integration, error: errors.append(error)
    message = ch.render(notification())
    assert message.template_error is not None and "no_such_label" in message.template_error
    assert errors and "no_such_label" in errors[0]
    assert "Burglary up in Camden" in message.preview  # the alert still goes out
    assert "template failed" in caplog.text


def test_the_sandbox_refuses_to_reach_python_internals() -> None:
    evil = "{{ alerts.__class__.__mro__[1].__subclasses__() }}"
    message = channel("slack", {"title": evil}).render(notification())
    assert message.template_error is not None
    assert "SecurityError" in message.template_error or "unsafe" in message.template_error


def test_a_template_override_renders_with_the_documented_variables() -> None:
    title = ("{{ status }}|{{ receiver }}|{{ group_labels.alertname }}|{{ firing|length }}|"
             "{{ alerts[0].labels.borough }}|{{ alerts[0].value|number }}|"
             "{{ common_annotations.summary }}|{{ external_url }}")
    message = channel("slack", {"title": title}).render(notification())
    assert message.template_error is None
    assert message.body["text"] == ("firing|ops|BurglaryRising|1|Camden|6.1|"
                                    "Burglary up in Camden|http://monitor.example")


def test_the_plain_fallback_mentions_every_alert_and_its_value() -> None:
    text = fallback_text(notification(status="resolved"))
    assert "[RESOLVED] BurglaryRising (1 resolved)" in text
    assert "value at resolution: 6.1" in text


def test_every_channel_kind_is_registered() -> None:
    assert sorted(CHANNELS) == ["alertmanager", "console", "email", "file", "mattermost",
                                "slack", "teams", "webhook"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_template_syntax_error_is_a_config_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, """
[notify.route]
receiver = "ops"

[[notify.receivers]]
name = "ops"
[[notify.receivers.slack]]
url = "https://hooks.slack.com/services/T/B/C"
templates = { title = "{{ status " }
""")
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    assert len(caught.value.problems) == 1
    problem = str(caught.value.problems[0])
    assert problem.startswith(f"{path}:9: notify.receivers[0].slack[0].templates: ")
    assert "template syntax error on line 1" in problem


def test_an_unknown_template_part_names_the_parts_that_exist(tmp_path: Path) -> None:
    path = write(tmp_path, """
[notify.route]
receiver = "ops"
[[notify.receivers]]
name = "ops"
[[notify.receivers.email]]
to = ["a@example.org"]
templates = { body = "x" }
""")
    with pytest.raises(ConfigError, match="email has no template part 'body'; the parts are: "
                                          "subject, text, html"):
        load(path, environ={})


def test_unknown_receivers_and_intervals_are_all_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, """
[notify.route]
receiver = "ops"
[[notify.route.routes]]
matchers = ['severity="critical"']
receiver = "pager"
mute_time_intervals = ["nights"]
[[notify.receivers]]
name = "ops"
[[notify.digests]]
receivers = ["board"]
""")
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    message = str(caught.value)
    assert "route.routes[0].receiver: unknown receiver 'pager'" in message
    assert "route.routes[0].mute_time_intervals: unknown time interval 'nights'" in message
    assert "digests[0].receivers: unknown receiver 'board'" in message


def test_the_example_config_loads_with_every_commented_example_enabled(tmp_path: Path) -> None:
    example = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
    start = example.index("[notify]")
    section = example[start:].split("\n# ---", 1)[0]  # up to the next section's banner
    lines = []
    for line in section.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("# ") and (stripped[2:3] in "[" or " = " in stripped):
            line = stripped[2:]
        lines.append(line)
    enabled = "\n".join(lines).replace("/run/secrets/", str(tmp_path) + "/")
    for name in ("smtp_password", "slack_webhook", "teams_workflow_url", "mattermost_webhook"):
        (tmp_path / name).write_text("https://example.org/secret-" + name + "\n")
    settings = load(write(tmp_path, enabled), environ={})
    notify = settings.notify
    assert [r.name for r in notify.receivers] == ["local", "oncall"]
    oncall = notify.receiver("oncall")
    assert oncall is not None and [k for k, _ in oncall.integrations()] == [
        "email:0", "slack:0", "teams:0", "mattermost:0", "webhook:0", "alertmanager:0"]
    assert notify.digests[0].receivers == ["local"]
    assert json.dumps(notify.model_dump(mode="json")).count("secret-") == 0  # stays secret
