"""Mattermost incoming webhooks: one Markdown post per notification.

Values from data are Markdown-escaped and mentions are defused (``@channel`` and the
Slack-style ``<!channel>`` Mattermost also understands ping nobody).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from monitor.notify.channels.base import HttpChannel, Message, clip
from monitor.notify.config import MattermostConfig
from monitor.notify.notification import Notification, SendResult
from monitor.notify.templates import escape_mattermost, fallback_text, fallback_title

MAX_POST = 16_000
MAX_ALERTS = 50


class MattermostChannel(HttpChannel):
    kind: ClassVar[str] = "mattermost"
    parts: ClassVar[dict[str, tuple[str, str]]] = {
        "title": ("mattermost", "title"),
        "text": ("mattermost", "summary"),
        "alert": ("mattermost", "mattermost_alert"),
    }
    max_alerts: ClassVar[int] = MAX_ALERTS
    config: MattermostConfig

    def url(self) -> str:
        return self.config.url.get_secret_value()

    def fallback_parts(self, notification: Notification) -> dict[str, Any]:
        return {"title": escape_mattermost(fallback_title(notification)),
                "text": escape_mattermost(fallback_text(notification)), "alerts": []}

    def build(self, notification: Notification, parts: Mapping[str, Any]) -> Message:
        sections = [f"#### {parts.get('title', '')}".strip()]
        if parts.get("text"):
            sections.append(str(parts["text"]))
        sections.extend(str(t) for t in parts.get("alerts", []))
        hidden = self.hidden_alerts(notification)
        if hidden and parts.get("alerts"):
            sections.append(f"_… and {hidden} more alerts not shown_")
        if notification.external_url:
            sections.append(f"[kpi-monitor]({notification.external_url})")
        body: dict[str, Any] = {"text": clip("\n\n".join(sections), MAX_POST)}
        if self.config.channel:
            body["channel"] = self.config.channel
        if self.config.username:
            body["username"] = self.config.username
        if self.config.icon_url:
            body["icon_url"] = self.config.icon_url
        return Message(body)

    def deliver(self, message: Message, notification: Notification) -> SendResult:
        self.post_json(message.body)
        return SendResult()
