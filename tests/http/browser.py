"""Headless Chromium driven over the DevTools protocol, for what ``--dump-dom`` cannot see.

The pages' layout at a given window width (how wide the explanation column is, how tall a
row), the colour scheme they render in (``prefers-color-scheme`` emulated) and a
screenshot. Chromium speaks the protocol over a pair of pipes (``--remote-debugging-pipe``:
it reads commands on fd 3 and writes replies on fd 4, each message JSON ending in NUL), so
no WebSocket client is needed.

Like ``chromium_dom``, Chromium runs on the real clock (without libfaketime's
``LD_PRELOAD``): the pages have no script of their own, so the clock changes nothing it
renders.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import subprocess
import tempfile
import time
from types import TracebackType
from typing import Any

from tests.http.conftest import need_binary


def _high(fd: int) -> int:
    """Return ``fd`` moved to 10 or above, so the shell's ``3<&N 4>&M`` cannot clobber it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class BrowserError(AssertionError):
    """Chromium answered a command with an error, or did not answer."""


class Browser:
    """One headless Chromium with one page (tab); use as a context manager."""

    def __init__(self) -> None:
        self._binary = need_binary("chromium")
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-cdp-")
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self.session = ""

    def __enter__(self) -> Browser:
        to_chrome_r, to_chrome_w = (_high(fd) for fd in os.pipe())
        from_chrome_r, from_chrome_w = (_high(fd) for fd in os.pipe())
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and
               not k.startswith("FAKETIME")}
        # Chromium reads fd 3 and writes fd 4: bash (dash takes one-digit fds only) puts
        # the pipe ends there and execs it (no preexec_fn: unsafe beside the daemon's threads).
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--hide-scrollbars", f"--user-data-dir={self._profile.name}",
                "--remote-debugging-pipe", "about:blank"]
        script = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
        self._proc = subprocess.Popen(
            ["/bin/bash", "-c", script, self._binary, *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            pass_fds=(to_chrome_r, from_chrome_w))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._write = os.fdopen(to_chrome_w, "wb", buffering=0)
        self._read_fd = from_chrome_r
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"],
                                 flatten=True, browser=True)["sessionId"]
        self.call("Page.enable")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self.call("Browser.close", browser=True)
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._write.close()
        os.close(self._read_fd)
        self._profile.cleanup()

    # --- the protocol ---------------------------------------------------------------

    def call(self, method: str, *, browser: bool = False, timeout: float = 60,
             **params: Any) -> dict[str, Any]:
        """Send one command (to the page's session unless ``browser``); return its result.

        Raises BrowserError with Chromium's message when the command fails."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session and not browser:
            message["sessionId"] = self.session
        self._write.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium closed the pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def _wait_event(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method:
                    return self._events.pop(i)
            reply = self._receive(deadline)
            if "method" in reply:
                self._events.append(reply)

    # --- what tests use -------------------------------------------------------------

    def open(self, url: str, *, width: int = 1400, height: int = 900,
             dark: bool = False) -> None:
        """Load ``url`` in a window ``width`` × ``height`` CSS pixels, in the light or the
        dark colour scheme; return once it has loaded."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Emulation.setEmulatedMedia", features=[
            {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}])
        self._events.clear()
        self.call("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """Return the value of a JavaScript expression in the page (JSON-able)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, *, full_page: bool = True) -> bytes:
        """Return a PNG of the page (the whole page when ``full_page``)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.evaluate("[document.documentElement.scrollWidth,"
                                 " document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size[0], "height": size[1],
                                "scale": 1})
        return base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
