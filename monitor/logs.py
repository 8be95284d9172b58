"""Structured logging: ``key=value`` lines for people, JSON lines with ``--log-format json``.

Every handler passes through a redaction filter that replaces registered secret values
(API tokens, webhook URLs, passwords) with ``<redacted>`` wherever they appear.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

from monitor.textsafe import has_control

REDACTED = "<redacted>"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Make ``value`` unprintable: every later log line shows ``<redacted>`` instead."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``<redacted>``."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' ="') or has_control(text):
        return json.dumps(text)
    return text


class LogfmtFormatter(logging.Formatter):
    """``ts=… level=… logger=… msg="…" key=value`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        parts = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            parts["error"] = self.formatException(record.exc_info)
        return redact(" ".join(f"{k}={_logfmt_value(v)}" for k, v in parts.items()))


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the same keys as the logfmt form."""

    def format(self, record: logging.LogRecord) -> str:
        parts = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            parts["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(parts, default=str))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record.

    A handler holding the stream it saw at set-up keeps writing to it after a test
    runner (or a daemonising wrapper) has swapped and closed it.
    """

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup(level: str = "info", fmt: str = "logfmt", stream: TextIO | None = None) -> None:
    """Configure the root logger once; calling it again replaces the handler."""
    handler: logging.Handler = (logging.StreamHandler(stream) if stream is not None
                                else _StderrHandler())
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "uvicorn.access", "httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Log:
    """A logger whose calls take structured fields: ``log.info("poll done", source=s, rows=3)``."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, msg: str, exc: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, extra={"fields": fields}, exc_info=exc, stacklevel=3)

    def debug(self, msg: str, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, False, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._log(logging.INFO, msg, False, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, False, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, False, fields)

    def exception(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, True, fields)


def get_logger(name: str) -> Log:
    """Return a structured logger for ``name`` (use the module's ``__name__``)."""
    return Log(name)
