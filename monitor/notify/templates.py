"""Message templates: Jinja2 in a sandbox with strict undefined, escaped per format.

Every channel renders named *parts* (Slack: ``title``, ``text``, ``alert``; email:
``subject``, ``text``, ``html``; …) from built-in defaults in ``default_templates/``
that operators override per integration. Values from data are escaped for the format
the part is written in, so an alert label never becomes markup:

- ``slack``: Slack mrkdwn control characters (``& < >``) — ``<!channel>`` pings nobody;
- ``html``: HTML autoescaping;
- ``markdown`` (Teams): CommonMark punctuation and Adaptive Card ``{{…}}`` functions;
- ``mattermost``: Markdown, plus ``@`` mentions and Slack-style ``<!channel>``;
- ``line``: control characters shown escaped (``\\r``, ``\\n``), so a value never
  starts a line of its own in a log-like output (the file and console receivers);
- ``text``: nothing (plain text bodies, subjects).

Template literal text is never escaped; an expression result is, unless the template
marks it ``|safe``. Rendering a part raises ``jinja2.TemplateError``; channels catch it,
log it and send a plain fallback body instead (see :func:`fallback_text`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from monitor import links
from monitor.configtypes import format_duration
from monitor.notify.notification import Notification, NotifyAlert
from monitor.sandbox import BudgetedSandbox
from monitor.textfmt import number
from monitor.textsafe import one_line

DEFAULTS_DIR = Path(__file__).with_name("default_templates")
FORMATS = ("text", "line", "html", "slack", "markdown", "mattermost")


# --- escaping -----------------------------------------------------------------------


def escape_slack(text: str) -> str:
    """Return ``text`` safe inside Slack mrkdwn: ``&``, ``<`` and ``>`` as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_MD_INLINE = re.compile(r"([\\`*_~\[\]<>{}|])")
_MD_LINE_START = re.compile(r"^([ \t]*)([#+\-](?=\s|$)|\d+(?=[.)](?:\s|$)))", re.MULTILINE)


def escape_markdown(text: str) -> str:
    """Return ``text`` shown literally by CommonMark renderers (Teams, Mattermost).

    Inline punctuation is backslash-escaped; list, heading and quote markers are
    escaped only at the start of a line, so ordinary text stays readable.
    """
    text = _MD_INLINE.sub(r"\\\1", text)

    def _line(found: re.Match[str]) -> str:
        marker = found.group(2)
        if marker[0].isdigit():
            return found.group(1) + marker + "\\"
        return found.group(1) + "\\" + marker

    return _MD_LINE_START.sub(_line, text)


def escape_mattermost(text: str) -> str:
    """Return ``text`` safe in Mattermost: Markdown-escaped and with no live mention."""
    # A word joiner after "@" keeps "@channel" readable but no longer a mention.
    return escape_markdown(text).replace("@", "@\u2060")


ESCAPERS: dict[str, Callable[[str], str]] = {
    "text": lambda s: s,
    "line": one_line,
    "html": lambda s: str(escape(s)),
    "slack": escape_slack,
    "markdown": escape_markdown,
    "mattermost": escape_mattermost,
}


# --- filters ------------------------------------------------------------------------


def time_text(value: Any, fmt: str = "%Y-%m-%d %H:%M %Z", zone: str = "UTC") -> str:
    """Return an aware datetime (or ISO text) formatted in the IANA ``zone``."""
    if value is None:
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(when, datetime):
        return str(value)
    return when.astimezone(ZoneInfo(zone)).strftime(fmt)


def labels_text(labels: Mapping[str, str], exclude: Iterable[str] = ()) -> str:
    """``{"borough": "Camden", "severity": "warning"}`` -> ``borough=Camden, severity=warning``."""
    skip = set(exclude)
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in skip)


def status_word(status: Any) -> str:
    """``not_rated`` -> ``not rated``: a status as the pages and messages say it."""
    return str(status).replace("_", " ") if status else ""


def duration_text(seconds: Any) -> str:
    """``5400`` -> ``1h30m``."""
    try:
        return format_duration(max(0.0, float(seconds)))
    except (TypeError, ValueError):
        return str(seconds)


# --- environments -------------------------------------------------------------------


def _finalize_for(fmt: str) -> Callable[[Any], Any]:
    escaper = ESCAPERS[fmt]

    def finalize(value: Any) -> Any:
        if isinstance(value, Markup) or value is None:
            return value
        return escaper(str(value))

    return finalize


