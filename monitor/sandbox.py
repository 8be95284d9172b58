"""Size limits for the Jinja2 sandboxes of rule annotations and message templates.

Jinja2's sandbox refuses access to Python internals (``__class__``, ``__globals__``,
``mro``…), so a template cannot escape to the process, and it caps ``range()``. It
does not bound the size of a value an expression builds: ``{{ 'a' * 10**9 }}`` would
allocate a gigabyte inside the evaluation loop. :class:`BoundedOperators` intercepts
``*`` and ``**`` and refuses results beyond :data:`MAX_ITEMS` items or
:data:`MAX_BITS` bits with a ``SecurityError``, which callers already treat as a
template error.
"""

from __future__ import annotations

import math
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

MAX_ITEMS = 1_000_000  # characters or elements a repetition may build
MAX_BITS = 100_000  # size of an integer a power may build
_SEQUENCES = (str, bytes, list, tuple)


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Raise SecurityError when ``left <operator> right`` would build an oversized value."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, _SEQUENCES) and isinstance(times, int) \
                    and len(seq) * times > MAX_ITEMS:
                raise SecurityError(f"the template would build a value of "
                                    f"{len(seq) * times:,} items; at most {MAX_ITEMS:,}")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) \
            and not isinstance(left, bool) and abs(left) > 1 \
            and right * math.log2(abs(left)) > MAX_BITS:
        raise SecurityError(f"the template would build a number of about "
                            f"{right * math.log2(abs(left)):,.0f} bits; at most {MAX_BITS:,}")


class BoundedOperators(SandboxedEnvironment):
    """A sandbox whose ``*`` and ``**`` refuse oversized results (mix in first)."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)
