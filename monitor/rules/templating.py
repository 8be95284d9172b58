"""Annotation templates: Jinja2 in a sandbox with strict undefined.

Rule annotations see the whole evaluation of their alert (value, window, baseline,
change, target, p-value, slope, SPC signal, labels, explanation). The sandbox refuses
attribute access to internals, so a rule file cannot reach Python objects.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from monitor.sandbox import BoundedOperators
from monitor.textfmt import number, signed


class _Sandbox(BoundedOperators, ImmutableSandboxedEnvironment):
    """Immutable, and ``*``/``**`` cannot build oversized values."""


def make_environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters["number"] = number
    env.filters["signed"] = signed
    env.filters["abs"] = lambda v: abs(float(v))
    return env


_ENV = make_environment()


def compile_template(text: str) -> str | None:
    """Return None when ``text`` compiles, else the compiler's message."""
    try:
        _ENV.from_string(text)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        return f"{exc.message}" + (f" (template line {line})" if line and line > 1 else "")
    return None


def render(text: str, context: dict[str, Any]) -> str:
    """Return the rendered template. Raises jinja2.TemplateError (incl. SecurityError)."""
    return _ENV.from_string(text).render(**context)
