"""Real replicas for the cluster tests: ``python -m monitor run`` processes on one
PostgreSQL database, a CSV source the test rewrites, rule groups spread over every
replica, and a loopback webhook receiver that counts what each alert was told.

Each alert is one notification group (``group_by = ["..."]``), so "every notification
delivered exactly once" reads as: every (alert name, area) pair received exactly one
firing message that the receiver acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

from monitor.cluster import assign, group_key, shard_of
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
THRESHOLD = 100.0


class WebhookReceiver:
    """Counts the firing alerts of acknowledged webhook deliveries, per (alertname, area),
    and records the firing alerts of every request as it arrives.

    ``status`` is the answer to give (503: the receiver is down, retry later); while
    ``hold`` is cleared, requests wait for it before being answered.
    """

    def __init__(self) -> None:
        self.status = 200
        self.hold = threading.Event()
        self.hold.set()
        self.lock = threading.Lock()
        self.acknowledged: Counter[tuple[str, str]] = Counter()
        self.arrivals: list[list[tuple[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                firing = [(a["labels"]["alertname"], a["labels"]["area"])
                          for a in body["alerts"] if a["status"] == "firing"]
                with receiver.lock:
                    receiver.arrivals.append(firing)
                receiver.hold.wait(60)
                with receiver.lock:
                    status = receiver.status
                    if status < 300:
                        receiver.acknowledged.update(firing)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def counts(self) -> Counter[tuple[str, str]]:
        with self.lock:
            return Counter(self.acknowledged)

    def received(self) -> list[list[tuple[str, str]]]:
        with self.lock:
            return list(self.arrivals)

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def libpq(url: str) -> str:
    """The libpq form of a SQLAlchemy PostgreSQL URL, for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def query(url: str, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        return list(conn.execute(sql, params).fetchall())


def spread_groups(names: Iterable[str], shards: int, per_replica: int) -> list[str]:
    """Return rule group names such that each replica holds ``per_replica`` of them
    once the shards are balanced over ``names``."""
    owners = {shard: name for name, held in assign(shards, list(names)).items()
              for shard in held}
    chosen: list[str] = []
    count: Counter[str] = Counter()
    for i in range(1000):
        group = f"g{i:03d}"
        owner = owners[shard_of(group_key(group), shards)]
        if count[owner] < per_replica:
            chosen.append(group)
            count[owner] += 1
        if len(chosen) == per_replica * len(set(owners.values())):
            return chosen
    raise AssertionError("cannot spread the rule groups")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               logs: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s\n{logs()}")


@dataclass
class Replica:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def ready(self) -> tuple[int, str]:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.port}/-/ready", timeout=2)
        except httpx.HTTPError as exc:
            return 0, str(exc)
        return response.status_code, response.text

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@dataclass
class Cluster:
    """A working folder with rules, data and one config per replica, on one database."""

    root: Path
    url: str
    hook: WebhookReceiver
    groups: list[str]
    areas: list[str]
    shards: int = 12
    heartbeat: str = "0.3s"
    lease_ttl: str = "2s"
    send_timeout: str = "1s"  # notify.retry.timeout
    send_lease: str = "3s"  # notify.retry.lease: when a dead replica's send is retried
    replicas: dict[str, Replica] = field(default_factory=dict)  # the latest of each name
    started: list[Replica] = field(default_factory=list)
    generation: int = 0

    def __post_init__(self) -> None:
        rules = ["indicators:",
                 "  - {id: load, name: Load, direction: down, aggregation: last, window: 1}",
                 "groups:"]
        for group in self.groups:
            rules += [f"  - name: {group}", "    rules:",
                      f"      - {{alert: Load{group}, indicator: load, "
                      f"when: {{level: {{above: {THRESHOLD:g}}}}}}}"]
        (self.root / "rules").mkdir(exist_ok=True)
        (self.root / "rules" / "load.yaml").write_text("\n".join(rules) + "\n")
        self.write_data(set())

    def write_data(self, breaching: set[str]) -> None:
        """Write the CSV: the ``breaching`` areas above the threshold, the others below.
        Each version differs, so the source's change detection sees it."""
        self.generation += 1
        lines = ["indicator,area,period,value"]
        for area in self.areas:
            level = THRESHOLD + 50 if area in breaching else THRESHOLD - 50
            lines += [f"load,{area},2024-{m:02d},{level + self.generation / 1000:g}"
                      for m in range(1, 13)]
        path = self.root / "data.csv"
        path.with_suffix(".tmp").write_text("\n".join(lines) + "\n")
        path.with_suffix(".tmp").replace(path)

    def expected(self, areas: Iterable[str]) -> Counter[tuple[str, str]]:
        return Counter((f"Load{g}", a) for g in self.groups for a in areas)

    def config(self, name: str, port: int, url: str) -> Path:
        path = self.root / f"{name}.toml"
        path.write_text(f"""
[server]
listen = "127.0.0.1:{port}"

[store]
url = "{url}"
pool_size = 4

[rules]
paths = ["rules"]
evaluation_interval = "0.5s"
watch = false

[daemon]
instance = "{name}"
shutdown_timeout = "10s"

[cluster]
heartbeat_interval = "{self.heartbeat}"
lease_ttl = "{self.lease_ttl}"
shards = {self.shards}

[[sources]]
name = "kpi"
kind = "csv"
path = "data.csv"
layout = "long"
indicator_column = "indicator"
labels = {{area = "area"}}
period_column = "period"
value_column = "value"
interval = "0.5s"

[notify]
poll_interval = "0.3s"
[notify.retry]
initial_backoff = "0.2s"
max_backoff = "0.5s"
max_attempts = 1000
timeout = "{self.send_timeout}"
lease = "{self.send_lease}"
[notify.route]
receiver = "hook"
group_by = ["..."]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "24h"
[[notify.receivers]]
name = "hook"
[[notify.receivers.webhook]]
url = "{self.hook.url}"
""")
        return path

    def start(self, name: str, url: str | None = None) -> Replica:
        """Start a replica named ``name``; its database sessions carry that name as their
        application_name (so pg_stat_activity tells them apart)."""
        port = free_port()
        db = make_url(url or self.url).update_query_dict({"application_name": name})
        config = self.config(name, port, db.render_as_string(hide_password=False))
        log = self.root / f"{name}-{len(self.started)}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config",
                                     str(config)], cwd=self.root,
                                    env={**env, "PYTHONPATH": str(REPO)}, stdout=out,
                                    stderr=subprocess.STDOUT)
        replica = Replica(name, port, proc, log)
        self.replicas[name] = replica
        self.started.append(replica)
        return replica

    def wait_ready(self, *replicas: Replica, timeout: float = 60) -> None:
        for replica in replicas:
            wait_until(lambda r=replica: r.ready()[0] == 200, timeout,  # type: ignore[misc]
                       f"replica {replica.name} ready", replica.output)

    def owners(self) -> Counter[str]:
        """Live leases per owner."""
        return Counter(r[0] for r in query(
            self.url, "SELECT owner FROM shard_lease WHERE owner IS NOT NULL "
                      "AND expires_at > clock_timestamp()"))

    def balanced(self, names: Iterable[str]) -> bool:
        want = {n: len(s) for n, s in assign(self.shards, list(names)).items()}
        return dict(self.owners()) == want

    def firing(self) -> Counter[tuple[str, str]]:
        """The firing alerts in the store, as (alertname, area)."""
        return Counter((r[0], json.loads(r[1])["area"]) for r in query(
            self.url, "SELECT rule, labels FROM alert WHERE state = 'firing'"))

    def fired(self) -> Counter[tuple[str, str]]:
        """The transitions to firing recorded, as (alertname, area)."""
        return Counter((r[0], json.loads(r[1])["area"]) for r in query(
            self.url, "SELECT rule, labels FROM alert_transition WHERE to_state = 'firing'"))

    def in_flight(self) -> dict[str, list[tuple[str, str]]]:
        """The firing alerts of the outbox messages leased now, by the replica leasing."""
        out: dict[str, list[tuple[str, str]]] = {}
        for owner, payload in query(self.url, "SELECT claimed_by, payload FROM notification "
                                              "WHERE status = 'pending' AND claimed_until > now()"):
            out.setdefault(owner, []).extend(
                (a["labels"]["alertname"], a["labels"]["area"])
                for a in json.loads(payload)["alerts"] if a["status"] == "firing")
        return out

    def outbox(self) -> Counter[str]:
        return Counter(r[0] for r in query(self.url, "SELECT status FROM notification"))

    def settled(self, expected: Counter[tuple[str, str]]) -> bool:
        """Every expected alert fired, its message delivered, nothing left to do."""
        unclaimed = query(self.url, "SELECT count(*) FROM alert_transition "
                                    "WHERE claimed_by IS NULL")[0][0]
        return (self.firing() == expected and unclaimed == 0
                and self.outbox() == Counter({"delivered": sum(expected.values())})
                and sum(self.hook.counts().values()) >= sum(expected.values()))

    def logs(self) -> str:
        return "\n".join(f"--- {r.log.name} ---\n{r.output()[-6000:]}" for r in self.started)

    def stop_all(self) -> None:
        for replica in self.started:
            if replica.proc.poll() is None:
                replica.proc.kill()
                replica.proc.wait(10)
