"""Real HTTP receivers on loopback that validate what the channels send.

Each receiver is a ``ThreadingHTTPServer`` in a thread. It records every request,
checks the body against the format the real service accepts (Slack Block Kit limits,
a Teams workflow envelope with a valid Adaptive Card, a Mattermost post, Alertmanager's
webhook schema version 4) and answers with scripted responses — 500s, 429s with
``Retry-After``, 400s — or holds a request open to play a slow receiver.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Validator = Callable[[Any], list[str]]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    payload: Any
    problems: list[str]


class LoopbackReceiver:
    """An HTTP server on 127.0.0.1 that records, validates and answers as scripted."""

    def __init__(self, validator: Validator | None = None, replies: list[Reply] | None = None,
                 default: Reply | None = None) -> None:
        self.validator = validator
        self.replies = list(replies or [])
        self.default = default or Reply()
        self.requests: list[Received] = []
        self.hold = threading.Event()
        self.hold.set()  # cleared: requests wait until it is set again
        self.arrived = threading.Condition()
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                super().setup()
                # Two writes per response: without this, Nagle and delayed ACKs add 40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body) if body else None
                    problems = receiver.validator(payload) if receiver.validator else []
                except json.JSONDecodeError as exc:
                    payload, problems = None, [f"not JSON: {exc}"]
                with receiver.arrived:
                    receiver.requests.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                        payload, problems))
                    reply = receiver.replies.pop(0) if receiver.replies else receiver.default
                    receiver.arrived.notify_all()
                receiver.hold.wait(30)
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                if problems and reply.status < 300:
                    reply = Reply(400, "invalid payload: " + "; ".join(problems))
                data = reply.body.encode()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client is gone (killed mid-request)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Return True once at least ``count`` requests arrived (False on timeout)."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


# --- validators: what each real service accepts ---------------------------------------

SLACK_BLOCK_TYPES = {"section", "divider", "context", "header", "actions", "image"}


def validate_slack(body: Any) -> list[str]:
    """Problems Slack would reject: at most 50 blocks, section text at most 3,000 chars."""
    problems: list[str] = []
    if not isinstance(body, dict):
        return ["body is not an object"]
    if not isinstance(body.get("text"), str):
        problems.append("top-level text (the notification fallback) is missing")
    blocks = body.get("blocks", [])
    if not isinstance(blocks, list) or not blocks:
        return [*problems, "blocks must be a non-empty list"]
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks (Slack allows 50)")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind not in SLACK_BLOCK_TYPES:
            problems.append(f"block {i}: unknown type {kind!r}")
        if kind == "section":
            text = block.get("text", {})
            if text.get("type") not in ("mrkdwn", "plain_text"):
                problems.append(f"block {i}: text type {text.get('type')!r}")
            content = text.get("text")
            if not isinstance(content, str) or not content:
                problems.append(f"block {i}: empty section text")
            elif len(content) > 3000:
                problems.append(f"block {i}: section text of {len(content)} characters")
        if kind == "context":
            elements = block.get("elements", [])
            if not elements or len(elements) > 10:
                problems.append(f"block {i}: context needs 1 to 10 elements")
    return problems


ADAPTIVE_ELEMENTS = {"TextBlock", "Container", "FactSet", "ColumnSet", "Image", "RichTextBlock",
                     "ActionSet"}
ADAPTIVE_ACTIONS = {"Action.OpenUrl", "Action.Submit", "Action.ShowCard", "Action.ToggleVisibility",
                    "Action.Execute"}


def _adaptive_element(element: Any, where: str, problems: list[str]) -> None:
    if not isinstance(element, dict):
        problems.append(f"{where}: not an object")
        return
    kind = element.get("type")
    if kind not in ADAPTIVE_ELEMENTS:
        problems.append(f"{where}: unknown element type {kind!r}")
        return
    if kind == "TextBlock":
        if not isinstance(element.get("text"), str) or not element["text"].strip():
            problems.append(f"{where}: TextBlock needs a non-empty text")
        for key, allowed in (("size", {"Default", "Small", "Medium", "Large", "ExtraLarge"}),
                             ("weight", {"Default", "Lighter", "Bolder"}),
                             ("color", {"Default", "Dark", "Light", "Accent", "Good",
                                        "Warning", "Attention"})):
            if key in element and element[key] not in allowed:
                problems.append(f"{where}: {key} {element[key]!r} is not allowed")
    if kind == "Container":
        items = element.get("items")
        if not isinstance(items, list) or not items:
            problems.append(f"{where}: Container needs items")
        else:
            for j, item in enumerate(items):
                _adaptive_element(item, f"{where}.items[{j}]", problems)


def validate_teams(body: Any) -> list[str]:
    """Problems a Teams workflow would reject: the envelope and an Adaptive Card."""
    problems: list[str] = []
    if not isinstance(body, dict) or body.get("type") != "message":
        return ['envelope must be {"type": "message", …}']
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return ["attachments must hold exactly one card"]
    attachment = attachments[0]
    if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
        problems.append(f"contentType {attachment.get('contentType')!r}")
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        return [*problems, "content is not an AdaptiveCard"]
    if not re.fullmatch(r"1\.[0-6]", str(card.get("version", ""))):
        problems.append(f"version {card.get('version')!r} (Teams supports 1.0 to 1.5/1.6)")
    body_items = card.get("body")
    if not isinstance(body_items, list) or not body_items:
        problems.append("card body must be a non-empty list")
    else:
        for i, element in enumerate(body_items):
            _adaptive_element(element, f"body[{i}]", problems)
    for i, action in enumerate(card.get("actions", [])):
        if action.get("type") not in ADAPTIVE_ACTIONS:
            problems.append(f"actions[{i}]: unknown type {action.get('type')!r}")
        if action.get("type") == "Action.OpenUrl" and not str(action.get("url", "")).startswith(
                ("http://", "https://")):
            problems.append(f"actions[{i}]: Action.OpenUrl needs an http(s) url")
    if len(json.dumps(body)) > 28_000:
        problems.append("message over Teams' 28 KB limit")
    return problems


def validate_mattermost(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["body is not an object"]
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return ["text is required"]
    if len(text) > 16383:
        return [f"text of {len(text)} characters (Mattermost allows 16383)"]
    return []


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _string_map(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        problems.append(f"{where} must map strings to strings")


def validate_am_webhook(body: Any) -> list[str]:
    """Problems against Alertmanager's webhook payload, version 4."""
    problems: list[str] = []
    if not isinstance(body, dict):
        return ["body is not an object"]
    required = {"version": str, "groupKey": str, "truncatedAlerts": int, "status": str,
                "receiver": str, "groupLabels": dict, "commonLabels": dict,
                "commonAnnotations": dict, "externalURL": str, "alerts": list}
    for key, kind in required.items():
        if not isinstance(body.get(key), kind):
            problems.append(f"{key}: missing or not {kind.__name__}")
    if problems:
        return problems
    if body["version"] != "4":
        problems.append(f"version {body['version']!r}")
    if body["status"] not in ("firing", "resolved"):
        problems.append(f"status {body['status']!r}")
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        _string_map(body[key], key, problems)
    for i, alert in enumerate(body["alerts"]):
        for key in ("status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
                    "fingerprint"):
            if key not in alert:
                problems.append(f"alerts[{i}].{key} missing")
        if alert.get("status") not in ("firing", "resolved"):
            problems.append(f"alerts[{i}].status {alert.get('status')!r}")
        _string_map(alert.get("labels"), f"alerts[{i}].labels", problems)
        _string_map(alert.get("annotations"), f"alerts[{i}].annotations", problems)
        for key in ("startsAt", "endsAt"):
            if not RFC3339.match(str(alert.get(key, ""))):
                problems.append(f"alerts[{i}].{key} {alert.get(key)!r} is not RFC 3339")
    return problems
