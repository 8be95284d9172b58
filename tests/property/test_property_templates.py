"""Generated templates — loops, filters, methods, operators and large literals mixed —
rendered as a rule annotation and as a receiver's message: each renders within the
template budget or is refused with a TemplateError (the message then carries the plain
fallback body); nothing else is ever raised, and memory stays bounded."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from jinja2 import TemplateError

from monitor.notify.channels import build_channels
from monitor.notify.config import ReceiverConfig
from monitor.notify.notification import Notification, sample_alerts
from monitor.rules.templating import render
from monitor.sandbox import TemplateLimits, budget
from tests.property.tally import SETTINGS, tally

NOW = datetime(2008, 7, 31, 12, tzinfo=UTC)
MB = 1024 * 1024
# Tight limits keep a generated template that burns its whole budget quick to refuse.
LIMITS = TemplateLimits(timeout="1s", max_iterations=20_000, max_output=200_000,
                        max_value_size=200_000, max_built=2_000_000)

SIZES = st.sampled_from([0, 1, 3, 99, 1000, 99_999, 10**6, 10**9, -5])
WORDS = st.sampled_from(["'a'", "'ab c'", "'\\n'", "'%s'", "'{}'", "labels.borough",
                         "explanation", "value", "alertname"])


def _literal(size: int) -> st.SearchStrategy[str]:
    return st.sampled_from([f"'x' * {size}", f"range({size})", f"[0] * {size}",
                            f"{size}", f"'{{:>{size}}}'", f"'%{size}d'"])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    """Return a Jinja expression built from literals, filters, methods and operators."""
    size = draw(SIZES)
    if depth >= 2 or draw(st.booleans()):
        return draw(st.one_of(WORDS, _literal(size)))
    inner = draw(expressions(depth + 1))
    other = draw(expressions(depth + 1))
    return draw(st.sampled_from([
        f"({inner})|center({size})", f"({inner})|string|replace('a', {other})",
        f"({inner})|list", f"({inner})|join({other})", f"({inner})|wordwrap({size})",
        f"({inner})|indent({size})", f"({inner})|format({other})", f"({inner})|batch({size})|list",
        f"({inner})|map('string')|list", f"({inner})|sort|list", f"({inner})|unique|list",
        f"({inner})|sum(start=[])", f"({inner})|tojson", f"({inner})|e",
        f"({inner}) ~ ({other})", f"({inner}) * {size}", f"({inner}) + ({other})",
        f"({inner}) % ({other})", f"{size} ** {draw(SIZES)}", f"[{inner}, {other}]",
        f"({inner}).ljust({size})", f"({inner}).format({other})", f"'-'.join({inner})",
        f"({inner}) | length", f"({inner})[:{size}]", f"lipsum({size})",
    ]))


@st.composite
def templates(draw: st.DrawFn, depth: int = 0) -> str:
    """Return a template of text, output, set, loops, conditions and macros."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        expr = draw(expressions())
        if depth >= 2:
            parts.append(draw(st.sampled_from([f"{{{{ {expr} }}}}", "text ", "\n"])))
            continue
        body = draw(templates(depth + 1))
        parts.append(draw(st.sampled_from([
            f"{{{{ {expr} }}}}",
            f"{{% set v = {expr} %}}{{{{ v }}}}",
            f"{{% for i in {expr} %}}{body}{{% endfor %}}",
            f"{{% for i in range({draw(SIZES)}) %}}{body}{{% endfor %}}",
            f"{{% if {expr} %}}{body}{{% else %}}no{{% endif %}}",
            f"{{% macro m(n) %}}{body}{{{{ m(n) if n else '' }}}}{{% endmacro %}}"
            f"{{{{ m({expr}) }}}}",
            f"{{% set ns = namespace(x={expr}) %}}{{% for i in range(50) %}}"
            f"{{% set ns.x = [ns.x, ns.x] %}}{{% endfor %}}{{{{ ns.x == ns.x[0] }}}}",
        ])))
    return "".join(parts)


def _within_budget(run: Callable[[], bool]) -> None:
    """Run ``run`` under LIMITS: it renders (True) within them, or is refused (False, or a
    TemplateError); either way with little memory."""
    tracemalloc.start()
    try:
        with budget(LIMITS) as spent:
            try:
                rendered = run()
            except TemplateError:
                rendered = False
            if rendered:
                assert spent.iterations <= LIMITS.max_iterations
                assert spent.output <= LIMITS.max_output
                assert spent.built <= LIMITS.max_built
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * MB, f"{peak / MB:.1f} MiB"


@SETTINGS
@given(templates())
def test_a_generated_rule_annotation_renders_within_its_budget_or_is_refused(text: str
                                                                             ) -> None:
    tally("templates: rule annotations")
    context = {"labels": {"alertname": "X", "borough": "Camden"}, "value": 4.5,
               "explanation": "e", "alertname": "X"}
    _within_budget(lambda: isinstance(render(text, context), str))


@SETTINGS
@given(templates())
def test_a_generated_message_template_renders_or_falls_back_and_never_raises(text: str
                                                                            ) -> None:
    tally("templates: receiver messages")
    receiver = ReceiverConfig.model_validate(
        {"name": "ops", "file": [{"path": "/dev/null", "templates": {"text": text}}]})
    [channel] = build_channels(receiver).values()
    notification = Notification(
        kind="alerts", receiver="ops", group_key="g", group_labels={},
        alerts=tuple(sample_alerts(NOW)), created_at=NOW, message_id="m", thread_id="m")

    def run() -> bool:
        message = channel.render(notification)  # never raises
        if message.template_error:
            assert "[FIRING] BurglaryRising (2 firing)" in message.preview
        return message.template_error is None

    _within_budget(run)