class _Sandbox(BudgetedSandbox, SandboxedEnvironment):
    """The sandbox, rendering within the template budget (``monitor.sandbox``)."""


@cache
def environment(fmt: str) -> SandboxedEnvironment:
    """Return the sandboxed environment for one output format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown template format {fmt!r}; use one of {', '.join(FORMATS)}")
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=fmt == "html",
        finalize=None if fmt in ("html", "text") else _finalize_for(fmt),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["number"] = number
    env.filters["time"] = time_text
    env.filters["labels"] = labels_text
    env.filters["duration"] = duration_text
    env.filters["status_word"] = status_word
    # Already escaped for their format, so marked safe against escaping twice.
    env.filters["escape_slack"] = lambda s: Markup(escape_slack(str(s)))  # noqa: S704
    env.filters["escape_markdown"] = lambda s: Markup(escape_markdown(str(s)))  # noqa: S704
    return env


def syntax_error(text: str) -> str | None:
    """Return None when ``text`` compiles, else the compiler's message with its line."""
    try:
        environment("text").parse(text)
    except TemplateSyntaxError as exc:
        return f"template syntax error on line {exc.lineno}: {exc.message}"
    return None


@lru_cache(maxsize=512)
def compile_template(fmt: str, text: str) -> Template:
    """Return the compiled template. Raises jinja2.TemplateSyntaxError."""
    return environment(fmt).from_string(text)


@cache
def default_template(name: str) -> str:
    """Return the built-in template ``default_templates/<name>.j2``."""
    return (DEFAULTS_DIR / f"{name}.j2").read_text(encoding="utf-8")


class TemplateSet:
    """The parts one integration renders: built-in defaults, then the operator's overrides.

    ``parts`` maps a part name to (format, default template name).
    """

    def __init__(self, parts: Mapping[str, tuple[str, str]],
                 overrides: Mapping[str, str] | None = None) -> None:
        self.parts = dict(parts)
        self.overrides = dict(overrides or {})

    def source(self, part: str) -> str:
        """Return the template text used for ``part``."""
        if part in self.overrides:
            return self.overrides[part]
        return default_template(self.parts[part][1])

    def render(self, part: str, context: Mapping[str, Any]) -> str:
        """Return ``part`` rendered with ``context``, stripped.

        Raises jinja2.TemplateError (undefined variable, sandbox violation, syntax).
        """
        fmt = self.parts[part][0]
        return compile_template(fmt, self.source(part)).render(**context).strip()


# --- the variables a template sees --------------------------------------------------


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def alert_url(alert: NotifyAlert, external_url: str) -> str:
    """Return the alerts page filtered to this alert's labels (empty without a base URL)."""
    if not external_url:
        return ""
    query = [("match", f'{name}="{_quoted(value)}"') for name, value in
             sorted(alert.labels.items())]
    if not alert.firing:
        query.append(("state", "resolved"))
    return f"{external_url.rstrip('/')}/alerts?{urlencode(query)}"


def series_url(alert: NotifyAlert, external_url: str) -> str:
    """Return the series chart the alert is about, its data period highlighted (empty
    without a base URL, or for an alert about no series)."""
    indicator, series = alert.labels.get("indicator"), alert.annotations.get("series")
    if not external_url or not indicator or not series:
        return ""
    return links.series_url(external_url, indicator, series,
                            alert.annotations.get("period_id") or None)


def silence_url(alert: NotifyAlert, external_url: str) -> str:
    """Return the silence form pre-filled with the alert's labels (empty without a base URL)."""
    return links.silence_url(external_url, alert.labels) if external_url else ""


def value_text(alert: NotifyAlert) -> str:
    """Return the alert's ``value_text`` annotation (what the rules published: the value
    in its unit) when it has one and a value; else the value as :func:`number` writes it."""
    shown = alert.annotations.get("value_text")
    return shown if shown and alert.value is not None else number(alert.value)


