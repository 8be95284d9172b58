"""Numbers written as an analyst writes them: the ``number`` and ``signed`` filters.

The one implementation behind the ``number`` filter of rule annotations
(:mod:`monitor.rules.templating`) and of notification templates
(:mod:`monitor.notify.templates`), so ``{{ value | number }}`` reads the same in a rule's
summary and in the message that carries it. Depends on nothing above the standard library.
"""

from __future__ import annotations

import math
from typing import Any


def number(value: Any, precision: int = 1) -> str:
    """Return ``value`` with ``precision`` decimals and thousands separators.

    ``77`` -> ``77.0``; ``-22.345`` -> ``-22.3``; ``number(137, 0)`` -> ``137``; from 1,000
    on, whole numbers only: ``9828`` -> ``9,828``. ``None`` and NaN -> ``n/a``; a value
    that is not a number (a label, say) is returned as text.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    try:
        figure = float(value)
    except (TypeError, ValueError, OverflowError):
        return str(value)
    if math.isnan(figure):
        return "n/a"
    if abs(figure) >= 1000:
        return f"{figure:,.0f}"
    return f"{figure:,.{precision}f}"


def signed(value: Any, precision: int = 1) -> str:
    """Return :func:`number` with its sign always shown: ``+24.0``, ``-3.1``, ``0.0``."""
    text = number(value, precision)
    try:
        figure = float(value)
    except (TypeError, ValueError, OverflowError):
        return text
    if math.isnan(figure) or figure == 0:
        return text
    return f"+{text}" if figure > 0 else text
