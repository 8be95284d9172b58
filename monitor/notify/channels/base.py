"""What every channel is: render a notification into a message, then deliver it.

Rendering is separate from delivery so ``monitor template render`` can preview exactly
what would be sent. A template that fails at send time does not lose the alert: the
channel logs the error (with the receiver and part), counts it, and renders a plain
fallback body instead.

Delivery raises :class:`~monitor.errors.DeliveryError` with ``retryable`` set — true
for connection errors, timeouts, 5xx, 408 and 429 (with ``retry_after`` from the
``Retry-After`` header), false for other 4xx and authentication failures. Every error
message passes through the log redactor, so a webhook URL or password never shows.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from monitor import logs
from monitor.clock import Clock, SystemClock
from monitor.errors import DeliveryError
from monitor.logs import get_logger
from monitor.notify.config import IntegrationConfig
from monitor.notify.notification import Notification, NotifyAlert, SendResult
from monitor.notify.templates import TemplateSet, alert_context, context
from monitor.retry import retry_after_seconds
from monitor.sandbox import budget

log = get_logger(__name__)
USER_AGENT = "kpi-monitor"


@dataclass(frozen=True)
class Message:
    """A rendered message: the body to deliver and a readable preview of it.

    ``text`` is the preview; None means the body as indented JSON, written only when
    :attr:`preview` is read (``monitor template render``): a send never reads it, and
    Python writes indented JSON without its C encoder — most of a webhook's render.
    """

    body: Any
    text: str | None = None
    template_error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def preview(self) -> str:
        if self.text is not None:
            return self.text
        return json.dumps(self.body, indent=2, ensure_ascii=False)


TemplateErrorHook = Callable[[str, str, str], None]  # (receiver, integration, error)


class Channel(ABC):
    """One configured integration of one receiver.

    Subclasses set ``kind`` and ``parts`` (part name → (escape format, default
    template)), implement :meth:`build` and :meth:`deliver`.
    """

    kind: ClassVar[str] = ""
    parts: ClassVar[dict[str, tuple[str, str]]] = {}
    max_alerts: ClassVar[int] = 0  # 0: no limit

    @classmethod
    def alerts_sent(cls, config: IntegrationConfig) -> int:
        """How many alerts of a message this integration ever sends when what it sends
        depends on those alone and on the group's status, common labels and annotations
        and truncated count (``Notification.first``); 0: all of them, or its templates
        may read every alert."""
        return 0

    def __init__(self, receiver: str, integration: str, config: IntegrationConfig, *,
                 clock: Clock | None = None, timeout: float = 10.0,
                 on_template_error: TemplateErrorHook | None = None) -> None:
        self.receiver = receiver
        self.integration = integration
        self.config = config
        self.clock = clock or SystemClock()
        self.timeout = timeout
        self.templates = TemplateSet(self.parts, config.templates)
        self.on_template_error = on_template_error
        for value in config.__dict__.values():
            if isinstance(value, SecretStr):
                logs.register_secret(value.get_secret_value())

    # --- rendering -------------------------------------------------------------------

    def render(self, notification: Notification) -> Message:
        """Return the message for ``notification``; a failing template falls back to plain.

        Never raises for a template problem — an error, a sandbox violation, the template
        budget exceeded, any exception — it logs the error and renders the fallback.
        """
        try:
            with budget():  # one budget for all the parts of one message
                parts = self.render_parts(notification)
            error = None
        except Exception as exc:  # whatever the template did, the alert goes out
            error = f"{type(exc).__name__}: {exc}"
            log.error("template failed; sending the plain fallback body",
                      receiver=self.receiver, integration=self.integration, error=error)
            if self.on_template_error is not None:
                self.on_template_error(self.receiver, self.integration, error)
            parts = self.fallback_parts(notification)
        message = self.build(notification, parts)
        if error is None:
            return message
        return Message(message.body, message.text, error, message.meta)

    def render_parts(self, notification: Notification) -> dict[str, Any]:
        """Return every part rendered from the templates. Raises jinja2.TemplateError
        (including BudgetExceeded)."""
        if not self.parts:  # a channel without templates (webhook): no context to build
            return {}
        ctx = context(notification)
        out: dict[str, Any] = {}
        for part in self.parts:
            if part == "alert":
                shown = self.shown_alerts(notification)
                out["alerts"] = [self.templates.render("alert", {
                    **ctx, "alert": alert_context(a, notification.external_url)})
                    for a in shown]
            else:
                out[part] = self.templates.render(part, ctx)
        return out

    def fallback_parts(self, notification: Notification) -> dict[str, Any]:
        """Return the parts written without templates (used when a template fails)."""
        return {}

    def shown_alerts(self, notification: Notification) -> tuple[NotifyAlert, ...]:
        """Return the alerts that fit in one message of this channel."""
        if self.max_alerts and len(notification.alerts) > self.max_alerts:
            return notification.alerts[:self.max_alerts]
        return notification.alerts

    def hidden_alerts(self, notification: Notification) -> int:
        return len(notification.alerts) - len(self.shown_alerts(notification)) \
            + notification.truncated

    @abstractmethod
    def build(self, notification: Notification, parts: Mapping[str, Any]) -> Message:
        """Return the message assembled from rendered ``parts``."""

    # --- delivery --------------------------------------------------------------------

    @abstractmethod
    def deliver(self, message: Message, notification: Notification) -> SendResult:
        """Send ``message``. Raises DeliveryError (``retryable`` says whether to retry)."""

    def send(self, notification: Notification) -> SendResult:
        """Render and deliver ``notification``. Raises DeliveryError."""
        return self.deliver(self.render(notification), notification)

    def close(self) -> None:  # noqa: B027 (most channels hold no connection)
        """Release connections (idempotent)."""

    def error(self, message: str, *, retryable: bool, retry_after: float | None = None
              ) -> DeliveryError:
        """Return a DeliveryError naming this integration, with secrets redacted."""
        return DeliveryError(logs.redact(f"{self.receiver}/{self.integration}: {message}"),
                             retryable=retryable, retry_after=retry_after)


class HttpChannel(Channel):
    """A channel that POSTs JSON over HTTP(S)."""

    def __init__(self, receiver: str, integration: str, config: IntegrationConfig, *,
                 clock: Clock | None = None, timeout: float = 10.0,
                 on_template_error: TemplateErrorHook | None = None) -> None:
        super().__init__(receiver, integration, config, clock=clock, timeout=timeout,
                         on_template_error=on_template_error)
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False,
                                        headers={"User-Agent": USER_AGENT})
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @abstractmethod
    def url(self) -> str:
        """Return the URL to POST to (may be secret)."""

    def headers(self) -> dict[str, str]:
        return {}

    def post_json(self, body: Any, ok: tuple[int, ...] = (200, 201, 202, 204)) -> httpx.Response:
        """POST ``body`` as JSON; return the response. Raises DeliveryError."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            response = self.client.post(
                self.url(), content=data,
                headers={"Content-Type": "application/json", **self.headers()})
        except httpx.TimeoutException:
            raise self.error(f"no answer within {self.timeout:g}s", retryable=True) from None
        except httpx.HTTPError as exc:
            raise self.error(f"cannot connect: {type(exc).__name__}: {exc}",
                             retryable=True) from None
        if response.status_code in ok:
            return response
        raise self.http_error(response)

    def http_error(self, response: httpx.Response) -> DeliveryError:
        """Return the DeliveryError for an unexpected HTTP status."""
        status = response.status_code
        retryable = status >= 500 or status in (408, 425, 429)
        retry_after = retry_after_seconds(response.headers.get("retry-after"),
                                          self.clock.now())
        body = response.text.strip().replace("\n", " ")[:300]
        hint = ""
        if status in (401, 403):
            hint = "; check the credentials or token"
        elif status == 404:
            hint = "; check the URL (the webhook may have been deleted)"
        elif status == 429:
            hint = "; rate limited by the receiver"
        return self.error(f"HTTP {status}{hint}: {body}" if body else f"HTTP {status}{hint}",
                          retryable=retryable, retry_after=retry_after)


def chunk_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters, at line ends if possible."""
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            pieces.append(current)
            current = ""
        current += line
    if current.strip():
        pieces.append(current)
    return [p.rstrip("\n") for p in pieces if p.strip()]


def clip(text: str, limit: int, marker: str = "…") -> str:
    """Return ``text`` cut to ``limit`` characters, ending with ``marker`` when cut.

    A cut never leaves half an HTML entity (``&am``) at the end.
    """
    if len(text) <= limit:
        return text
    cut = text[:limit - len(marker)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp <= 6:
        cut = cut[:amp]
    return cut + marker
