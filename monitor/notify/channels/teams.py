"""Microsoft Teams through a workflow webhook, as an Adaptive Card.

The body is the envelope Teams workflows expect (``{"type": "message", "attachments":
[{"contentType": "application/vnd.microsoft.card.adaptive", "content": {…}}]}``) around
an Adaptive Card 1.4: a title, a summary, one container per alert and a link back.
Values from data are Markdown-escaped (Adaptive Cards render a CommonMark subset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from monitor.notify.channels.base import HttpChannel, Message, clip
from monitor.notify.config import TeamsConfig
from monitor.notify.notification import Notification, SendResult
from monitor.notify.templates import escape_markdown, fallback_text, fallback_title

CARD_VERSION = "1.4"
MAX_ALERTS = 30
MAX_TEXT = 4000


def _paragraphs(text: str) -> str:
    # Adaptive Card Markdown joins single newlines; keep the lines the template wrote.
    return "\n\n".join(line for line in text.splitlines() if line.strip())


class TeamsChannel(HttpChannel):
    kind: ClassVar[str] = "teams"
    parts: ClassVar[dict[str, tuple[str, str]]] = {
        "title": ("markdown", "title"),
        "text": ("markdown", "summary"),
        "alert": ("markdown", "markdown_alert"),
    }
    max_alerts: ClassVar[int] = MAX_ALERTS
    config: TeamsConfig

    def url(self) -> str:
        return self.config.url.get_secret_value()

    def fallback_parts(self, notification: Notification) -> dict[str, Any]:
        return {"title": escape_markdown(fallback_title(notification)),
                "text": escape_markdown(fallback_text(notification)), "alerts": []}

    def build(self, notification: Notification, parts: Mapping[str, Any]) -> Message:
        firing = notification.status == "firing" and notification.kind == "alerts"
        body: list[dict[str, Any]] = [
            {"type": "TextBlock", "text": clip(str(parts.get("title", "")), 500),
             "size": "Large", "weight": "Bolder", "wrap": True,
             "color": "Attention" if firing else "Good"},
        ]
        if parts.get("text"):
            body.append({"type": "TextBlock", "text": clip(_paragraphs(str(parts["text"])),
                                                           MAX_TEXT),
                         "wrap": True, "isSubtle": True})
        for text in parts.get("alerts", []):
            body.append({"type": "Container", "separator": True, "spacing": "Medium",
                         "items": [{"type": "TextBlock", "wrap": True,
                                    "text": clip(_paragraphs(str(text)), MAX_TEXT)}]})
        hidden = self.hidden_alerts(notification)
        if hidden and parts.get("alerts"):
            body.append({"type": "TextBlock", "isSubtle": True, "wrap": True,
                         "text": f"… and {hidden} more alerts not shown"})
        card: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": CARD_VERSION, "body": body,
            "msteams": {"width": "Full"},
        }
        if notification.external_url:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open kpi-monitor",
                                "url": notification.external_url}]
        envelope = {"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": None, "content": card}]}
        return Message(envelope)

    def deliver(self, message: Message, notification: Notification) -> SendResult:
        self.post_json(message.body)
        return SendResult()
