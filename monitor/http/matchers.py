"""Label matchers as people type them in a URL: ``?match=borough="Camden"``.

The syntax is Prometheus' selector syntax without the metric name: one or more
``name op "value"`` separated by commas, optionally inside braces, with ``op`` one of
``=``, ``!=``, ``=~``, ``!~``. Regular expressions are anchored (they must match the
whole value) and a missing label matches as the empty string, as in Prometheus.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from monitor.http.observed import Matcher

_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.:-]*)\s*(=~|!~|!=|=)\s*")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


class MatcherError(ValueError):
    """A matcher could not be parsed; the message says where and what is expected."""


def parse_matchers(text: str) -> list[Matcher]:
    """Return the matchers in ``text`` (``a="x", b=~"y.*"`` or ``{a="x"}``).

    Raises MatcherError naming the position and what was expected, or the invalid
    regular expression.
    """
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise MatcherError(f"{text!r}: a selector that opens with '{{' must close with '}}'")
        body = body[1:-1]
    matchers: list[Matcher] = []
    pos = 0
    while pos < len(body):
        if not body[pos:].strip():
            break
        head = _NAME.match(body, pos)
        if head is None:
            raise MatcherError(f"{text!r}: expected a label name and one of = != =~ !~ at "
                               f"character {pos + 1}, like borough=\"Camden\"")
        name, op = head.group(1), head.group(2)
        value, pos = _value(body, head.end(), text)
        matcher = Matcher(name, value, op)
        if op in ("=~", "!~"):
            _compile(matcher)
        matchers.append(matcher)
        rest = body[pos:].lstrip()
        if rest.startswith(","):
            pos = len(body) - len(rest) + 1
        elif rest:
            raise MatcherError(f"{text!r}: expected ',' between matchers at character "
                               f"{len(body) - len(rest) + 1}")
        else:
            break
    if not matchers:
        raise MatcherError(f"{text!r}: no matcher found; write it like borough=\"Camden\"")
    return matchers


def _value(body: str, pos: int, text: str) -> tuple[str, int]:
    """Return the value starting at ``pos`` and the position after it."""
    if pos < len(body) and body[pos] in "\"'":
        quote = body[pos]
        out: list[str] = []
        i = pos + 1
        while i < len(body):
            char = body[i]
            if char == "\\" and i + 1 < len(body):
                out.append(_ESCAPES.get(body[i + 1], "\\" + body[i + 1]))
                i += 2
                continue
            if char == quote:
                return "".join(out), i + 1
            out.append(char)
            i += 1
        raise MatcherError(f"{text!r}: the value opened at character {pos + 1} is not closed "
                           f"with {quote}")
    end = body.find(",", pos)
    end = len(body) if end < 0 else end
    return body[pos:end].strip(), end


def _compile(matcher: Matcher) -> re.Pattern[str]:
    try:
        return re.compile(matcher.value)
    except re.error as exc:
        raise MatcherError(f"{matcher}: invalid regular expression: {exc}") from None


def compile_matchers(matchers: Iterable[Matcher]) -> Callable[[Mapping[str, str]], bool]:
    """Return a predicate: True when a label set satisfies every matcher.

    Raises MatcherError on an invalid regular expression.
    """
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for m in matchers:
        if m.op in ("=", "!="):
            tests.append(_equality(m.name, m.value, m.op == "="))
        else:
            tests.append(_regex(m.name, _compile(m), m.op == "=~"))
    return lambda labels: all(test(labels) for test in tests)


def _equality(name: str, value: str, want: bool) -> Callable[[Mapping[str, str]], bool]:
    def test(labels: Mapping[str, str]) -> bool:
        return (labels.get(name, "") == value) == want
    return test


def _regex(name: str, pattern: re.Pattern[str], want: bool
           ) -> Callable[[Mapping[str, str]], bool]:
    def test(labels: Mapping[str, str]) -> bool:
        return (pattern.fullmatch(labels.get(name, "")) is not None) == want
    return test


def parse_all(texts: Sequence[str]) -> list[Matcher]:
    """Return the matchers of several ``match`` parameters (they all must hold).

    Raises MatcherError for the first parameter that does not parse.
    """
    out: list[Matcher] = []
    for text in texts:
        out.extend(parse_matchers(text))
    return out
