"""Hypothesis strategies for hostile and malformed operator input: TOML, YAML, JSON, CSV.

Each strategy mixes three kinds of input: arbitrary text or bytes (anything at all),
documents of the right shape built from the product's real keys with wrong, odd or
extreme values, and near-misses of valid documents (a key misspelt, a type changed).
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import strategies as st

ODD_TEXT = st.sampled_from([
    "", " ", "0", "-1", "1e309", "nan", "inf", "-0", "2008-13", "2008-00", "2008-07",
    "99999999999999999999", "0x10", "1_000", "\x00", "\u202e", "☃", "'", '"', "\\",
    "${MONITOR_STORE__URL}", "{{ 7*7 }}", "{% raw %}", "<script>", "\r\nX-Injected: 1",
    "../../etc/passwd", "a" * 5000, "5m", "0s", "-5m", "1h30", "P1D", "true", "null",
])
TEXT = st.one_of(ODD_TEXT, st.text(max_size=40))
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), TEXT)


def json_values(keys: st.SearchStrategy[str] | None = None, max_leaves: int = 30
                ) -> st.SearchStrategy[Any]:
    """Return JSON-like values whose object keys are drawn from ``keys`` (or any text)."""
    key = keys if keys is not None else st.text(max_size=20)
    return st.recursive(SCALAR, lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(key, inner, max_size=6)),
        max_leaves=max_leaves)


def keys_of(real: list[str]) -> st.SearchStrategy[str]:
    """Mostly the product's real keys, sometimes a misspelling or anything."""
    return st.one_of(st.sampled_from(real), st.sampled_from(real).map(lambda k: k + "s"),
                     st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12))


# --- TOML --------------------------------------------------------------------------------


def toml_key(key: str) -> str:
    if key and all(c in string.ascii_letters + string.digits + "_-" for c in key):
        return key
    return json.dumps(key)


def toml_value(value: Any) -> str:
    """Return ``value`` as a TOML literal (None becomes an empty inline table)."""
    if value is None:
        return "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON escapes are TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(str(k))} = {toml_value(v)}"
                           for k, v in value.items()) + "}"


SECTIONS = ["server", "store", "rules", "logging", "daemon", "notify", "notify.retry",
            "notify.route"]
SETTING_KEYS = [
    "listen", "api_token", "protect_reads", "external_url", "max_exported_series", "url",
    "busy_timeout", "pool_size", "paths", "evaluation_interval", "watch", "watch_interval",
    "as_of", "history", "level", "format", "shutdown_timeout", "instance", "poll_interval",
    "inhibit_by_failing_source", "resolved_retention", "initial_backoff", "max_backoff",
    "multiplier", "jitter", "max_attempts", "give_up_after", "timeout", "lease", "receiver",
    "group_by", "group_wait", "group_interval", "repeat_interval", "api_token_file",
]
SOURCE_KEYS = [
    "name", "kind", "path", "url", "layout", "indicator_column", "indicator", "indicators",
    "labels", "period_column", "value_column", "denominator_column", "provisional_column",
    "interval", "cron", "jitter", "enabled", "static_labels", "provisional_last",
    "max_reject_ratio", "timeout", "retries", "allowed_hosts", "auth", "query", "records",
    "format", "force", "poly", "months", "period_columns", "delimiter", "encoding",
    "null_values", "thousands_separator", "frequency", "unmapped", "headers", "verify_tls",
]
RECEIVER_KEYS = ["name", "send_resolved", "rate_limit", "to", "from", "host", "port",
                 "password", "url", "path", "format", "templates", "max_alerts"]
KINDS = ["csv", "json", "sql", "prometheus", "police_uk", "milestones", "excel", ""]


FLAT_VALUE = st.one_of(SCALAR, st.lists(SCALAR, max_size=4),
                       st.dictionaries(st.text(max_size=8), SCALAR, max_size=3))


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    """A TOML document with real sections and keys, and values of any type."""
    lines: list[str] = []
    for section in draw(st.lists(st.sampled_from(SECTIONS), max_size=4, unique=True)):
        lines.append(f"[{section}]")
        for key in draw(st.lists(keys_of(SETTING_KEYS), max_size=5, unique=True)):
            lines.append(f"{toml_key(key)} = {toml_value(draw(FLAT_VALUE))}")
    for _ in range(draw(st.integers(0, 3))):
        lines.append("[[sources]]")
        lines.append(f"kind = {toml_value(draw(st.sampled_from(KINDS)))}")
        for key in draw(st.lists(keys_of(SOURCE_KEYS), max_size=7, unique=True)):
            if key != "kind":
                lines.append(f"{toml_key(key)} = {toml_value(draw(FLAT_VALUE))}")
    for _ in range(draw(st.integers(0, 2))):
        lines.append("[[notify.receivers]]")
        for key in draw(st.lists(keys_of(RECEIVER_KEYS), max_size=5, unique=True)):
            lines.append(f"{toml_key(key)} = {toml_value(draw(FLAT_VALUE))}")
    return "\n".join(lines) + "\n"


# --- rule files ----------------------------------------------------------------------------

RULE_KEYS = [
    "indicators", "peer_groups", "groups", "id", "name", "reference", "group", "unit",
    "direction", "aggregation", "window", "frequency", "targets", "amber", "derived", "sum",
    "difference", "ratio", "numerator", "denominator", "on", "rules", "alert", "indicator",
    "when", "level", "change", "trend", "spc", "peers", "milestones", "data", "all", "any",
    "not", "for", "keep_firing_for", "severity", "labels", "annotations", "summary",
    "no_data", "flapping", "match", "interval", "worse_than_target", "above", "below",
    "compare", "kind", "value", "state", "stale", "members", "label", "subject", "rank",
    "parent", "headline", "lag", "signal", "last", "status", "total", "by",
]
RULE_VALUES = st.one_of(
    SCALAR, st.sampled_from([
        "up", "down", "neutral", "sum", "rate", "mean", "level", "change_pct", "change_pp",
        "previous", "same_last_year", "overdue", "concern", "critical", "warning", "info",
        "2008/09", "{{ value | number }}", "{{ value.__class__ }}", "{{ labels.x }",
        "{% for x in range(10**9) %}{% endfor %}", "3 periods", "2 evaluations", "1h",
    ]))


def rule_documents() -> st.SearchStrategy[Any]:
    """Rule-file-shaped documents: real keys, values of any type, any nesting."""
    return st.recursive(RULE_VALUES, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys_of(RULE_KEYS), inner, max_size=5)),
        max_leaves=40)
