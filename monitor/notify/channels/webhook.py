"""A generic webhook receiving Alertmanager's webhook payload, version 4.

Anything that consumes Alertmanager webhooks consumes these. Each alert's annotations
also carry ``value`` (for a resolved alert, the value at resolution) and
``explanation`` unless the rule already set annotations of those names. Digests and
tests use the same envelope: a digest has no alerts and a ``digest`` object.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from monitor.notify.channels.base import HttpChannel, Message
from monitor.notify.config import IntegrationConfig, WebhookConfig
from monitor.notify.notification import Notification, NotifyAlert, SendResult
from monitor.notify.templates import alert_context

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(value: datetime | None) -> str:
    """Return ``2008-07-31T09:00:00Z`` (Alertmanager's zero time for None)."""
    if value is None:
        return ZERO_TIME
    text = value.isoformat().replace("+00:00", "Z")
    return text if text.endswith("Z") else text + "Z"


def am_alert(alert: NotifyAlert, external_url: str) -> dict[str, Any]:
    """Return one alert in Alertmanager's webhook form."""
    annotations = dict(alert.annotations)
    annotations.setdefault("value", f"{alert.value:.10g}" if alert.value is not None else "")
    if alert.explanation:
        annotations.setdefault("explanation", alert.explanation)
    shown = alert_context(alert, external_url)
    for link in ("series_url", "silence_url"):  # the chart that explains it, a silence
        if shown[link]:
            annotations.setdefault(link, shown[link])
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": annotations,
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(alert.ends_at) if not alert.firing else ZERO_TIME,
        "generatorURL": shown["url"],
        "fingerprint": alert.alert_id,
    }


def payload(notification: Notification, max_alerts: int = 0) -> dict[str, Any]:
    """Return the Alertmanager webhook (version 4) body for ``notification``."""
    alerts = list(notification.alerts)
    truncated = notification.truncated
    if max_alerts and len(alerts) > max_alerts:
        truncated += len(alerts) - max_alerts
        alerts = alerts[:max_alerts]
    body: dict[str, Any] = {
        "version": "4",
        "groupKey": notification.group_key or f"{notification.kind}:{notification.message_id}",
        "truncatedAlerts": truncated,
        "status": notification.status,
        "receiver": notification.receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": notification.common_labels,
        "commonAnnotations": notification.common_annotations,
        "externalURL": notification.external_url,
        "alerts": [am_alert(a, notification.external_url) for a in alerts],
    }
    if notification.kind != "alerts":
        body["kind"] = notification.kind
    if notification.digest is not None:
        body["digest"] = notification.digest.to_dict()
    return body


class WebhookChannel(HttpChannel):
    kind: ClassVar[str] = "webhook"
    config: WebhookConfig

    @classmethod
    def alerts_sent(cls, config: IntegrationConfig) -> int:
        return config.max_alerts if isinstance(config, WebhookConfig) else 0

    def url(self) -> str:
        return self.config.url.get_secret_value()

    def headers(self) -> dict[str, str]:
        token = self.config.bearer_token
        return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}

    def build(self, notification: Notification, parts: Mapping[str, Any]) -> Message:
        body = payload(notification, self.config.max_alerts)
        return Message(body)

    def deliver(self, message: Message, notification: Notification) -> SendResult:
        self.post_json(message.body)
        return SendResult()
