"""Pushing alerts to an existing Alertmanager through its ``/api/v2/alerts``.

Firing alerts are posted with ``endsAt`` = now + ``alert_ttl`` (Alertmanager resolves
an alert whose ``endsAt`` passes), resolved ones with their resolution time, so the
receiving Alertmanager shows them resolved at once. Digests are not alerts and are
skipped. A test posts the sample alerts labelled ``test="true"`` for five minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from monitor.notify.channels.base import HttpChannel, Message
from monitor.notify.channels.webhook import am_alert, rfc3339
from monitor.notify.config import AlertmanagerConfig
from monitor.notify.notification import Notification, SendResult

TEST_TTL = 300.0


class AlertmanagerChannel(HttpChannel):
    kind: ClassVar[str] = "alertmanager"
    config: AlertmanagerConfig

    def url(self) -> str:
        return f"{self.config.url}/api/v2/alerts"

    def headers(self) -> dict[str, str]:
        token = self.config.bearer_token
        return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}

    def build(self, notification: Notification, parts: Mapping[str, Any]) -> Message:
        now = self.clock.now()
        ttl = TEST_TTL if notification.kind == "test" else self.config.alert_ttl
        alerts = []
        for alert in notification.alerts:
            shaped = am_alert(alert, notification.external_url)
            labels = dict(shaped["labels"])
            if notification.kind == "test":
                labels["test"] = "true"
            ends = rfc3339(now + timedelta(seconds=ttl)) if alert.firing else shaped["endsAt"]
            alerts.append({"labels": labels, "annotations": shaped["annotations"],
                           "startsAt": shaped["startsAt"], "endsAt": ends,
                           "generatorURL": shaped["generatorURL"]})
        return Message(alerts)

    def deliver(self, message: Message, notification: Notification) -> SendResult:
        if notification.kind in ("digest", "report") or not message.body:
            return SendResult("skipped", f"Alertmanager takes alerts, not {notification.kind}s")
        self.post_json(message.body)
        return SendResult()
