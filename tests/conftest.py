"""Shared fixtures: stores on SQLite and on the real PostgreSQL, free ports, the shared data.

PostgreSQL-backed tests use the server at ``MONITOR_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Each test gets a database of its own,
created and dropped around it. ``MONITOR_TEST_POSTGRES=1`` (set by CI) makes an
unreachable server a failure; ``=0`` deselects them; unset runs them when the server
answers and otherwise skips them with the reason.

The same setting says "this is CI": a test that needs something of the machine (a tmpfs
mount, libfaketime, systemd-analyze, Alertmanager) calls :func:`needs`, which skips
with the reason elsewhere and fails under CI, where the docs say it runs.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from monitor.store import Store, open_store

REPO = Path(__file__).resolve().parents[1]
# The real London crime data the tests read: the copy the repository ships with its London
# example, so a clone anywhere runs them (MONITOR_SHARED_DATA: another folder of the same
# files). It is byte for byte the project's shared data, SHARED_DATA beside the checkout,
# which tests/examples/test_london_backtest.py checks wherever that folder is.
LONDON_DATA = Path(os.environ.get("MONITOR_SHARED_DATA",
                                  REPO / "examples" / "london-boroughs" / "data"))
SHARED_DATA = REPO.parent / "shared" / "data"
PG_URL = os.environ.get("MONITOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_MODE = os.environ.get("MONITOR_TEST_POSTGRES", "")

# The property suite's count of generated inputs, added up over xdist workers and printed
# at the end of the run.
pytest_plugins = ["tests.property.tally"]


def needs(reason: str) -> None:
    """Skip the test for ``reason`` — or, under CI (``MONITOR_TEST_POSTGRES=1``), fail it:
    CI installs everything, so a missing piece there is a broken CI, not a skip."""
    if PG_MODE == "1":
        pytest.fail(f"{reason}; CI must run this test (MONITOR_TEST_POSTGRES=1)")
    pytest.skip(reason)


def _pg_reachable() -> bool:
    url = make_url(PG_URL)
    try:
        socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=2).close()
        return True
    except OSError:
        return False


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say so when the run's wall clock is moved (``make test-future``)."""
    if not os.environ.get("FAKETIME"):
        return None
    return (f"wall clock moved by libfaketime (FAKETIME={os.environ['FAKETIME']}): "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if PG_MODE == "0":
        deselected = [i for i in items if "postgres" in i.keywords]
        items[:] = [i for i in items if "postgres" not in i.keywords]
        config.hook.pytest_deselected(items=deselected)


def _admin_dsn() -> str:
    return make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    if not _pg_reachable():
        if PG_MODE == "1":
            pytest.fail(f"PostgreSQL does not answer at {PG_URL} (MONITOR_TEST_POSTGRES=1)")
        pytest.skip(f"PostgreSQL does not answer at {PG_URL}; set MONITOR_TEST_POSTGRES=1 "
                    "to make that a failure")
    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each backend: the store suite runs once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store on each backend the suite runs (``store_url``), closed after the test."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


def _port_range() -> range:
    """Return the ports this process hands out: below the kernel's ephemeral range, and
    under pytest-xdist (``make test`` runs the suite in several workers) a slice of that
    of its own per worker."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    low = 10_000
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    size = (ephemeral - low) // workers
    return range(low + worker * size, low + (worker + 1) * size)


PORTS = _port_range()
# A random start: two test runs at once on one machine (two worktrees) seldom meet.
_next_port = itertools.count(random.SystemRandom().randrange(len(PORTS)))


def free_port() -> int:
    """Return a loopback port nothing listens on, one this process has not handed out before.

    A port the kernel picks (binding port 0) can be taken again — by another worker's
    server, or as the local port of any outgoing connection — in the seconds between this
    choice and the test's server binding it. The ports here lie below the kernel's
    ephemeral range, which no outgoing connection and no port-0 bind uses, and each xdist
    worker has a slice of its own.
    """
    for _ in range(len(PORTS)):
        port = PORTS[next(_next_port) % len(PORTS)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use, or still in TIME_WAIT
                continue
        return port
    raise RuntimeError(f"no free port in {PORTS}")


@pytest.fixture
def port() -> int:
    return free_port()
