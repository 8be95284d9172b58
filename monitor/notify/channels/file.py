"""Appending notifications to a local file: JSON lines, or the rendered text.

The offline default of the bundled example (``var/notifications.log``): nothing leaves
the machine, and every notification can be read back. Each JSON line is the
notification itself plus the rendered ``text``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from monitor.notify.channels.base import Channel, Message
from monitor.notify.config import FileConfig
from monitor.notify.notification import Notification, SendResult
from monitor.notify.templates import fallback_text
from monitor.textsafe import one_line

_LOCK = threading.Lock()


def append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` and sync it, or leave the file as it was.

    Raises OSError (disk full, permissions); a partly written tail is cut off first, so
    a retry appends the whole notification exactly once.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


class FileChannel(Channel):
    kind: ClassVar[str] = "file"
    # Values are escaped to one line each: a label cannot forge lines in the output.
    parts: ClassVar[dict[str, tuple[str, str]]] = {"text": ("line", "text")}
    config: FileConfig

    def fallback_parts(self, notification: Notification) -> dict[str, Any]:
        return {"text": fallback_text(notification, one_line)}

    def build(self, notification: Notification, parts: Mapping[str, Any]) -> Message:
        text = str(parts.get("text", ""))
        if self.config.format == "text":
            line = text.rstrip("\n") + "\n\n"
        else:
            record = json.loads(notification.to_json())
            record["text"] = text
            line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        return Message(line, line)

    def deliver(self, message: Message, notification: Notification) -> SendResult:
        path = Path(self.config.path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _LOCK:
                append_whole(path, str(message.body).encode("utf-8"))
        except OSError as exc:
            raise self.error(f"cannot append to {path}: {exc.strerror}; check the folder "
                             "exists and is writable", retryable=True) from None
        return SendResult()
