"""Printing notifications to standard output: for trying things out and for containers."""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from typing import Any, ClassVar, TextIO

from monitor.notify.channels.base import Channel, Message
from monitor.notify.config import ConsoleConfig
from monitor.notify.notification import Notification, SendResult
from monitor.notify.templates import fallback_text
from monitor.textsafe import one_line

_LOCK = threading.Lock()


class ConsoleChannel(Channel):
    kind: ClassVar[str] = "console"
    # Values are escaped to one line each: a label cannot forge lines in the output.
    parts: ClassVar[dict[str, tuple[str, str]]] = {"text": ("line", "text")}
    config: ConsoleConfig
    stream: TextIO | None = None  # tests may point it elsewhere; default: sys.stdout

    def fallback_parts(self, notification: Notification) -> dict[str, Any]:
        return {"text": fallback_text(notification, one_line)}

    def build(self, notification: Notification, parts: Mapping[str, Any]) -> Message:
        text = str(parts.get("text", "")).rstrip("\n") + "\n"
        return Message(text, text)

    def deliver(self, message: Message, notification: Notification) -> SendResult:
        stream = self.stream or sys.stdout
        try:
            with _LOCK:
                stream.write(str(message.body) + "\n")
                stream.flush()
        except (OSError, ValueError) as exc:
            raise self.error(f"cannot write to standard output: {exc}", retryable=False) \
                from None
        return SendResult()
