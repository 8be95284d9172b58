"""Annotation templates: Jinja2 in a sandbox with strict undefined, under a budget.

Rule annotations see the whole evaluation of their alert (value, window, baseline,
change, target, p-value, slope, SPC signal, labels, explanation). The sandbox refuses
attribute access to internals, so a rule file cannot reach Python objects, and every
render runs under the template budget (``[templates]``, :mod:`monitor.sandbox`).

A template that exceeds its budget on one alert would exceed it on the next one too,
and the engine renders annotations for every alert that changes: such a template is
refused at once, without rendering, until its text or the limits change — so one
hostile rule costs one budget per process, not one per alert.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from monitor.sandbox import BudgetedSandbox, BudgetExceeded, TemplateLimits, limits
from monitor.textfmt import number, signed

REFUSED_KEPT = 256  # templates remembered as over budget


class _Sandbox(BudgetedSandbox, ImmutableSandboxedEnvironment):
    """Immutable, and rendering within the template budget (``monitor.sandbox``)."""


def make_environment(undefined: type = StrictUndefined) -> ImmutableSandboxedEnvironment:
    env = _Sandbox(undefined=undefined, autoescape=False, keep_trailing_newline=False)
    env.filters["number"] = number
    env.filters["signed"] = signed
    env.filters["abs"] = lambda v: abs(float(v))
    return env


_ENV = make_environment()
_SAMPLE_ENV = make_environment(ChainableUndefined)  # for checking: unknown facts are empty
_REFUSED: OrderedDict[tuple[str, TemplateLimits], str] = OrderedDict()


@lru_cache(maxsize=1024)
def _compiled(text: str) -> Template:
    return _ENV.from_string(text)


def compile_template(text: str) -> str | None:
    """Return None when ``text`` compiles, else the compiler's message."""
    try:
        _compiled(text)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        return f"{exc.message}" + (f" (template line {line})" if line and line > 1 else "")
    return None


def render(text: str, context: dict[str, Any]) -> str:
    """Return the rendered template.

    Raises jinja2.TemplateError: a syntax error, an undefined name, a sandbox violation,
    BudgetExceeded (also, without rendering, for a template that exceeded it before).
    """
    key = (text, limits())
    refused = _REFUSED.get(key)
    if refused is not None:
        raise BudgetExceeded(f"{refused}; not rendered again until the template changes")
    try:
        return _compiled(text).render(**context)
    except BudgetExceeded as exc:
        _REFUSED[key] = str(exc)
        while len(_REFUSED) > REFUSED_KEPT:
            _REFUSED.popitem(last=False)
        raise


def sample_context(labels: dict[str, str]) -> dict[str, Any]:
    """Return the variables of a made-up alert with ``labels``, for checking templates."""
    return {"labels": labels, "value": 1234.5, "explanation": "Sample explanation.",
            "indicator": {"id": labels.get("indicator", "sample"), "name": "Sample"}}


def budget_warnings(rules: Iterable[Any]) -> list[str]:
    """Return one line per annotation that exceeds the template budget on a sample alert.

    Variables the sample lacks render as empty, so a template is followed as far as the
    sample allows; only budget failures are reported, not undefined names.
    """
    warnings = []
    for loaded in rules:  # the rule set's LoadedRule items
        rule = loaded.rule
        labels = {**rule.labels, "alertname": rule.alert, "severity": rule.severity}
        if rule.indicator:
            labels["indicator"] = rule.indicator
        for name, text in rule.annotations.items():
            try:
                _SAMPLE_ENV.from_string(text).render(**sample_context(labels))
            except BudgetExceeded as exc:
                warnings.append(f"{loaded.file}:{loaded.line}: rule {rule.alert!r}: warning: "
                                f"annotations.{name} exceeds the template budget on a sample "
                                f"alert and will read \"(template error: …)\": {exc}")
            except TemplateError:
                continue
    return warnings
