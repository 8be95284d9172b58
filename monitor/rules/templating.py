"""Annotation templates: Jinja2 in a sandbox with strict undefined.

Rule annotations see the whole evaluation of their alert (value, window, baseline,
change, target, p-value, slope, SPC signal, labels, explanation). The sandbox refuses
attribute access to internals, so a rule file cannot reach Python objects.
"""

from __future__ import annotations

import math
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from monitor.sandbox import BoundedOperators


def _number(value: Any, precision: int = 1) -> str:
    """``9828`` -> ``9,828``; ``-22.345`` -> ``-22.3``; NaN/None -> ``n/a``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    number = float(value)
    if (number.is_integer() and precision == 0) or abs(number) >= 1000:
        return f"{number:,.0f}"
    return f"{number:,.{precision}f}"


def _signed(value: Any, precision: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = _number(abs(float(value)), precision)
    return f"+{text}" if float(value) > 0 else (f"-{text}" if float(value) < 0 else text)


class _Sandbox(BoundedOperators, ImmutableSandboxedEnvironment):
    """Immutable, and ``*``/``**`` cannot build oversized values."""


def make_environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters["number"] = _number
    env.filters["signed"] = _signed
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
