"""Slack incoming webhooks, with Block Kit.

A message is one section with the title and summary, one section per alert, and a
context line; Slack's limits are kept by construction: at most 50 blocks (alerts past
45 are counted, not shown) and at most 3,000 characters per section text. Every value
from data is mrkdwn-escaped, so a borough named ``<!channel>`` pings nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from monitor.notify.channels.base import HttpChannel, Message, chunk_text, clip
from monitor.notify.config import SlackConfig
from monitor.notify.notification import Notification, SendResult
from monitor.notify.templates import escape_slack, fallback_text, fallback_title

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_ALERT_SECTIONS = 45


class SlackChannel(HttpChannel):
    kind: ClassVar[str] = "slack"
    parts: ClassVar[dict[str, tuple[str, str]]] = {
        "title": ("slack", "title"),
        "text": ("slack", "summary"),
        "alert": ("slack", "slack_alert"),
    }
    max_alerts: ClassVar[int] = MAX_ALERT_SECTIONS
    config: SlackConfig

    def url(self) -> str:
        return self.config.url.get_secret_value()

    def fallback_parts(self, notification: Notification) -> dict[str, Any]:
        return {"title": escape_slack(fallback_title(notification)),
                "text": escape_slack(fallback_text(notification)), "alerts": []}

    def build(self, notification: Notification, parts: Mapping[str, Any]) -> Message:
        title = str(parts.get("title", ""))
        blocks: list[dict[str, Any]] = []
        texts = chunk_text(str(parts.get("text", "")), MAX_SECTION_TEXT - 200) or [""]
        head = clip(f"*{title}*\n{texts[0]}".strip(), MAX_SECTION_TEXT)
        blocks.append(_section(head))
        for extra in texts[1:]:
            if len(blocks) >= MAX_BLOCKS - 3:
                break
            blocks.append(_section(clip(extra, MAX_SECTION_TEXT)))
        alerts = list(parts.get("alerts", []))
        if alerts:
            blocks.append({"type": "divider"})
        room = MAX_BLOCKS - len(blocks) - 2
        for text in alerts[:room]:
            blocks.append(_section(clip(text, MAX_SECTION_TEXT)))
        hidden = self.hidden_alerts(notification) + max(0, len(alerts) - room)
        footer = []
        if hidden:
            footer.append(f"… and {hidden} more alert{'s' if hidden != 1 else ''} not shown")
        if notification.external_url:
            footer.append(f"<{escape_slack(notification.external_url)}|kpi-monitor>")
        if footer:
            blocks.append({"type": "context",
                           "elements": [{"type": "mrkdwn", "text": " · ".join(footer)}]})
        body: dict[str, Any] = {"text": clip(title, 3000), "blocks": blocks[:MAX_BLOCKS]}
        if self.config.channel:
            body["channel"] = self.config.channel
        if self.config.username:
            body["username"] = self.config.username
        if self.config.icon_emoji:
            body["icon_emoji"] = self.config.icon_emoji
        return Message(body)

    def deliver(self, message: Message, notification: Notification) -> SendResult:
        self.post_json(message.body)
        return SendResult()


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text or " "}}
