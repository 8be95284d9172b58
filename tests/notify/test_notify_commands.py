"""The notification commands, run through ``monitor``'s real argument parser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.clock import FixedClock
from monitor.store import open_store
from tests.notify.helpers import T0, record
from tests.notify.loopback import LoopbackReceiver, Reply, validate_am_webhook, validate_slack


@pytest.fixture
def hooks() -> Iterator[tuple[LoopbackReceiver, LoopbackReceiver]]:
    webhook, slack = LoopbackReceiver(validate_am_webhook), LoopbackReceiver(validate_slack)
    try:
        yield webhook, slack
    finally:
        webhook.close()
        slack.close()


@pytest.fixture
def config(tmp_path: Path, hooks: tuple[LoopbackReceiver, LoopbackReceiver]) -> Path:
    webhook, slack = hooks
    path = tmp_path / "config.toml"
    path.write_text(f"""
[server]
external_url = "http://monitor.example"
[store]
url = "sqlite:///{tmp_path / 'monitor.db'}"
[notify.route]
receiver = "ops"
group_wait = "0s"
[[notify.receivers]]
name = "ops"
[[notify.receivers.webhook]]
url = "{webhook.url()}"
[[notify.receivers.slack]]
url = "{slack.url('/services/T/B/planted-Secret-19fe')}"
templates = {{ title = "Preview of {{{{ common_labels.alertname }}}}" }}
""")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``monitor ARGS`` at the tests' fixed time T0, never the wall clock."""
    code = main(list(args), clock=FixedClock(T0))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_silences_are_added_listed_and_expired(config: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "silence", "add", "-c", str(config), 'borough="Camden"',
                       'alertname=~"Burglary.*"', "--comment", "data reload", "--author",
                       "alice", "--duration", "2h", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["state"] == "active" and created["created_by"] == "alice"
    assert [m["op"] for m in created["matchers"]] == ["=", "=~"]
    code, out, _ = run(capsys, "silence", "add", "-c", str(config), "team=crime",
                       "--comment", "weekends", "--author", "bob", "--duration", "30d",
                       "--weekdays", "saturday:sunday", "--timezone", "Europe/London")
    assert code == 0 and "recurring saturday:sunday Europe/London" in out
    code, out, _ = run(capsys, "silence", "list", "-c", str(config))
    assert code == 0 and out.count("active") == 2 and "by alice: data reload" in out
    code, out, _ = run(capsys, "silence", "expire", "-c", str(config), created["id"][:8])
    assert code == 0 and "expired (kept for audit)" in out
    code, out, _ = run(capsys, "silence", "list", "-c", str(config))
    assert created["id"] not in out
    code, out, _ = run(capsys, "silence", "list", "-c", str(config), "--all", "--json")
    states = {s["id"]: s["state"] for s in json.loads(out)}
    assert states[created["id"]] == "expired" and len(states) == 2


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["borough", "--comment", "x"], "expected a matcher", id="bad-matcher"),
    pytest.param(['borough="C"', "--comment", "x", "--duration", "soon"],
                 "--duration: 'soon' is not a duration", id="bad-duration"),
    pytest.param(['team=~".*"', "--comment", "x"], "must not match an empty label",
                 id="silences-everything"),
    pytest.param(['borough="C"', "--comment", "x", "--weekdays", "funday"],
                 "is not a weekday", id="bad-weekday"),
])
def test_a_bad_silence_is_refused_with_the_reason(config: Path, args: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "silence", "add", "-c", str(config), *args)
    assert code == 1 and message in err


def test_template_render_previews_every_integration(config: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "template", "render", "-c", str(config), "--receiver", "ops")
    assert code == 0
    assert "===== ops / webhook:0 =====" in out and "===== ops / slack:0 =====" in out
    assert '"text": "Preview of BurglaryRising"' in out
    alert_file = tmp_path / "alert.json"
    alert_file.write_text(json.dumps({"labels": {"alertname": "RobberyDown",
                                                 "borough": "<!channel>"},
                                      "status": "resolved", "value": 9828}))
    code, out, _ = run(capsys, "template", "render", "-c", str(config), "--receiver", "ops",
                       "--alert-file", str(alert_file), "--integration", "slack:0")
    assert code == 0 and "webhook:0" not in out
    assert "&lt;!channel&gt;" in out and "<!channel>" not in out
    assert "value at resolution 9,828" in out