def alert_context(alert: NotifyAlert, external_url: str = "") -> dict[str, Any]:
    """Return the variables describing one alert (``alert.*`` in templates)."""
    summary = alert.annotations.get("summary") or \
        f"{alert.name} {labels_text(alert.labels, exclude=('alertname',))}".strip()
    url = alert_url(alert, external_url)
    return {
        "id": alert.alert_id,
        "fingerprint": alert.alert_id,
        "rule": alert.rule,
        "name": alert.name,
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "summary": summary,
        "description": alert.annotations.get("description", ""),
        "explanation": alert.explanation,
        "value": alert.value,
        # The value in its indicator's unit as the rules published it ("+0.6%", "77.0%"),
        # as the pages show it; the plain number when they published none.
        "value_text": value_text(alert),
        # The period the value is about (Jul-08); starts_at and ends_at are the daemon's
        # clock: when it noticed, not what the data is about.
        "period": alert.annotations.get("period", ""),
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "url": url,
        "generator_url": url,
        # The page that explains the alert (its series chart, the month highlighted) and
        # the silence form pre-filled with its labels.
        "series_url": series_url(alert, external_url),
        "silence_url": silence_url(alert, external_url),
        # What made it fire when that was a revision: "Jun-08 was revised 77.4 → 76.9".
        "cause": alert.annotations.get("cause", ""),
    }


def context(notification: Notification) -> dict[str, Any]:
    """Return every variable a template can use (documented in docs/notifications.md)."""
    alerts = [alert_context(a, notification.external_url) for a in notification.alerts]
    digest = None
    if notification.digest is not None:
        digest = {
            "name": notification.digest.name,
            "title": notification.digest.title,
            "since": notification.digest.since,
            "changes": [item.to_dict() for item in notification.digest.items],
        }
    return {
        "kind": notification.kind,
        "receiver": notification.receiver,
        "status": notification.status,
        "group_key": notification.group_key,
        "group_labels": dict(notification.group_labels),
        "common_labels": notification.common_labels,
        "common_annotations": notification.common_annotations,
        "alerts": alerts,
        "firing": [a for a in alerts if a["status"] == "firing"],
        "resolved": [a for a in alerts if a["status"] != "firing"],
        "truncated": notification.truncated,
        "external_url": notification.external_url,
        "now": notification.created_at,
        "message_id": notification.message_id,
        "digest": digest,
        "report": notification.report.to_dict() if notification.report else None,
    }


# --- the fallback used when a template fails ----------------------------------------


def fallback_title(notification: Notification) -> str:
    """Return a plain one-line title that needs no template."""
    if notification.kind == "digest" and notification.digest is not None:
        return notification.digest.title
    if notification.kind == "report" and notification.report is not None:
        return f"{notification.report.title}: data to {notification.report.data_to}"
    if notification.kind == "test":
        return f"Test notification for {notification.receiver}"
    firing, resolved = len(notification.firing), len(notification.resolved)
    name = notification.common_labels.get("alertname") or "alerts"
    counts = ", ".join(p for p in (f"{firing} firing" if firing else "",
                                   f"{resolved} resolved" if resolved else "") if p)
    return f"[{notification.status.upper()}] {name} ({counts or 'no alerts'})"


def fallback_text(notification: Notification,
                  escape: Callable[[str], str] = ESCAPERS["text"]) -> str:
    """Return a plain-text body that needs no template: one paragraph per alert.

    ``escape`` is applied to every value from data (``one_line`` for log-like outputs).
    """
    lines = [escape(fallback_title(notification)), ""]
    if notification.report is not None:
        report = notification.report
        lines.append(escape(report.summary))
        if report.link:
            lines.append(escape(report.link))
    if notification.digest is not None:
        for item in notification.digest.items:
            lines.append(escape(f"- {item.indicator}: {status_word(item.previous) or 'new'} -> "
                                f"{status_word(item.current)}"
                                + (f" — {item.text}" if item.text else "")))
    for alert in notification.alerts:
        ctx = alert_context(alert, notification.external_url)
        value = ctx["value_text"]
        when = "at resolution" if alert.status != "firing" else "when it fired"
        data = f" (data to {ctx['period']})" if ctx["period"] else ""
        lines.append(escape(f"{alert.status.upper()}: {ctx['summary']}"))
        if alert.explanation:
            lines.append(f"  {escape(alert.explanation)}")
        lines.append(escape(f"  value {when}: {value}{data}; labels: {labels_text(alert.labels)}"))
        if ctx["cause"]:
            lines.append(escape(f"  fired because {ctx['cause']}"))
        if ctx["series_url"]:
            lines.append(escape(f"  chart: {ctx['series_url']}"))
        if ctx["silence_url"]:
            lines.append(escape(f"  silence: {ctx['silence_url']}"))
        lines.append("")
    if notification.truncated:
        lines.append(f"… and {notification.truncated} more alerts")
    if notification.external_url:
        lines.append(notification.external_url)
    return "\n".join(lines).strip()


__all__ = ["ESCAPERS", "TemplateError", "TemplateSet", "context", "escape_markdown",
           "escape_mattermost", "escape_slack", "fallback_text", "fallback_title"]
