"""The HTTP server: ``/metrics``, health endpoints, ``/-/reload``, the JSON API and pages.

The server observes the daemon through the small :class:`Daemon` protocol; it never
reaches into the store or the engine on its own.
"""

from __future__ import annotations

import importlib.resources
import math
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.clock import Clock, SystemClock
from monitor.http import api, pages
from monitor.http.context import Daemon, HttpContext, token_ok
from monitor.http.metrics import HttpMetrics, IndicatorCollector, exposition
from monitor.http.observed import EmptyObserved, Observed
from monitor.logs import get_logger

__all__ = ["Daemon", "HttpServer", "create_app", "token_ok"]

log = get_logger(__name__)

# The text format Prometheus 2.x negotiates; the body is written in it, so say so.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_http_metrics: weakref.WeakKeyDictionary[CollectorRegistry, HttpMetrics] = \
    weakref.WeakKeyDictionary()


def http_metrics(registry: CollectorRegistry) -> HttpMetrics:
    """Return the HTTP metrics of ``registry``, registering them on first use."""
    metrics = _http_metrics.get(registry)
    if metrics is None:
        metrics = _http_metrics[registry] = HttpMetrics(registry)
    return metrics


# Swagger UI's JavaScript and CSS, as the fastapi-offline package ships them, so /api/docs
# works without the internet (FastAPI's default page loads them from a CDN).
DOCS_ASSETS = Path(str(importlib.resources.files("fastapi_offline") / "static"))
DOCS_ASSETS_URL = "/api/docs/assets"
DOCS_DARK_CSS = "/static/swagger-dark.css"  # monitor/http/static/swagger-dark.css


def create_app(daemon: Daemon, observed: Observed | None = None, *,
               clock: Clock | None = None) -> FastAPI:
    """Return the ASGI application serving the daemon.

    ``observed`` is the engine, sources and notifier as the API, the pages and
    ``/metrics`` read them; without it every list is empty (no evaluation yet).
    """
    ctx = HttpContext(daemon, observed or EmptyObserved(), clock or SystemClock())
    indicators = IndicatorCollector(
        ctx.observed.snapshot, max_series=lambda: daemon.settings.server.max_exported_series,
        milestones=ctx.observed.milestones, clock=ctx.clock, scorecard=ctx.observed.scorecard,
        external_url=lambda: daemon.settings.server.external_url,
        suppressed=ctx.observed.suppressed)
    app = FastAPI(title="kpi-monitor", version=_version(), docs_url=None,
                  openapi_url="/api/openapi.json", redoc_url=None,
                  description="Indicators, alerts, rules, sources and silences of a running "
                              "kpi-monitor. Reads are open unless `server.protect_reads` is "
                              "set; changes need `Authorization: Bearer <server.api_token>`.")
    app.add_middleware(_Instrument, metrics=http_metrics(daemon.registry))

    @app.exception_handler(api.ApiError)
    def api_error(_request: Request, exc: api.ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals (a body that is not JSON, an unknown path, a method
        # not allowed) in the API's error shape.
        return JSONResponse({"error": str(exc.detail), "detail": exc.detail},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # The rejected input is not echoed back: it may be large, and JSON cannot carry
        # the NaN or Infinity a client may have sent.
        errors = [_json_safe({k: v for k, v in err.items() if k != "input"})
                  for err in jsonable_encoder(exc.errors())]
        fields = [_field(err.get("loc", ())) for err in errors]
        summary = "; ".join(f"{f or 'body'}: {err.get('msg', 'invalid')}"
                            for f, err in zip(fields, errors, strict=True))
        return JSONResponse({"error": summary, "field": fields[0] if fields else None,
                             "detail": errors}, status_code=422)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(exposition(daemon.registry, indicators),
                        media_type=METRICS_CONTENT_TYPE)

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
        refusal = ctx.write_refusal(request)
        if refusal is not None:
            return JSONResponse({"error": refusal}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        ok, message = daemon.request_reload()
        return JSONResponse({"reloaded": ok, "message": message}, status_code=200 if ok else 400)

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI from the assets the fastapi-offline package ships: no CDN; with a
        stylesheet of ours after Swagger UI's, for the dark colour scheme."""
        page = get_swagger_ui_html(
            openapi_url="/api/openapi.json", title="kpi-monitor API",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png")
        html = bytes(page.body).decode("utf-8")
        return HTMLResponse(html.replace(
            "</head>", f'<link rel="stylesheet" href="{DOCS_DARK_CSS}">\n</head>', 1))

    app.include_router(api.build_router(ctx))
    app.include_router(pages.build_router(ctx))
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=str(DOCS_ASSETS)), name="api-docs-assets")
    return app


class _Instrument:
    """ASGI middleware counting requests by route template, method and status code.

    Pure ASGI (not ``BaseHTTPMiddleware``) so a large ``/metrics`` body streams through
    untouched.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            handler = getattr(route, "path", None) or (
                "/static" if str(scope.get("path", "")).startswith("/static/") else "other")
            self.metrics.observe(handler, str(scope.get("method", "")), status, started)


def _json_safe(value: Any) -> Any:
    """Return ``value`` with every NaN or infinite float replaced by its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _field(loc: Any) -> str:
    """Return the parameter a validation error is about: ``limit``, ``matchers.0.op``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header", "cookie"):
        return parts[1] if len(parts) > 1 else ""
    return ".".join(parts[1:] if parts and parts[0] == "body" else parts)


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
