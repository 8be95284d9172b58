"""PostgreSQL restarted under a running replica: not ready while it is away, nothing
half-written, heartbeats retried with backoff, and everything queued delivered once it
is back."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, WebhookReceiver, query, wait_until
from tests.cluster.private_postgres import PrivatePostgres, make, postgres_bin
from tests.conftest import PG_MODE

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def server() -> Iterator[PrivatePostgres]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        if PG_MODE == "1":
            pytest.fail("no PostgreSQL server binaries under /usr/lib/postgresql")
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
    made = make(bin_dir)
    try:
        yield made
    finally:
        if made.running():
            made.stop("immediate")
        shutil.rmtree(made.root, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path: Path, server: PrivatePostgres) -> Iterator[Cluster]:
    hook = WebhookReceiver()
    made = Cluster(tmp_path, server.create_database("monitor"), hook, ["g000", "g001"],
                   ["a0", "a1", "a2"], shards=4)
    try:
        yield made
    finally:
        made.stop_all()
        hook.close()


def pending_attempted(cluster: Cluster) -> int:
    return int(query(cluster.url, "SELECT count(*) FROM notification "
                                  "WHERE status = 'pending' AND attempts > 0")[0][0])


def test_it_is_not_ready_while_postgres_is_down_and_resumes_losing_nothing(
        cluster: Cluster, server: PrivatePostgres) -> None:
    replica = cluster.start("r1")
    cluster.wait_ready(replica)
    cluster.write_data({"a0"})
    wait_until(lambda: cluster.settled(cluster.expected({"a0"})), 60, "a0 notified",
               cluster.logs)

    # The receiver is down: a1's notifications are queued and retried.
    cluster.hook.status = 503
    cluster.write_data({"a0", "a1"})
    wait_until(lambda: pending_attempted(cluster) == 2, 60, "a1 queued and attempted",
               cluster.logs)

    server.stop()
    wait_until(lambda: replica.ready()[0] == 503, 30, "not ready without PostgreSQL",
               cluster.logs)
    assert replica.ready() == (503, "store unreachable\n")
    wait_until(lambda: replica.output().count("cluster heartbeat failed") >= 3, 30,
               "heartbeats retried", cluster.logs)
    cluster.hook.status = 200
    server.start()

    cluster.wait_ready(replica)
    cluster.write_data({"a0", "a1", "a2"})  # evaluated after the return: it resumed
    expected = cluster.expected({"a0", "a1", "a2"})
    wait_until(lambda: cluster.settled(expected), 60,
               "everything queued delivered and new alerts notified", cluster.logs)
    assert cluster.firing() == expected
    assert cluster.fired() == expected  # no transition written twice, none lost
    assert cluster.hook.counts() == expected  # each delivered once: nothing lost
    output = replica.output()
    delays = [float(d) for d in re.findall(
        r'msg="cluster heartbeat failed; retrying".* retry_in=([0-9.]+)', output)]
    assert delays[0] < delays[1] < delays[2]  # backing off
    assert 'msg="cluster heartbeat recovered"' in output
    assert 'msg="cluster membership lost; jobs paused until the database answers"' in output
    assert 'msg="cluster membership restored; jobs resumed"' in output
    assert replica.proc.poll() is None
