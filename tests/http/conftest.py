"""Fixtures of the HTTP tests: the real daemon on the real examples, and external binaries.

Every test here reads a real daemon (``monitor.app.App``: the poller reading the example's
files into a temporary SQLite store, the rule service and engine evaluating the example's
rules, the notifier, the HTTP server on a free loopback port), started once per test
module on

- the London example (``examples/london-boroughs/config.toml``): 32 boroughs, the
  airports and London as a whole, 2008-2024, as of January 2024 (``london``);
- the bundled MPS example (``config.example.toml``): the 2008/09 scorecard of the
  Metropolitan Police and its most similar forces, as of July 2008 (``mps``).

Each runs on a copy of its config whose store, port, token and notification files point
into a temporary folder, and on a ``FixedClock``. The clock stands at the moment the
daemon starts: the scheduler runs on the wall clock and takes the poller's first run
times from the injected one, so a clock years in the past would first make it replay
every interval since then.

``need_binary`` finds Prometheus, promtool or Chromium. When one is missing the test
fails under ``MONITOR_TEST_POSTGRES=1`` (CI installs them) and is skipped with the
reason otherwise.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from prometheus_client import CollectorRegistry

from monitor import settings as settings_mod
from monitor.app import App
from monitor.cli import main
from monitor.clock import FixedClock
from monitor.http.server import HttpServer
from monitor.rules.snapshot import Snapshot
from tests.conftest import REPO, free_port, needs
from tests.http import panel as panel_data

INSTALL_HINT = "install the Debian packages with `bash .ci/system-packages`"
TOKEN = "test-token-7c1e2b"
LONDON_CONFIG = REPO / "examples" / "london-boroughs" / "config.toml"
MPS_CONFIG = REPO / "config.example.toml"


def need_binary(name: str) -> str:
    """Return the path of executable ``name``; fail in CI, skip elsewhere when it is missing."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/usr/local/bin/{name}") if os.access(p, os.X_OK)),
        None)
    if path:
        return path
    needs(f"{name} is not installed; {INSTALL_HINT}")
    raise AssertionError("needs() skips or fails")


def config_copy(source: Path, folder: Path, port: int, *, token: str | None = TOKEN) -> Path:
    """Write ``source`` to ``folder`` with its store, port, token and notification files
    there, and every relative rule or data path made absolute; return the copy's path."""
    data: dict[str, Any] = tomllib.loads(source.read_text(encoding="utf-8"))
    base = REPO  # the examples' relative paths are written for the repository root
    server = data.setdefault("server", {})
    server["listen"] = f"127.0.0.1:{port}"
    server["external_url"] = f"http://127.0.0.1:{port}"
    if token is not None:
        server["api_token"] = token
    data.setdefault("store", {})["url"] = f"sqlite:///{folder / 'monitor.db'}"
    rules = data.setdefault("rules", {})
    rules["paths"] = [str(base / p) for p in rules.get("paths", ["rules"])]
    for source_cfg in data.get("sources", []):
        if "path" in source_cfg and not Path(source_cfg["path"]).is_absolute():
            source_cfg["path"] = str(base / source_cfg["path"])
    for receiver in data.get("notify", {}).get("receivers", []):
        for i, file in enumerate(receiver.get("file", [])):
            file["path"] = str(folder / f"notifications-{receiver['name']}-{i}.log")
    path = folder / "config.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


class Served:
    """A running daemon: its URL, the ``App``, its config copy and its clock."""

    def __init__(self, app: App, config: Path, clock: FixedClock) -> None:
        self.app = app
        self.config = config
        self.clock = clock
        self.url = f"http://{app.settings.server.listen}"

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    @property
    def store_path(self) -> Path:
        return self.config.parent / "monitor.db"

    def snapshot(self) -> Snapshot:
        assert self.app.rules is not None
        return self.app.rules.snapshot()

    def configure(self, **server: object) -> None:
        """Replace server settings, as a config reload would; the app reads them per request."""
        current = self.app.settings
        self.app.settings = current.model_copy(
            update={"server": current.server.model_copy(update=server)})

    def as_of(self) -> str:
        """The month the daemon evaluates as of (``rules.as_of``)."""
        as_of = self.app.settings.rules.as_of
        assert as_of is not None
        return as_of

    def eval_json(self, *extra: str) -> dict[str, Any]:
        """Run ``monitor eval --format json`` on this daemon's config and store, as of the
        daemon's month; return what it printed."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["eval", "--config", str(self.config), "--at", self.as_of(),
                         "--format", "json", *extra], clock=self.clock)
        assert code == 0, out.getvalue()
        result: dict[str, Any] = json.loads(out.getvalue())
        return result


def settle(app: App, timeout: float = 60.0) -> None:
    """Wait until every enabled source has been polled once and no poll is in flight, then
    run one evaluation cycle, so the published snapshot holds everything the polls stored."""
    names = [s.name for s in app.settings.sources if s.enabled]
    assert app.store is not None and app.rules is not None
    deadline = time.monotonic() + timeout
    while True:
        health = {h.source: h for h in app.store.source_state.health()}
        # A poll records its attempt before it ends; until it ends its rules wait, so an
        # evaluation now would publish nothing for them.
        if all(n in health and health[n].last_attempt_at is not None for n in names) \
                and app.poller is not None and not app.poller.unsettled():
            break
        assert time.monotonic() < deadline, f"sources not polled within {timeout} s: {health}"
        time.sleep(0.05)
    app.rules.evaluate()


@contextmanager
def running(config: Path, folder: Path, *, token: str | None = TOKEN) -> Iterator[Served]:
    """Run the daemon on a copy of ``config`` in ``folder``; yield it once it has polled
    every source and evaluated."""
    copy = config_copy(config, folder, free_port(), token=token)
    settings = settings_mod.load(copy, environ={})
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    app = App(settings, copy, clock=clock, registry=CollectorRegistry())
    app.start()
    try:
        settle(app)
        yield Served(app, copy, clock)
    finally:
        app.stop()


@pytest.fixture(scope="module")
def london(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The daemon on the London example, once per test module."""
    with running(LONDON_CONFIG, tmp_path_factory.mktemp("london")) as served:
        yield served


@pytest.fixture(scope="module")
def mps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The daemon on the bundled MPS example, once per test module."""
    with running(MPS_CONFIG, tmp_path_factory.mktemp("mps")) as served:
        yield served


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The daemon on the small panel of ``tests/http/panel.py``, once per test module: its
    file polled, then corrected (one value revised) and polled again."""
    folder = tmp_path_factory.mktemp("panel")
    with running(panel_data.write_config(folder), folder) as served:
        panel_data.write_csv(folder / "panel.csv", revised=True)
        # A minute later: the rule service re-reads the store when a poll's time moves.
        served.clock.advance(timedelta(minutes=1))
        assert served.app.poller is not None and served.app.rules is not None
        assert served.app.poller.poll("panel").stored.revised == 1
        served.app.rules.evaluate()
        yield served


@contextmanager
def serving(app: Any) -> Iterator[httpx.Client]:
    """Serve an ASGI ``app`` with uvicorn on a free loopback port; yield a client for it."""
    port = free_port()
    server = HttpServer(app, "127.0.0.1", port)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.stop()


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


def read_csv_rows(path: Path) -> list[list[str]]:
    """Return every row of a CSV file (header first)."""
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def columns(header: Sequence[str], *names: str) -> list[int]:
    """Return the index of each named column of ``header``."""
    return [list(header).index(name) for name in names]