def test_template_render_shows_a_real_alert_from_the_store(config: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'monitor.db'}")
    record(store, "hackney", "firing", T0, 4.8)
    from monitor.notify.notifier import Notifier  # claim it as the daemon would
    from monitor.settings import load

    settings = load(config, environ={})
    from prometheus_client import CollectorRegistry

    from monitor.clock import FixedClock

    Notifier(store, settings.notify, FixedClock(T0), CollectorRegistry()).process_transitions()
    store.close()
    code, out, _ = run(capsys, "template", "render", "-c", str(config), "--receiver", "ops",
                       "--alert", "hackney", "--integration", "webhook:0")
    assert code == 0 and '"borough": "hackney"' in out
    code, _, err = run(capsys, "template", "render", "-c", str(config), "--receiver", "ops",
                       "--alert", "nope")
    assert code == 1 and "no alert with id 'nope'" in err


def test_receiver_test_sends_through_every_integration(
        config: Path, hooks: tuple[LoopbackReceiver, LoopbackReceiver],
        capsys: pytest.CaptureFixture[str]) -> None:
    webhook, slack = hooks
    code, out, _ = run(capsys, "receiver", "test", "-c", str(config), "ops")
    assert code == 0 and "webhook:0: delivered" in out and "slack:0: delivered" in out
    assert webhook.requests[0].payload["kind"] == "test" and not slack.requests[0].problems
    slack.replies.append(Reply(404, "no_service"))
    code, out, _ = run(capsys, "receiver", "test", "-c", str(config), "ops")
    assert code == 1
    assert "slack:0: FAILED (permanent): ops/slack:0: HTTP 404; check the URL" in out
    assert "planted-Secret" not in out
    code, _, err = run(capsys, "receiver", "test", "-c", str(config), "nobody")
    assert code == 1 and "no receiver named 'nobody' (known: ops)" in err


def test_dead_letters_are_listed_and_resent(config: Path, tmp_path: Path,
                                            hooks: tuple[LoopbackReceiver, LoopbackReceiver],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    webhook, _ = hooks
    webhook.replies.append(Reply(422, "unprocessable"))
    store = open_store(f"sqlite:///{tmp_path / 'monitor.db'}")
    record(store, "camden", "firing", T0, 6.1)
    from prometheus_client import CollectorRegistry

    from monitor.notify.notifier import Notifier
    from monitor.settings import load

    settings = load(config, environ={})
    notifier = Notifier(store, settings.notify, FixedClock(T0), CollectorRegistry())
    notifier.process_transitions()
    notifier.dispatch()
    code, out, _ = run(capsys, "notifications", "dead-letters", "-c", str(config), "--json")
    [letter] = json.loads(out)
    assert letter["receiver"] == "ops" and "HTTP 422" in letter["error"]
    code, out, _ = run(capsys, "notifications", "resend", "-c", str(config), str(letter["id"]))
    assert code == 0 and "queued again" in out
    assert [o.outcome for o in notifier.dispatch()] == ["delivered"]
    code, out, _ = run(capsys, "notifications", "dead-letters", "-c", str(config))
    assert "no dead letters" in out
    code, _, err = run(capsys, "notifications", "resend", "-c", str(config), "999")
    assert code == 1 and "no message with id 999" in err
    store.close()


def _hostile_config(tmp_path: Path, template: str) -> Path:
    path = tmp_path / "hostile.toml"
    path.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'monitor.db'}"
[notify.route]
receiver = "ops"
[[notify.receivers]]
name = "ops"
[[notify.receivers.file]]
path = "{tmp_path / 'notifications.log'}"
templates = {{ text = "{template}" }}
""")
    return path


def test_template_render_shows_the_fallback_when_a_template_crashes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _hostile_config(tmp_path, "{{ range(10**8)|list }}")
    code, out, err = run(capsys, "template", "render", "-c", str(config), "--receiver", "ops")
    assert code == 0 and "Traceback" not in out + err
    assert ("(template error: BudgetExceeded: template budget exceeded: range() of "
            "100,000,000 numbers; at most 100,000 (templates.max_iterations); this is the "
            "fallback body)") in out
    assert "[FIRING] BurglaryRising (2 firing)" in out


def test_check_config_warns_about_a_message_template_over_budget(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _hostile_config(
        tmp_path, "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}"
                  "{% endfor %}")
    code, out, err = run(capsys, "check-config", "-c", str(config))
    assert code == 0 and out.strip().endswith(": OK (0 sources)")
    assert err.strip() == (
        "warning: receiver 'ops', file:0: the message templates exceed the template budget "
        "on a sample alert, so messages would go out with the plain fallback body: template "
        "budget exceeded: more than 100,000 loop iterations (templates.max_iterations)")
    code, _, err = run(capsys, "check-config", "-c", str(_hostile_config(tmp_path, "{{ 1 }}")))
    assert code == 0 and err == ""
