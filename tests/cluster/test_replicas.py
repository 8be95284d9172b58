"""Real replicas on one PostgreSQL: one killed in the middle of an evaluation cycle, a
rolling restart of all three — every alert evaluated, every notification delivered
exactly once — and one killed in the middle of a delivery: its message is sent once
more by another, never lost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.cluster.harness import (
    Cluster,
    WebhookReceiver,
    libpq,
    query,
    spread_groups,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NAMES = ["r1", "r2", "r3"]
AREAS = ["a0", "a1", "a2", "a3"]
SHARDS = 12


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    hook = WebhookReceiver()
    # Two rule groups land on each replica's shards, so each has work of its own.
    made = Cluster(tmp_path, postgres_url, hook, spread_groups(NAMES, SHARDS, 2), AREAS,
                   shards=SHARDS)
    try:
        yield made
    finally:
        made.stop_all()
        hook.close()


def start_three(cluster: Cluster) -> None:
    # Started together on an empty database: the migration lock lets one migrate.
    replicas = [cluster.start(name) for name in NAMES]
    cluster.wait_ready(*replicas)
    wait_until(lambda: cluster.balanced(NAMES), 30, "shards balanced over three replicas",
               cluster.logs)


def writing_replicas(url: str) -> set[str]:
    """The replicas whose evaluation is waiting to write the alert table."""
    return {r[0] for r in query(
        url, "SELECT application_name FROM pg_stat_activity WHERE datname = "
             "current_database() AND wait_event_type = 'Lock' AND query ILIKE '%alert%'")}


def test_it_evaluates_and_notifies_every_alert_once_when_a_replica_is_killed_mid_cycle(
        cluster: Cluster) -> None:
    start_three(cluster)
    expected = cluster.expected(AREAS)
    with psycopg.connect(libpq(cluster.url)) as blocker:
        # Hold every evaluation at its write: the cycle has read, evaluated and fenced
        # its shards, and its transaction is open when the replica dies.
        blocker.execute("LOCK TABLE alert IN EXCLUSIVE MODE")
        cluster.write_data(set(AREAS))
        wait_until(lambda: writing_replicas(cluster.url) == set(NAMES), 30,
                   "every replica in the middle of writing its evaluation", cluster.logs)
        cluster.replicas["r2"].kill()
        blocker.rollback()
    wait_until(lambda: cluster.settled(expected), 60,
               "every alert fired and its notification delivered", cluster.logs)
    assert cluster.firing() == expected  # r2's rule groups were evaluated by the others
    assert cluster.fired() == expected  # once each: no shard was evaluated by two
    assert cluster.hook.counts() == expected  # every notification delivered exactly once
    assert set(cluster.owners()) == {"r1", "r3"}
    r2_output = cluster.replicas["r2"].output()
    assert "alerts changed state" not in r2_output  # its cycle never committed


def test_a_rolling_restart_of_all_three_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    start_three(cluster)
    breaching: set[str] = set()
    for area, name in zip(AREAS, NAMES, strict=False):
        # New alerts arrive while each replica in turn stops and starts again.
        breaching.add(area)
        cluster.write_data(breaching)
        assert cluster.replicas[name].terminate() == 0
        cluster.wait_ready(cluster.start(name))
    breaching.add(AREAS[-1])
    cluster.write_data(breaching)
    expected = cluster.expected(breaching)
    wait_until(lambda: cluster.settled(expected), 60,
               "every alert fired and its notification delivered", cluster.logs)
    assert cluster.firing() == expected
    assert cluster.fired() == expected
    assert cluster.hook.counts() == expected
    wait_until(lambda: cluster.balanced(NAMES), 30, "shards balanced again", cluster.logs)
    for replica in cluster.started[:3]:
        assert 'msg="left the cluster"' in replica.output()


def test_a_message_a_killed_replica_was_sending_is_sent_once_more_by_another(
        tmp_path: Path, postgres_url: str) -> None:
    hook = WebhookReceiver()
    pair = ["r1", "r2"]
    # A send may take 5 s, and a lease covers one message: each replica has at most one
    # message leased, and it is the one held at the receiver.
    cluster = Cluster(tmp_path, postgres_url, hook, spread_groups(pair, SHARDS, 2), AREAS,
                      shards=SHARDS, send_timeout="5s", send_lease="6s")
    try:
        replicas = [cluster.start(name) for name in pair]
        cluster.wait_ready(*replicas)
        wait_until(lambda: cluster.balanced(pair), 30, "shards balanced", cluster.logs)
        hook.hold.clear()  # the receiver takes requests and does not answer yet
        cluster.write_data({"a0"})

        seen: dict[str, list[tuple[str, str]]] = {}

        def sending() -> bool:
            # Every leased message has reached the receiver (not merely been claimed: on a
            # slow machine a replica can hold a lease it has not sent on yet).
            leased = cluster.in_flight()
            got = {key for keys in hook.received() for key in keys}
            seen.clear()
            seen.update(leased)
            return bool(leased) and all(key in got for keys in leased.values() for key in keys)

        wait_until(sending, 30, "messages in flight", cluster.logs)
        victim, in_flight = sorted(seen.items())[0]
        cluster.replicas[victim].kill()  # mid-delivery: received, never acknowledged
        before = Counter(key for keys in hook.received() for key in keys)
        hook.hold.set()
        expected = cluster.expected({"a0"})
        wait_until(lambda: cluster.settled(expected)
                   and all(before[k] + 1 <= Counter(k2 for keys in hook.received()
                                                     for k2 in keys)[k] for k in in_flight),
                   60, "every message delivered, the victim's once more", cluster.logs)
        received = Counter(key for keys in hook.received() for key in keys)
        # Never lost; sent once more what the killed replica had in flight; any other copy
        # is of a message that was held at the receiver past the send timeout before the kill.
        assert set(received) == set(expected)
        assert all(received[key] >= 2 for key in in_flight)
        assert set(received - expected - Counter(in_flight)) <= set(before)
        assert cluster.fired() == expected
    finally:
        cluster.stop_all()
        hook.close()
