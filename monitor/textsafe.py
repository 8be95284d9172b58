"""Making text from data safe for a single-line output: one function, used by every
plain-text surface (the file and console receivers, ``monitor poll``'s rejected rows,
the ``monitor eval`` table, the webhook ``groupKey``, logfmt log lines).

A label value such as ``Barnet\\r\\nBcc: x@y`` must not start a new line where each line
means something: :func:`one_line` escapes every control character visibly (``\\r``,
``\\n``, ``\\t``, ``\\x1b``, ``\\u2028``…), so the value stays on its line and what it
contained can still be read.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(found: re.Match[str]) -> str:
    char = found.group(0)
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """Return ``text`` with every control character escaped visibly (``\\r`` → ``\\\\r``).

    The result contains no line break, carriage return or terminal escape; printable
    text (backslashes included) is left as it was.
    """
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escape, text)


def has_control(text: str) -> bool:
    """Return True when ``text`` contains a character :func:`one_line` would escape."""
    return _CONTROL.search(text) is not None
