"""Configuration schema of the notification pipeline (``[notify]`` in the config file).

The shape follows Alertmanager's so its users feel at home: a routing tree
(``[notify.route]`` with nested ``[[notify.route.routes]]``), named receivers each with
lists of integrations (``[[notify.receivers.slack]]``, ``[[notify.receivers.email]]``,
…), ``[[notify.inhibit_rules]]`` and ``[[notify.time_intervals]]``. On top of that:
per-receiver rate limits, the retry policy of the outbox, and scheduled digests.

Every cross reference (a route's receiver, a time interval's name, a digest's
receivers) is checked when the config loads; all unknown names are reported at once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.configtypes import Duration, Section
from monitor.matchers import MatcherError, parse_matchers
from monitor.notify.timeintervals import TimeIntervalConfig
from monitor.retry import TokenBucket

Name = str
_NAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,100}$"


def _check_matchers(value: list[str]) -> list[str]:
    for text in value:
        try:
            parse_matchers(text)
        except MatcherError as exc:
            raise ValueError(str(exc)) from None
    return value


class RetryPolicy(Section):
    """How the outbox retries a failed delivery before it becomes a dead letter."""

    initial_backoff: Duration = 5.0
    max_backoff: Duration = 300.0
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)
    max_attempts: int = Field(default=12, ge=1)
    give_up_after: Duration = 86400.0
    timeout: Duration = 10.0
    lease: Duration = 60.0

    @model_validator(mode="after")
    def _lease_covers_timeout(self) -> RetryPolicy:
        if self.lease <= self.timeout:
            raise ValueError("retry.lease must be longer than retry.timeout, or a slow send "
                             "could be picked up again by another replica while in flight")
        return self


class RateLimit(Section):
    """At most ``messages`` per ``per`` for each integration of the receiver."""

    messages: int = Field(ge=1)
    per: Duration

    @field_validator("per")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("rate_limit.per must be longer than 0s")
        return value

    def bucket(self, monotonic: Callable[[], float] = time.monotonic) -> TokenBucket:
        """Return a token bucket for one integration: bursts of ``messages``, then
        ``messages`` per ``per``."""
        return TokenBucket(self.messages / self.per, self.messages, monotonic)


class IntegrationConfig(Section):
    """Settings every integration has: template overrides by part name.

    ``templates`` maps a part (``title``, ``alert``, ``subject``, …; each integration
    lists its own) to a Jinja2 template; ``<part>_file`` reads the template from a file.
    """

    kind: ClassVar[str] = ""
    template_parts: ClassVar[tuple[str, ...]] = ()

    templates: dict[str, str] = Field(default_factory=dict)

    @field_validator("templates", mode="before")
    @classmethod
    def _template_files(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for key, text in value.items():
            if isinstance(key, str) and key.endswith("_file"):
                path = Path(str(text))
                try:
                    out[key.removesuffix("_file")] = path.read_text(encoding="utf-8")
                except OSError as exc:
                    raise ValueError(f"templates.{key}: cannot read {path}: {exc.strerror}") \
                        from None
            else:
                out[key] = text
        return out

    @field_validator("templates")
    @classmethod
    def _known_parts(cls, value: dict[str, str]) -> dict[str, str]:
        from monitor.notify.templates import syntax_error

        problems = []
        for part, text in value.items():
            if part not in cls.template_parts:
                allowed = ", ".join(cls.template_parts) or "none"
                problems.append(f"templates.{part}: {cls.kind} has no template part "
                                f"{part!r}; the parts are: {allowed}")
                continue
            error = syntax_error(text)
            if error:
                problems.append(f"templates.{part}: {error}")
        if problems:
            raise ValueError("; ".join(problems))
        return value


class EmailConfig(IntegrationConfig):
    """Email over SMTP: STARTTLS (``starttls``) or implicit TLS (``tls``), optional login."""

    kind: ClassVar[str] = "email"
    template_parts: ClassVar[tuple[str, ...]] = ("subject", "text", "html")

    to: list[str] = Field(min_length=1)
    from_: str = Field(alias="from", default="kpi-monitor@localhost")
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    tls: bool = False
    username: str = ""
    password: SecretStr | None = None
    tls_ca_file: str | None = None
    tls_verify: bool = True
    hello: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address or any(c in address for c in "\r\n,;"):
                raise ValueError(f"{address!r} is not one email address")
        return value

    @field_validator("from_", "hello")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in "\r\n\x00"):
            raise ValueError("cannot contain a line break (CR or LF): it would start a new "
                             "mail header")
        return value

    @field_validator("headers")
    @classmethod
    def _header_lines(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not re.match(r"^[A-Za-z0-9-]{1,76}$", name):
                raise ValueError(f"header name {name!r} is not one: letters, digits and "
                                 "hyphens, at most 76")
            if any(c in text for c in "\r\n\x00"):
                raise ValueError(f"header {name}: the value cannot contain a line break (CR "
                                 "or LF): it would start a new mail header")
        return value

    @model_validator(mode="after")
    def _one_tls_mode(self) -> EmailConfig:
        if self.starttls and self.tls:
            raise ValueError("choose starttls = true (upgrade a plain connection, usually "
                             "port 587) or tls = true (implicit TLS, usually port 465), "
                             "not both")
        if self.password is not None and not self.username:
            raise ValueError("password is set but username is empty")
        return self


class SlackConfig(IntegrationConfig):
    """A Slack incoming webhook; messages use Block Kit."""

    kind: ClassVar[str] = "slack"
    template_parts: ClassVar[tuple[str, ...]] = ("title", "alert", "text")

    url: SecretStr
    channel: str | None = None
    username: str | None = None
    icon_emoji: str | None = None


class TeamsConfig(IntegrationConfig):
    """A Microsoft Teams workflow webhook ("Post to a channel when a webhook request is
    received"); messages are Adaptive Cards."""

    kind: ClassVar[str] = "teams"
    template_parts: ClassVar[tuple[str, ...]] = ("title", "alert", "text")

    url: SecretStr


class MattermostConfig(IntegrationConfig):
    """A Mattermost incoming webhook; messages are Markdown."""

    kind: ClassVar[str] = "mattermost"
    template_parts: ClassVar[tuple[str, ...]] = ("title", "alert", "text")

    url: SecretStr
    channel: str | None = None
    username: str | None = None
    icon_url: str | None = None


class WebhookConfig(IntegrationConfig):
    """A generic webhook receiving Alertmanager's webhook payload (version 4)."""

    kind: ClassVar[str] = "webhook"

    url: SecretStr
    bearer_token: SecretStr | None = None
    max_alerts: int = Field(default=0, ge=0)


class AlertmanagerConfig(IntegrationConfig):
    """An existing Alertmanager; alerts are posted to its ``/api/v2/alerts``.

    A firing alert is posted with ``endsAt`` = now + ``alert_ttl``; route it with a
    ``repeat_interval`` well below ``alert_ttl`` so Alertmanager never times it out.
    """

    kind: ClassVar[str] = "alertmanager"

    url: str
    bearer_token: SecretStr | None = None
    alert_ttl: Duration = 900.0

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL such as http://127.0.0.1:9093")
        return value.rstrip("/")


class FileConfig(IntegrationConfig):
    """Append each notification to a file: JSON lines (``json``) or rendered text."""

    kind: ClassVar[str] = "file"
    template_parts: ClassVar[tuple[str, ...]] = ("text",)

    path: str
    format: Literal["json", "text"] = "json"


class ConsoleConfig(IntegrationConfig):
    """Print each notification's text to standard output."""

    kind: ClassVar[str] = "console"
    template_parts: ClassVar[tuple[str, ...]] = ("text",)


INTEGRATION_KINDS: tuple[str, ...] = ("email", "slack", "teams", "mattermost", "webhook",
                                      "alertmanager", "file", "console")


class ReceiverConfig(Section):
    """A named receiver: where a routed group goes, through any number of integrations."""

    name: Name = Field(pattern=_NAME_PATTERN)
    send_resolved: bool = True
    rate_limit: RateLimit | None = None
    email: list[EmailConfig] = Field(default_factory=list)
    slack: list[SlackConfig] = Field(default_factory=list)
    teams: list[TeamsConfig] = Field(default_factory=list)
    mattermost: list[MattermostConfig] = Field(default_factory=list)
    webhook: list[WebhookConfig] = Field(default_factory=list)
    alertmanager: list[AlertmanagerConfig] = Field(default_factory=list)
    file: list[FileConfig] = Field(default_factory=list)
    console: list[ConsoleConfig] = Field(default_factory=list)

    def integrations(self) -> list[tuple[str, IntegrationConfig]]:
        """Return ``[("slack:0", config), ("email:0", config), …]`` in a stable order."""
        out: list[tuple[str, IntegrationConfig]] = []
        for kind in INTEGRATION_KINDS:
            configs: list[IntegrationConfig] = getattr(self, kind)
            out.extend((f"{kind}:{i}", cfg) for i, cfg in enumerate(configs))
        return out


class RouteConfig(Section):
    """One node of the routing tree. Unset options are inherited from the parent."""

    receiver: str | None = None
    matchers: list[str] = Field(default_factory=list)
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(default=False, alias="continue")
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        return _check_matchers(value)

    @field_validator("group_by")
    @classmethod
    def _all_or_names(cls, value: list[str] | None) -> list[str] | None:
        if value and "..." in value and len(value) > 1:
            raise ValueError('group_by = ["..."] groups by every label; it cannot be '
                             "combined with label names")
        return value

    @field_validator("group_interval", "repeat_interval")
    @classmethod
    def _not_zero(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be longer than 0s")
        return value


class InhibitRuleConfig(Section):
    """Mute alerts matching ``target_matchers`` while an alert matching
    ``source_matchers`` fires with the same values of the ``equal`` labels."""

    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        return _check_matchers(value)


class DigestConfig(Section):
    """A scheduled scorecard message listing only indicators whose status changed."""

    name: str = Field(default="scorecard", pattern=_NAME_PATTERN)
    schedule: str = "0 8 * * mon-fri"
    timezone: str = "UTC"
    receivers: list[str] = Field(min_length=1)
    title: str = "Scorecard: what changed"
    send_empty: bool = False

    @model_validator(mode="after")
    def _cron(self) -> DigestConfig:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(self.schedule, timezone=self.timezone)
        except (ValueError, LookupError) as exc:
            raise ValueError(f"digest {self.name!r}: schedule {self.schedule!r} / timezone "
                             f"{self.timezone!r}: {exc}; write a 5-field crontab such as "
                             "\"0 8 * * mon-fri\" and an IANA zone such as Europe/London") \
                from None
        return self


class NotifyConfig(Section):
    """Routing tree, receivers, inhibition rules, time intervals and digests."""

    route: RouteConfig = Field(default_factory=RouteConfig)
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    inhibit_by_failing_source: bool = True
    time_intervals: list[TimeIntervalConfig] = Field(default_factory=list)
    digests: list[DigestConfig] = Field(default_factory=list)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    poll_interval: Duration = 2.0
    resolved_retention: Duration = 7 * 86400.0
    # the alert history (alert_event), sent messages and claimed transitions
    history_retention: Duration = 90 * 86400.0

    @model_validator(mode="after")
    def _references(self) -> NotifyConfig:
        problems: list[str] = []
        names = [r.name for r in self.receivers]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"receivers: the name {name!r} is used twice")
        known = set(names)
        intervals = {t.name for t in self.time_intervals}
        if self.route.matchers:
            problems.append("route.matchers: the root route matches every alert; put "
                            "matchers on its child routes")
        if self.receivers and not self.route.receiver:
            problems.append("route.receiver: the root route needs a receiver (the default "
                            "for alerts no child route takes)")

        def walk(route: RouteConfig, where: str) -> None:
            if route.receiver is not None and route.receiver not in known:
                problems.append(f"{where}.receiver: unknown receiver {route.receiver!r}; "
                                f"define it in [[notify.receivers]] (known: "
                                f"{', '.join(sorted(known)) or 'none'})")
            for key in ("mute_time_intervals", "active_time_intervals"):
                for name in getattr(route, key):
                    if name not in intervals:
                        problems.append(f"{where}.{key}: unknown time interval {name!r}; "
                                        "define it in [[notify.time_intervals]]")
            for i, child in enumerate(route.routes):
                walk(child, f"{where}.routes[{i}]")

        walk(self.route, "route")
        for i, digest in enumerate(self.digests):
            for name in digest.receivers:
                if name not in known:
                    problems.append(f"digests[{i}].receivers: unknown receiver {name!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def receiver(self, name: str) -> ReceiverConfig | None:
        """Return the receiver called ``name``, or None."""
        return next((r for r in self.receivers if r.name == name), None)

    @property
    def enabled(self) -> bool:
        """True when at least one receiver is configured."""
        return bool(self.receivers)
