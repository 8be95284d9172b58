"""Templates run in Jinja2's sandbox: known sandbox-escape payloads in rule annotations
and in receiver templates are refused, and oversized values cannot be built."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from jinja2.sandbox import SecurityError

from monitor.model import Milestone
from monitor.notify.channels import build_channels
from monitor.notify.config import ReceiverConfig
from monitor.notify.notification import Notification, sample_alerts
from monitor.notify.templates import environment
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.engine import Dataset
from monitor.rules.loader import load_rules
from monitor.rules.templating import render

NOW = datetime(2008, 7, 31, 12, tzinfo=UTC)
# Public sandbox-escape payloads (PayloadsAllTheThings, HackTricks "SSTI (Jinja2)").
ESCAPES = [  # (payload, the refusal it must meet: the first unsafe step, or the limit)
    pytest.param("{{ ''.__class__.__mro__[1].__subclasses__() }}",
                 "attribute '__class__' of 'str'", id="mro-subclasses"),
    pytest.param("{{ ''.__class__.__base__.__subclasses__() }}",
                 "attribute '__class__' of 'str'", id="base-subclasses"),
    pytest.param("{{ ().__class__.__bases__[0].__subclasses__()[59].__init__.__globals__ }}",
                 "attribute '__class__' of 'tuple'", id="tuple-bases"),
    pytest.param("{{ cycler.__init__.__globals__.os.popen('id').read() }}",
                 "attribute '__init__' of 'type'", id="cycler-os"),
    pytest.param("{{ joiner.__init__.__globals__.os.popen('id').read() }}",
                 "attribute '__init__' of 'type'", id="joiner-os"),
    pytest.param("{{ namespace.__init__.__globals__.os.popen('id').read() }}",
                 "attribute '__init__' of 'type'", id="namespace-os"),
    pytest.param("{{ lipsum.__globals__['os'].popen('id').read() }}",
                 "attribute '__globals__' of 'function'", id="lipsum-globals"),
    pytest.param("{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
                 "attribute '_TemplateReference__context' of 'TemplateReference'",
                 id="template-reference-context"),
    pytest.param("{{ self.__init__.__globals__.__builtins__.__import__('os') }}",
                 "attribute '__init__' of 'TemplateReference'", id="self-builtins-import"),
    pytest.param("{{ ''|attr('__class__')|attr('__mro__') }}",
                 "attribute '__class__' of 'str'", id="attr-filter"),
    pytest.param("{{ '{0.__class__.__mro__}'.format(labels) }}",
                 "attribute '__class__' of 'dict'", id="str-format"),
    pytest.param("{{ labels.items.__self__.__class__ }}",
                 "attribute '__self__' of 'builtin_function_or_method'",
                 id="bound-method-self"),
    pytest.param("{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
                 "attribute '__class__' of 'list'", id="for-subclasses"),
    pytest.param("{{ value.__class__.__init__ }}", "attribute '__class__' of 'float'",
                 id="float-class"),
    pytest.param("{{ config.__class__.__init__.__globals__ }}",
                 "attribute '__class__' of 'dict'", id="flask-config"),
    pytest.param("{{ request.application.__globals__.__builtins__ }}",
                 "attribute '__globals__' of 'function'", id="flask-request"),
    pytest.param("{{ range(10**9)|list|length }}", "(templates.max_iterations)",
                 id="huge-range"),
    pytest.param("{{ 'a' * 10**9 }}", "(templates.max_value_size)", id="huge-string"),
    pytest.param("{{ [0] * 10**8 }}", "(templates.max_value_size)", id="huge-list"),
    pytest.param("{{ 10 ** 10000000 }}", "the ** operator would build a number",
                 id="huge-power"),
]


class _Request:
    """What a Flask payload expects ``request`` to be: an object holding a function."""

    @staticmethod
    def application() -> None:
        return None


# ``config`` and ``request`` exist, so the Flask payloads meet the sandbox rather than
# an undefined name.
CONTEXT = {"labels": {"alertname": "X", "borough": "Camden"}, "value": 1.5,
           "explanation": "e", "config": {"SECRET_KEY": "planted"}, "request": _Request()}


def refused(run: object, refusal: str) -> SecurityError:
    """Return the SecurityError ``run`` raised, which must be the sandbox's refusal
    ``refusal`` (the unsafe attribute and the type of the object it was asked of, or the
    budget's limit). Any other error — an undefined name, a later step refused on an
    undefined value, another attribute — does not count."""
    with pytest.raises(SecurityError) as caught:
        run()  # type: ignore[operator]
    message = str(caught.value)
    assert "Undefined" not in message, message
    assert refusal in message, message
    return caught.value


@pytest.mark.parametrize(("payload", "refusal"), ESCAPES)
def test_rule_annotations_refuse_sandbox_escapes(payload: str, refusal: str) -> None:
    refused(lambda: render(payload, dict(CONTEXT)), refusal)


@pytest.mark.parametrize("fmt", ["text", "line", "html", "slack", "markdown", "mattermost"])
@pytest.mark.parametrize(("payload", "refusal"), ESCAPES)
def test_receiver_templates_refuse_sandbox_escapes(payload: str, refusal: str, fmt: str
                                                   ) -> None:
    refused(lambda: environment(fmt).from_string(payload).render(**CONTEXT), refusal)


def test_an_escape_from_a_name_never_defined_is_not_counted_as_refused() -> None:
    """``refused`` itself: a payload that fails only because a name is undefined fails."""
    with pytest.raises(AssertionError):
        refused(lambda: render("{{ nosuchname.__class__ }}", dict(CONTEXT)),
                "attribute '__class__'")


def test_rule_annotations_cannot_change_what_they_are_given() -> None:
    labels = {"alertname": "X"}
    refused(lambda: render("{{ labels.update({'alertname': 'Y'}) }}", {"labels": labels}),
            "'update' of 'dict'")
    refused(lambda: render("{{ labels.pop('alertname') }}", {"labels": labels}),
            "'pop' of 'dict'")
    assert labels == {"alertname": "X"}


def test_an_escape_in_a_rule_file_loads_but_renders_as_a_template_error(tmp_path: Path
                                                                        ) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("""
groups:
  - name: g
    rules:
      - alert: Plan
        when: {milestones: {state: overdue}}
        annotations:
          summary: "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
""")
    evaluator = Evaluator(load_rules([rules]))
    overdue = Milestone("M1", "Task", "Ops", date(2008, 6, 30), "in_progress", None)
    result = evaluator.run(Dataset({}, [("plan", overdue)]), {}, Cycle(at=NOW, now=NOW))
    [record] = result.records.values()
    assert record.annotations["summary"].startswith("(template error: access to attribute")
    assert "uid=" not in record.annotations["summary"]


@pytest.mark.parametrize("kind", ["slack", "teams", "mattermost", "email", "webhook"])
def test_a_receiver_template_with_an_escape_sends_the_plain_fallback(kind: str) -> None:
    part = {"slack": "title", "teams": "title", "mattermost": "title", "email": "subject",
            "webhook": "title"}[kind]
    integration = {"url": "http://127.0.0.1:9/hook"} if kind != "email" else {
        "to": ["ops@example.org"], "host": "127.0.0.1"}
    if kind != "webhook":
        integration["templates"] = {part: "{{ lipsum.__globals__['os'].popen('id').read() }}"}
    receiver = ReceiverConfig.model_validate({"name": "ops", kind: [integration]})
    errors: list[str] = []
    [channel] = build_channels(receiver, on_template_error=lambda r, i, e: errors.append(e)
                               ).values()
    alerts = tuple(sample_alerts(NOW))
    message = channel.render(Notification(
        kind="alerts", receiver="ops", group_key="g", group_labels={}, alerts=alerts,
        created_at=NOW, message_id="m1", thread_id="m1"))
    assert "uid=" not in message.preview
    if kind == "webhook":  # no templates: the payload is data
        assert errors == []
    else:
        assert len(errors) == 1 and "SecurityError" in errors[0]
