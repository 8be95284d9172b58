"""Real daemon processes and a recording webhook receiver for the fault tests."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Delivery:
    """One request the receiver got: its path and JSON body."""

    path: str
    body: Any
    raw: bytes
    headers: dict[str, str]


@dataclass
class Hook:
    """A webhook receiver on loopback that records every request and how many are in
    flight (arrived, not yet answered). ``delay`` slows each answer down; ``replies``
    are the status codes of the first answers (then 200). A request cut short — its
    sender killed between the headers and the end of the body — is not a delivery, and
    is not recorded: a real receiver cannot act on half a message either."""

    delay: float = 0.0
    replies: list[int] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    inflight: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.release.set()  # cleared: requests hang until it is set again
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if len(raw) < length:
                    return  # the connection closed mid-body: the sender was killed
                with hook.lock:
                    hook.inflight += 1
                    hook.deliveries.append(Delivery(
                        self.path, json.loads(raw) if raw else None, raw,
                        {k.lower(): v for k, v in self.headers.items()}))
                    status = hook.replies.pop(0) if hook.replies else 200
                    hook.lock.notify_all()
                try:
                    hook.release.wait(60)
                    if hook.delay:
                        time.sleep(hook.delay)
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender was killed or gave up
                finally:
                    with hook.lock:
                        hook.inflight -= 1
                        hook.lock.notify_all()

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait_for(self, predicate: Callable[[Hook], bool], timeout: float = 30.0) -> bool:
        """Return True once ``predicate(self)`` holds (checked on every request)."""
        with self.lock:
            return self.lock.wait_for(lambda: predicate(self), timeout)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def clean_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Return the environment for a daemon: no MONITOR_* from the caller, the repo first on
    the path (the caller's PYTHONPATH kept: ``make test-future`` puts a shim there), then
    ``extra``, where None removes a variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def start_daemon(config: Path, cwd: Path, log_path: Path,
                 env: Mapping[str, str | None] | None = None) -> subprocess.Popen[bytes]:
    """Start ``monitor run --config config`` in ``cwd``, its output appended to
    ``log_path``."""
    with log_path.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config",
                                 str(config)], cwd=cwd, env=clean_env(env), stdout=out,
                                stderr=subprocess.STDOUT)


def wait_for_text(path: Path, text: str, start: int = 0, timeout: float = 30.0,
                  proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Return True once ``text`` appears in ``path`` after byte ``start``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text.encode() in path.read_bytes()[start:]:
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def query(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one read on the SQLite store (safe while the daemon runs: WAL readers)."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]
    finally:
        conn.close()


def integrity(db: Path) -> tuple[str, list[tuple[Any, ...]]]:
    """Return SQLite's ``integrity_check`` verdict and ``foreign_key_check`` rows."""
    return query(db, "PRAGMA integrity_check")[0][0], query(db, "PRAGMA foreign_key_check")


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM the daemon and return its exit status (killing it after ``timeout``)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9
    return int(proc.returncode)
