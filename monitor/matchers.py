"""Label matchers as Alertmanager and Prometheus write them: ``name="value"``, ``!=``,
``=~``, ``!~``.

Shared by notification routes, silences, inhibition rules and the API's ``?match=``
filters. Regular expressions are anchored (they must match the whole value) and a
missing label matches as the empty string, as in Alertmanager: ``team!="ops"`` matches
an alert without a ``team`` label. Values may be double- or single-quoted, or bare.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

OPS = ("=", "!=", "=~", "!~")
_HEAD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


class MatcherError(ValueError):
    """A matcher could not be parsed; the message says which and what is expected."""


@dataclass(frozen=True)
class Matcher:
    """One label matcher: ``name op value`` with ``op`` one of ``= != =~ !~``."""

    name: str
    value: str
    op: str = "="
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise MatcherError(f"{self.op!r} is not a matcher operator; use one of "
                               + ", ".join(OPS))
        if self.op in ("=~", "!~"):
            try:
                compiled = re.compile(f"(?:{self.value})")
            except re.error as exc:
                raise MatcherError(f'{self.name}{self.op}"{self.value}": invalid regular '
                                   f"expression: {exc}") from None
            object.__setattr__(self, "_regex", compiled)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return True when the alert's ``labels`` satisfy this matcher."""
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(value) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Matcher:
        return cls(data["name"], data["value"], data.get("op", "="))


def parse_matcher(text: str) -> Matcher:
    """Return the one matcher in ``text`` (``borough="Camden"``, ``alertname=~"Burg.*"``).

    The value may be double-quoted (with ``\\"`` and ``\\\\`` escapes) or bare.
    Raises MatcherError naming the text and the expected form.
    """
    found = parse_matchers(text)
    if len(found) != 1:
        raise MatcherError(f"{text!r}: expected exactly one matcher such as "
                           'borough="Camden"')
    return found[0]


def parse_matchers(text: str) -> list[Matcher]:
    """Return every matcher in ``text``: ``a="x", b=~"y.*"`` or ``{a="x"}``.

    Raises MatcherError naming the text, the position and what was expected.
    """
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise MatcherError(f"{text!r}: a matcher list that opens with '{{' must close "
                               "with '}'")
        body = body[1:-1]
    matchers: list[Matcher] = []
    pos = 0
    while body[pos:].strip():
        head = _HEAD.match(body, pos)
        if head is None:
            raise MatcherError(f"{text!r}: expected a matcher such as borough=\"Camden\" at "
                               f"character {pos + 1}")
        name, op = head.group(1), head.group(2)
        pos = head.end()
        value, pos = _read_value(text, body, pos)
        matchers.append(Matcher(name, value, op))
        rest = body[pos:].lstrip()
        if rest.startswith(","):
            pos = len(body) - len(rest) + 1
        elif rest:
            raise MatcherError(f"{text!r}: expected ',' between matchers at character "
                               f"{len(body) - len(rest) + 1}")
    if not matchers:
        raise MatcherError(f"{text!r}: no matcher found; write one like borough=\"Camden\"")
    return matchers


def _read_value(text: str, body: str, pos: int) -> tuple[str, int]:
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
        raise MatcherError(f"{text!r}: the quoted value starting at character {pos + 1} "
                           "is not closed")
    end = pos
    while end < len(body) and body[end] != ",":
        end += 1
    return body[pos:end].strip(), end


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Return True when every matcher accepts ``labels`` (an empty list accepts all)."""
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True)
class MatcherSet:
    """Matchers parsed once from their config text; ``str()`` gives the Alertmanager form."""

    matchers: tuple[Matcher, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> MatcherSet:
        """Return the matchers in every text. Raises MatcherError for the first bad one."""
        out: list[Matcher] = []
        for text in texts:
            out.extend(parse_matchers(text))
        return cls(tuple(out))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.matchers, labels)

    @cached_property
    def text(self) -> str:
        return "{" + ",".join(str(m) for m in self.matchers) + "}"

    def __str__(self) -> str:
        return self.text


def parse_all(texts: Sequence[str]) -> list[Matcher]:
    """Return the matchers of several texts (e.g. repeated ``?match=``); all must hold.

    Raises MatcherError for the first text that does not parse.
    """
    return list(MatcherSet.parse(texts).matchers)


def compile_matchers(matchers: Iterable[Matcher]) -> Callable[[Mapping[str, str]], bool]:
    """Return a predicate: True when a label set satisfies every matcher."""
    chosen = tuple(matchers)
    return lambda labels: matches_all(chosen, labels)


# Labels every alert carries, whatever its rule: a silence may always name them.
ALWAYS_LABELS = frozenset({"alertname", "severity"})


def known_label_names(alerts: Iterable[Mapping[str, str]],
                      series: Iterable[Iterable[str]]) -> set[str]:
    """Return the label names a silence's matchers may name without the "no rule produces
    the label" warning: ``indicator``, the ``alerts``' label names and the ``series``'
    (label sets or name lists). The API, the silence form and ``monitor silence add``
    all ask this one function, each with the labels it reads."""
    names = {"indicator"}
    for labels in alerts:
        names.update(labels)
    for names_of in series:
        names.update(names_of)
    return names


def silence_warnings(matchers: Sequence[Matcher], current: Iterable[Mapping[str, str]],
                     known_names: Iterable[str]) -> list[str]:
    """Return what is probably wrong with a silence's matchers, in words (empty: nothing).

    Two warnings, as amtool users wish it had: a matcher naming a label no rule produces
    (``alertnme="Foo"``, with the closest known name), and matchers that match none of
    the ``current`` alerts' label sets. A warning, not an error: a silence made ahead of
    an alert is legitimate.
    """
    import difflib

    known = set(known_names) | ALWAYS_LABELS
    out: list[str] = []
    for m in matchers:
        if m.name in known or m.matches({}):
            continue
        close = difflib.get_close_matches(m.name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else \
            f" (labels in use: {', '.join(sorted(known))})"
        out.append(f"matcher {m}: no rule produces the label {m.name!r}{hint}")
    if not any(matches_all(matchers, labels) for labels in current):
        out.append("the matchers match no current alert: the silence mutes nothing now")
    return out


class AnyOf:
    """Whether any of some matcher sets accepts a label set, remembered per value of the
    labels they read: a matcher reads only its own label's value, so label sets that
    agree on those names get the same answer. 100,000 alerts of a few rules take a
    few distinct values (the notifier asks of every alert of a run which may inhibit)."""

    LIMIT = 100_000  # distinct values remembered before starting again

    def __init__(self, sets: Sequence[MatcherSet]) -> None:
        self.sets = tuple(sets)
        self.names = tuple(sorted({m.name for s in self.sets for m in s.matchers}))
        self._memo: dict[tuple[str | None, ...], bool] = {}

    def __bool__(self) -> bool:
        return bool(self.sets)

    def __call__(self, labels: Mapping[str, str]) -> bool:
        key = tuple([labels.get(name) for name in self.names])
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= self.LIMIT:
                self._memo.clear()
            found = self._memo[key] = any(s.matches(labels) for s in self.sets)
        return found
