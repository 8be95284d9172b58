"""Fixtures of the HTTP tests: the London engine, a real uvicorn server, external binaries.

``need_binary`` finds Prometheus, promtool or Chromium. When one is missing the test
fails under ``MONITOR_TEST_POSTGRES=1`` (CI installs them) and is skipped with the
reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from monitor.http.server import HttpServer, create_app
from tests.conftest import free_port
from tests.http.fakes import TOKEN, FakeDaemon, LondonObserved

CI = os.environ.get("MONITOR_TEST_POSTGRES", "") == "1"
INSTALL_HINT = "install the Debian packages with `bash .ci/system-packages`"


def need_binary(name: str) -> str:
    """Return the path of executable ``name``; fail in CI, skip elsewhere when it is missing."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/local/bin/{name}") if os.access(p, os.X_OK)),
        None)
    if path:
        return path
    message = f"{name} is not installed; {INSTALL_HINT}"
    if CI:
        pytest.fail(f"{message} (MONITOR_TEST_POSTGRES=1: CI needs it)")
    pytest.skip(message)


class Served:
    """A running app: its base URL, the daemon and engine behind it."""

    def __init__(self, url: str, daemon: FakeDaemon, observed: LondonObserved) -> None:
        self.url = url
        self.daemon = daemon
        self.observed = observed

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def serving(app: Any) -> Iterator[httpx.Client]:
    """Serve ``app`` with uvicorn on a free loopback port; yield a client for it."""
    port = free_port()
    server = HttpServer(app, "127.0.0.1", port)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.stop()


@pytest.fixture(scope="session")
def london() -> LondonObserved:
    """The engine built from the real London data (read-only in tests)."""
    return LondonObserved()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """The app on a real uvicorn server on loopback, one per test module."""
    daemon = FakeDaemon()
    engine = LondonObserved()  # its own silences per module
    port = free_port()
    server = HttpServer(create_app(daemon, engine, clock=engine.clock), "127.0.0.1", port)
    server.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", daemon, engine)
    finally:
        server.stop()


@pytest.fixture
def api(served: Served) -> Iterator[httpx.Client]:
    """A client without a token; settings are restored after each test."""
    saved = served.daemon.settings
    with served.client() as client:
        yield client
    served.daemon.settings = saved


@pytest.fixture
def admin(served: Served) -> Iterator[httpx.Client]:
    with served.client(TOKEN) as client:
        yield client


def chromium_dom(url: str) -> str:
    """Return the DOM of ``url`` after headless Chromium has loaded it.

    Chromium runs on the real clock: under libfaketime (``make test-future``) it hangs, and
    the pages have no script, so its clock changes nothing it renders.
    """
    binary = need_binary("chromium")
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and
           not k.startswith("FAKETIME")}
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True, text=True, timeout=90, check=False, env=env)
    assert result.returncode == 0, f"chromium failed: {result.stderr[-2000:]}"
    return result.stdout
