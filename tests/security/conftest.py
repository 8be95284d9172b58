"""A real daemon fed hostile data and planted secrets, for the security suite.

``hostile`` starts ``monitor run`` once per module on PostgreSQL (the store URL carries a
password) with:

- data whose label values are markup, mentions, template syntax and CR/LF;
- secrets in every place a config can hold one — the API token, a webhook URL with a
  token in its path, an SMTP password, a SQL source's URL password, a bearer token of an
  HTTP source, the store URL password — each wired to something that fails, so the
  errors that would echo them happen: the webhook answers 500, SMTP refuses, the SQL
  database does not answer, the HTTP source answers 500;
- a source pointed at a host outside its ``allowed_hosts``.

It waits until every failure has been logged, retried and alerted on, then yields what
the test needs to search everything the daemon wrote.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_MODE, PG_URL, _admin_dsn, _pg_reachable, free_port
from tests.reliability.processes import Hook, start_daemon, stop, wait_for_text

SECRETS = {
    "api_token": "tok-Planted-9f8e7d6c",
    "webhook": "hookpath-Planted-1a2b3c4d",
    "smtp": "smtp-Planted-5e6f7a8b",
    "sql": "sqlpw-Planted-9c0d1e2f",
    "bearer": "bearer-Planted-3a4b5c6d",
    "store": "storepw-Planted-7e8f9a0b",
}
HOSTILE = [
    '<script>alert("x")</script>',
    "<!channel> @here @channel",
    "*bold* _it_ [link](http://evil.example) ![i](http://evil.example/i.png)",
    "{{ 7*7 }} {% raw %}",
    "Line1\r\nBcc: victim@example.org",
    '" onmouseover="alert(1)',
]
RULES = """
indicators:
  - id: kpi_hostile
    name: "Hostile <b>indicator</b> & {{ 7*7 }}"
    unit: count
    direction: down
groups:
  - name: hostile
    rules:
      - alert: HostileValueHigh
        indicator: kpi_hostile
        when:
          level: {above: 10}
        annotations:
          summary: "{{ labels.area }} is at {{ value | number }}"
"""


@dataclass
class Hostile:
    base: str
    workdir: Path
    log: Path
    notifications: Path
    store_url: str
    webhook: Hook
    http_source: Hook
    outside: Hook


def hostile_csv() -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["indicator", "area", "period", "value"])
    for area in HOSTILE:
        for month in range(1, 13):
            writer.writerow(["kpi_hostile", area, f"2024-{month:02d}", 50 + month])
    return buffer.getvalue()


def config(workdir: Path, port: int, store_url: str, hooks: tuple[Hook, Hook, Hook]) -> str:
    webhook, http_source, outside = hooks
    closed = free_port()
    return f"""
[server]
listen = "127.0.0.1:{port}"
api_token = "{SECRETS['api_token']}"
external_url = "http://127.0.0.1:{port}"

[store]
url = "{store_url}"

[rules]
paths = ["{workdir / 'rules'}"]
evaluation_interval = "1s"
watch = false

[notify]
poll_interval = "0.2s"
[notify.retry]
initial_backoff = "0.2s"
max_backoff = "0.5s"
timeout = "2s"
[notify.route]
receiver = "all"
group_by = ["alertname"]
group_wait = "0s"
group_interval = "1s"
[[notify.receivers]]
name = "all"
[[notify.receivers.file]]
path = "{workdir / 'notifications.jsonl'}"
format = "json"
[[notify.receivers.webhook]]
url = "{webhook.url('/hooks/' + SECRETS['webhook'])}"
[[notify.receivers.email]]
to = ["ops@example.org"]
host = "127.0.0.1"
port = {closed}
username = "kpi"
password = "{SECRETS['smtp']}"

[[sources]]
name = "feed"
kind = "csv"
path = "{workdir / 'hostile.csv'}"
indicator_column = "indicator"
labels = {{area = "area"}}
interval = "1s"

[[sources]]
name = "warehouse"
kind = "sql"
url = "postgresql://kpi:{SECRETS['sql']}@127.0.0.1:{closed}/warehouse"
query = "SELECT 1"
indicator = "kpi_hostile"
interval = "1s"

[[sources]]
name = "api"
kind = "json"
url = "{http_source.url('/data')}"
indicator = "kpi_hostile"
auth = {{type = "bearer", token = "{SECRETS['bearer']}"}}
retries = 0
interval = "1s"

[[sources]]
name = "outside"
kind = "json"
url = "{outside.url('/data')}"
indicator = "kpi_hostile"
allowed_hosts = ["data.example.org"]
interval = "1s"
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    if not _pg_reachable():
        if PG_MODE == "1":
            pytest.fail(f"PostgreSQL does not answer at {PG_URL} (MONITOR_TEST_POSTGRES=1)")
        pytest.skip(f"PostgreSQL does not answer at {PG_URL}: the store URL password "
                    "needs a PostgreSQL store")
    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(drivername="postgresql", database=name,
                               password=SECRETS["store"])
    store_url = url.render_as_string(hide_password=False)
    workdir = tmp_path_factory.mktemp("hostile")
    (workdir / "rules").mkdir()
    (workdir / "rules" / "hostile.yaml").write_text(RULES)
    (workdir / "hostile.csv").write_text(hostile_csv())
    hooks = (Hook(replies=[500] * 1000), Hook(replies=[500] * 1000), Hook())
    port = free_port()
    path = workdir / "config.toml"
    path.write_text(config(workdir, port, store_url, hooks))
    log = workdir / "daemon.log"
    proc = start_daemon(path, workdir, log)
    try:
        assert wait_for_text(log, 'msg="daemon started"', proc=proc, timeout=60), log.read_text()
        for needle in ('msg="poll failed; previous data kept" source=warehouse',
                       'msg="poll failed; previous data kept" source=api',
                       'msg="poll failed; previous data kept" source=outside',
                       "receiver=all integration=email:0",
                       "receiver=all integration=webhook:0"):
            assert wait_for_text(log, needle, proc=proc, timeout=60), (needle, log.read_text())
        notifications = workdir / "notifications.jsonl"
        for source in ("warehouse", "api", "outside"):
            needle = f'"alertname": "SourceFailing", "severity": "warning", "source": "{source}"'
            assert wait_for_text(notifications, needle, proc=proc, timeout=60), \
                (needle, log.read_text()[-3000:])
        assert wait_for_text(notifications, "HostileValueHigh", proc=proc)
        yield Hostile(f"http://127.0.0.1:{port}", workdir, log, notifications, store_url,
                      *hooks)
    finally:
        status = stop(proc)
        for hook in hooks:
            hook.close()
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert status == 0, log.read_text()[-3000:]
