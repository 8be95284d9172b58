"""The HTTP server: ``/metrics``, health endpoints, ``/-/reload``, the JSON API and pages.

The server observes the daemon through the small :class:`Daemon` protocol; it never
reaches into the store or the engine on its own.
"""

from __future__ import annotations

import hmac
import threading
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.logs import get_logger

log = get_logger(__name__)


class Daemon(Protocol):
    """What the HTTP layer needs from the running daemon."""

    registry: CollectorRegistry

    def readiness(self) -> tuple[bool, str]:
        """Return (ready, reason)."""

    def request_reload(self) -> tuple[bool, str]:
        """Reload config and rules now; return (ok, message)."""

    def api_token(self) -> str | None:
        """Return the bearer token mutating endpoints need (None: mutations refused)."""


def token_ok(request: Request, expected: str | None) -> bool:
    """Return True when the request carries ``Authorization: Bearer <expected>``.

    The comparison is constant-time; no configured token means no request passes.
    """
    if not expected:
        return False
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), expected.encode())


def create_app(daemon: Daemon) -> FastAPI:
    """Return the ASGI application serving the daemon."""
    app = FastAPI(title="kpi-monitor", version=_version(), docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(daemon.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/-/healthy", response_class=PlainTextResponse, tags=["health"])
    def healthy() -> str:
        """The process is up and serving."""
        return "OK\n"

    @app.get("/-/ready", response_class=PlainTextResponse, tags=["health"],
             responses={503: {"description": "not ready: the store or rules are not loaded"}})
    def ready() -> Response:
        """Ready once the store answers and rules are loaded."""
        ok, reason = daemon.readiness()
        return PlainTextResponse(f"{reason}\n", status_code=200 if ok else 503)

    @app.post("/-/reload", tags=["health"],
              responses={401: {"description": "missing or wrong bearer token"},
                         400: {"description": "the new config or rules are invalid"}})
    def reload(request: Request) -> JSONResponse:
        """Reload config and rules; the running set stays when the new one is invalid."""
        if not token_ok(request, daemon.api_token()):
            return JSONResponse({"error": "a valid bearer token is required"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        ok, message = daemon.request_reload()
        return JSONResponse({"reloaded": ok, "message": message}, status_code=200 if ok else 400)

    return app


def _version() -> str:
    from monitor import __version__

    return __version__


class HttpServer:
    """Uvicorn in a background thread, so the main thread keeps the signals."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; raise OSError when the port cannot be bound within ``timeout``."""
        self._thread.start()
        waited = threading.Event()
        for _ in range(int(timeout * 20)):
            if self._server.started or not self._thread.is_alive():
                break
            waited.wait(0.05)
        if not self._server.started:
            raise OSError(f"the HTTP server could not listen on "
                          f"{self._server.config.host}:{self._server.config.port}")

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
