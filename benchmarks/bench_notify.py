"""10,000 alerts firing in one evaluation across 500 groups, all delivered to a webhook.

Run from the repository root: ``python benchmarks/bench_notify.py [--store URL]
[--alerts N] [--groups G]``. It records the transitions as the rules engine would, then
times the notifier end to end — claim, pipeline, outbox commit, and delivery by the
background lane worker to a loopback webhook (Alertmanager payload) that counts the
alerts it receives. Prints the phases, the total (target: at most 10 s) and peak RSS.
The default store is a fresh SQLite file; pass a PostgreSQL URL to measure that instead.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.clock import SystemClock
from monitor.notify.config import NotifyConfig
from monitor.notify.notifier import Notifier
from monitor.store import open_store
from monitor.store.notify import TRANSITION


class Counter:
    """Counts messages and alerts a loopback webhook receives."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.messages = 0
        self.alerts = 0
        self.done = threading.Event()
        self.lock = threading.Lock()

    def add(self, body: dict[str, Any]) -> None:
        with self.lock:
            self.messages += 1
            self.alerts += len(body["alerts"])
            if self.alerts >= self.expected:
                self.done.set()


def serve(counter: Counter) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle's algorithm and
            # the client's delayed ACK add 40 ms to every response.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            counter.add(body)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--store", help="store URL (default: a temporary SQLite file)")
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=500)
    args = parser.parse_args()

    folder = tempfile.TemporaryDirectory()
    url = args.store or f"sqlite:///{Path(folder.name) / 'bench.db'}"
    counter = Counter(args.alerts)
    server = serve(counter)
    config = NotifyConfig.model_validate({
        "route": {"receiver": "hook", "group_by": ["indicator"], "group_wait": "0s"},
        "receivers": [{"name": "hook", "webhook": [
            {"url": f"http://127.0.0.1:{server.server_address[1]}/hook"}]}],
    })
    store = open_store(url)
    now = datetime.now(UTC)
    per_group = max(1, args.alerts // args.groups)
    rows = [{
        "alert_id": f"r{i // per_group}-{i % per_group}", "rule": f"Rule{i // per_group}",
        "labels": json.dumps({"alertname": f"Rule{i // per_group}", "severity": "warning",
                              "indicator": f"indicator_{i // per_group}",
                              "borough": f"borough_{i % per_group}", "source": "bench"}),
        "annotations": json.dumps({"summary": f"indicator {i // per_group} off target",
                                   "description": "rolling year change beyond threshold"}),
        "from_state": "pending", "to_state": "firing", "value": float(i),
        "explanation": f"up {i % 97}% on the previous rolling year", "at": now,
    } for i in range(args.alerts)]
    with store.engine.begin() as conn:
        conn.execute(insert(TRANSITION), rows)

    notifier = Notifier(store, config, SystemClock(), CollectorRegistry(), instance="bench")
    notifier.start()
    started = time.perf_counter()
    result = notifier.process_transitions()
    queued = time.perf_counter()
    delivered = counter.done.wait(120)
    finished = time.perf_counter()
    notifier.stop(10)
    store.close()
    server.shutdown()
    folder.cleanup()

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"store: {url.split(':', 1)[0]}; {args.alerts} alerts in {result.groups_sent} groups "
          f"({result.claimed} transitions claimed)")
    print(f"claim + pipeline + outbox commit: {queued - started:6.2f} s")
    print(f"delivery of {counter.messages} messages: {finished - queued:6.2f} s")
    print(f"total, firing to delivered:       {finished - started:6.2f} s  (target <= 10 s)")
    print(f"alerts received by the webhook:   {counter.alerts}")
    print(f"peak RSS:                         {peak_mib:6.1f} MiB")
    if not delivered:
        raise SystemExit("not every alert was delivered within 120 s")


if __name__ == "__main__":
    main()
