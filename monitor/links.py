"""The daemon's own URLs, built in one place: the pages, the API and every message link here.

Pure functions of the external base URL (``server.external_url``; empty: a path relative
to the server) and what the link is about. The contract shared with the pages:

- ``/indicators/{indicator}/series/{fingerprint}?at=YYYY-MM`` — the series chart with one
  period highlighted;
- ``/silences/new?matcher=…&matcher=…`` — the silence form, pre-filled with
  Alertmanager-style matchers (``alertname="BurglaryRising"``);
- ``/rules#rule-<RuleName>`` — one rule on the rules page;
- ``/alerts/history?…`` — the alert history page, filtered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote, urlencode

# Labels that say how an alert is routed, not which series it is about: a silence link
# leaves them out, so the silence still mutes the alert after a rule's severity changes.
NOT_IDENTITY = frozenset({"severity"})


def _base(external_url: str) -> str:
    return external_url.rstrip("/")


def quote_value(value: str) -> str:
    """Return ``value`` escaped for a double-quoted matcher value."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def matcher_text(name: str, value: str, op: str = "=") -> str:
    """Return ``name="value"``: one matcher as Alertmanager writes it."""
    return f'{name}{op}"{quote_value(value)}"'


def silence_matchers(labels: Mapping[str, str]) -> list[str]:
    """Return the equality matchers that pick out an alert with ``labels``, sorted."""
    return [matcher_text(k, v) for k, v in sorted(labels.items())
            if k not in NOT_IDENTITY and not k.startswith("__")]


def series_url(external_url: str, indicator: str, fingerprint: str, at: str | None = None
               ) -> str:
    """Return the series page, with the period ``at`` (``2008-07``) highlighted if given."""
    url = f"{_base(external_url)}/indicators/{quote(indicator, safe='')}/series/" \
          f"{quote(fingerprint, safe='')}"
    return f"{url}?{urlencode({'at': at})}" if at else url


def silence_url(external_url: str, labels: Mapping[str, str] | Iterable[str]) -> str:
    """Return the silence form pre-filled to mute the alert with ``labels`` (or with the
    given matcher strings)."""
    matchers = silence_matchers(labels) if isinstance(labels, Mapping) else list(labels)
    query = urlencode([("matcher", m) for m in matchers])
    return f"{_base(external_url)}/silences/new" + (f"?{query}" if query else "")


def rule_url(external_url: str, rule: str) -> str:
    """Return the rules page at one rule's anchor."""
    return f"{_base(external_url)}/rules#rule-{quote(rule, safe='')}"


def history_url(external_url: str, *, rule: str | None = None,
                matchers: Sequence[str] = (), since: str | None = None,
                until: str | None = None) -> str:
    """Return the alert history page filtered by rule, label matchers and time range."""
    pairs: list[tuple[str, str]] = []
    if rule:
        pairs.append(("rule", rule))
    pairs.extend(("match", m) for m in matchers)
    if since:
        pairs.append(("since", since))
    if until:
        pairs.append(("until", until))
    query = urlencode(pairs)
    return f"{_base(external_url)}/alerts/history" + (f"?{query}" if query else "")
