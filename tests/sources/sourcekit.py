"""Test kit of the sources suite: a real loopback HTTP server answering from routes.

``site.route("/data.csv", Reply(500), Reply(body=...))`` answers the first request with a
500 and every later one with the body. A reply can be slow, truncated (a Content-Length
larger than what is sent, then the connection is closed), carry an ETag (answered with
304 when the client sends it back), or be computed by a function of the request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry

from tests.conftest import LONDON_DATA

LONDON_2008 = LONDON_DATA / "mps-borough-crime-2008-01-to-2016-12.csv"
EXAMPLE_DATA = Path(__file__).resolve().parents[2] / "examples" / "mps-2008-09" / "data"
NOW = datetime(2024, 2, 1, 6, 0, tzinfo=UTC)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    truncate_to: int | None = None
    content_type: str = "text/plain"
    chunked: bool = False  # no Content-Length: the body is sent in chunks


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Seen], Reply]


class Site:
    """Routes, replies and the record of every request."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply] | Handler] = {}
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self.port = 0

    def route(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def handle(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path)

    def answer(self, seen: Seen) -> Reply:
        with self.lock:
            self.requests.append(seen)
            target = self.routes.get(seen.path)
            if target is None:
                return Reply(404, b"no such route")
            if callable(target):
                return target(seen)
            reply = target[0]
            if len(target) > 1:
                target.pop(0)
            etag = reply.headers.get("ETag")
            if etag and seen.headers.get("if-none-match") == etag:
                return Reply(304, headers={"ETag": etag})
            return reply


def _handler_class(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body: no 40 ms stall between

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if method == "POST" and body:
                query.update({k: v[-1] for k, v in parse_qs(body.decode()).items()})
            seen = Seen(method, parts.path, query,
                        {k.lower(): v for k, v in self.headers.items()}, body)
            reply = site.answer(seen)
            if reply.delay:
                time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(reply.body), 1024):
                        piece = reply.body[start:start + 1024]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    return
                self.send_header("Content-Length", str(len(reply.body)))
                if reply.truncate_to is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                if reply.status != 304:
                    sent = reply.body if reply.truncate_to is None \
                        else reply.body[:reply.truncate_to]
                    self.wfile.write(sent)
                self.wfile.flush()
                if reply.truncate_to is not None:
                    self.close_connection = True
            except OSError:
                self.close_connection = True

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that timed out and hung up is expected here


class Sleeps:
    """An injected ``sleep`` that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.clock = 0.0

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock += seconds

    def monotonic(self) -> float:
        return self.clock



def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@contextmanager
def serving() -> Iterator[Site]:
    """Run a Site on a free loopback port for the duration of the block."""
    state = Site()
    server = _Server(("127.0.0.1", 0), _handler_class(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
