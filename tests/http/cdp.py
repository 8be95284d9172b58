"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

What ``chromium_dom`` cannot do: fill a form and click its button (a real form
submission: the browser sends the POST and follows the answer), read the page after it,
take a PNG screenshot. No client library: the protocol on a pipe is JSON messages ended
by a NUL byte, on file descriptors 3 (commands) and 4 (answers and events).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.http.conftest import need_binary


class Browser:
    """One headless Chromium with one page (tab)."""

    def __init__(self, width: int = 1400, height: int = 900) -> None:
        binary = need_binary("chromium")
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and
               not k.startswith("FAKETIME")}
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Above 3 and 4, so the shell's redirections never overwrite one with the other
        # (bash: dash takes one-digit descriptors only).
        for name in ("to_chrome_r", "from_chrome_w"):
            low = locals()[name]
            high = fcntl.fcntl(low, fcntl.F_DUPFD, 100)
            os.close(low)
            if name == "to_chrome_r":
                to_chrome_r = high
            else:
                from_chrome_w = high
        script = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
        self._proc = subprocess.Popen(
            ["bash", "-c", script, binary, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
             f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe",
             f"--window-size={width},{height}", "about:blank"],
            pass_fds=(to_chrome_r, from_chrome_w), env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self._events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width,
                  height=height, deviceScaleFactor=1, mobile=False)

    # --- the protocol ------------------------------------------------------------------

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, "Chromium did not answer in time"
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                assert chunk, "Chromium closed the pipe"
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        data: dict[str, Any] = json.loads(message)
        return data

    def call(self, method: str, *, session: bool = False, timeout: float = 30.0,
             **params: Any) -> dict[str, Any]:
        """Send one command; return its result (events that arrive meanwhile are kept)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read(timeout)
            if answer.get("id") == self._next:
                assert "error" not in answer, f"{method}: {answer['error']}"
                result: dict[str, Any] = answer.get("result", {})
                return result
            self._events.append(answer)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        """Return the next event ``method`` (one already received first)."""
        for i, event in enumerate(self._events):
            if event.get("method") == method:
                return self._events.pop(i)
        while True:
            event = self._read(timeout)
            if event.get("method") == method:
                return event
            self._events.append(event)

    # --- what a test does --------------------------------------------------------------

    def open(self, url: str) -> str:
        """Load ``url``; return its DOM once loaded."""
        self._events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_event("Page.loadEventFired")
        return self.dom()

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True)
        return result.get("result", {}).get("value")

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def submit(self, fields: dict[str, str], button: str, within: str = "") -> str:
        """Fill the named fields, click ``button`` (a CSS selector) as a person would, wait
        for the page the browser navigates to; return its DOM. ``within`` (a CSS selector)
        picks the form when the page has several with the same field names."""
        scope = f"document.querySelector({json.dumps(within)})" if within else "document"
        fill = ";".join(f"{scope}.querySelector({json.dumps(f'[name={name}]')}).value = "
                        f"{json.dumps(value)}" for name, value in fields.items())
        self._events.clear()
        self.evaluate(f"{fill}; {scope}.querySelector({json.dumps(button)}).click(); true")
        self.wait_event("Page.loadEventFired")
        return self.dom()

    def screenshot(self, path: Path) -> None:
        """Save the whole page as a PNG."""
        height = int(self.evaluate("document.documentElement.scrollHeight") or 900)
        data = self.call("Page.captureScreenshot", session=True, format="png",
                         captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": 1400, "height": min(height, 4000),
                               "scale": 1})["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError):
            self.call("Browser.close", timeout=5)
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None
                 ) -> None:
        self.close()
