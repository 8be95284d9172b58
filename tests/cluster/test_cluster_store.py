"""Membership, shard leases and fencing on the real PostgreSQL, with in-process members
(``beat()`` called by the test instead of the heartbeat thread). A dead replica is made
by ageing its rows, as the passing of its lease would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from monitor.alerts.state import AlertRecord
from monitor.clock import FixedClock
from monitor.cluster import ClusterMember, ClusterSettings, assign, group_key, shard_of
from monitor.model import AlertState, Observation, labels_of, month
from monitor.rules.service import RuleService
from monitor.store import Store, open_store
from monitor.store.cluster import ClusterError, LeaseLostError, NamesakeError

pytestmark = pytest.mark.postgres

SETTINGS = ClusterSettings(heartbeat_interval=1.0, lease_ttl=10.0, shards=8)




def member(store: Store, name: str, settings: ClusterSettings = SETTINGS) -> ClusterMember:
    return ClusterMember(store.cluster, settings, name, CollectorRegistry())


def leases(store: Store) -> dict[int, tuple[str | None, int]]:
    return {lease.shard: (lease.owner if lease.live else None, lease.epoch)
            for lease in store.cluster.leases()}


def die(store: Store, name: str) -> None:
    """Make ``name`` look like a replica that stopped a lease ago."""
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE replica SET heartbeat_at = heartbeat_at - interval '1 hour' "
                          "WHERE id = :id"), {"id": name})
        conn.execute(text("UPDATE shard_lease SET expires_at = clock_timestamp() - "
                          "interval '1 second' WHERE owner = :id"), {"id": name})


def test_it_splits_the_shards_between_live_replicas(store: Store) -> None:
    a, b = member(store, "a"), member(store, "b")
    assert set(a.join().epochs) == set(range(8))  # alone: everything
    b.join()  # a still holds all: b waits for a to let go
    a.beat()  # a sees b and releases b's share
    b.beat()  # b claims it
    want = assign(8, ["a", "b"])
    assert set(a.ownership().epochs) == want["a"]
    assert set(b.ownership().epochs) == want["b"]
    assert {shard: owner for shard, (owner, _) in leases(store).items()} == \
        {s: name for name, held in want.items() for s in held}
    assert [r.id for r in store.cluster.replicas(SETTINGS.lease_ttl) if r.live] == ["a", "b"]


def test_a_dead_replicas_shards_are_taken_over_with_new_epochs(store: Store) -> None:
    a, b = member(store, "a"), member(store, "b")
    a.join()
    b.join()
    a.beat()
    b.beat()
    before = leases(store)
    die(store, "a")
    b.beat()
    after = leases(store)
    assert {owner for owner, _ in after.values()} == {"b"}
    for shard in assign(8, ["a", "b"])["a"]:
        assert after[shard][1] == before[shard][1] + 1  # a fencing token a cannot hold
    for shard in assign(8, ["a", "b"])["b"]:
        assert after[shard][1] == before[shard][1]  # kept: renewed, not claimed again


def test_a_replica_that_lost_its_shards_writes_nothing(store: Store) -> None:
    a, b = member(store, "a"), member(store, "b")
    ownership = a.join()
    record = AlertRecord("x1", "Rule", {"__group__": "g"}, state=AlertState.FIRING)
    die(store, "a")
    b.join()  # a was dead: b takes every shard
    with pytest.raises(LeaseLostError) as caught:
        store.alerts.save([record], [], datetime.now(UTC), guard=a.guard(ownership))
    assert str(caught.value) == (
        "replica 'a' no longer holds shard(s) 0, 1, 2, 3, 4, 5, 6, 7 (lease expired or taken "
        "over); the results of this cycle were discarded and the shards' new owner "
        "evaluates them")
    assert store.alerts.load() == {}
    assert a.ownership().epochs == {}  # forgotten until its next heartbeat
    assert a.metrics.lost._value.get() == 1


def test_a_take_over_waits_for_the_fenced_write_in_flight(store: Store) -> None:
    a, b = member(store, "a"), member(store, "b")
    ownership = a.join()
    b.join()
    with store.engine.connect() as writing:
        with writing.begin():
            a.guard(ownership)(writing)  # a's write is in flight...
            die(store, "a")  # ...when its lease runs out (a stalled process)
            assert b.beat().epochs == {}  # b must not take a shard mid-write
        assert set(b.beat().epochs) == set(range(8))  # committed: now it may


def test_it_refuses_a_live_namesake_and_replaces_a_dead_one(store: Store) -> None:
    member(store, "a").join()
    with pytest.raises(NamesakeError) as caught:
        store.cluster.join("a", "another-process", host="h", pid=1, version="v", ttl=9.0,
                           shards=8)
    assert str(caught.value) == (
        "another live replica is named 'a' (its last heartbeat is less than 9s old): give "
        "every replica its own daemon.instance, or leave it empty (hostname:pid)")
    die(store, "a")
    replacement = member(store, "a")
    assert set(replacement.join().epochs) == set(range(8))


def test_it_refuses_another_shard_count_while_replicas_use_theirs(store: Store) -> None:
    member(store, "a").join()
    with pytest.raises(ClusterError) as caught:
        member(store, "b", ClusterSettings(shards=16)).join()
    assert str(caught.value) == (
        "cluster.shards = 16, but the 1 live replica(s) on this database use 8: every "
        "replica needs the same value; set cluster.shards = 8, or stop every replica and "
        "start them all with the new value")


def test_it_cuts_the_work_anew_when_no_replica_runs_and_epochs_never_go_back(
        store: Store) -> None:
    old = member(store, "a")
    old.join()
    old.stop()
    epochs = max(epoch for _, epoch in leases(store).values())
    resized = member(store, "b", ClusterSettings(shards=16))
    held = resized.join()
    assert set(held.epochs) == set(range(16))
    assert min(held.epochs.values()) > epochs


def test_leaving_frees_the_shards_at_once(store: Store) -> None:
    a, b = member(store, "a"), member(store, "b")
    a.join()
    b.join()
    a.stop()
    assert set(b.beat().epochs) == set(range(8))
    assert [r.id for r in store.cluster.replicas(SETTINGS.lease_ttl)] == ["b"]


def test_a_sqlite_store_has_no_cluster(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'one.db'}")
    try:
        with pytest.raises(ClusterError, match="a SQLite store serves one process"):
            _ = store.cluster
    finally:
        store.close()


RULES = """
indicators:
  - {id: load, name: Load, direction: down, aggregation: last, window: 1}
groups:
  - name: g
    rules:
      - {alert: LoadHigh, indicator: load, for: 2 evaluations, when: {level: {above: 100}}}
"""


def test_a_rule_group_taken_over_carries_on_with_its_for_timer(store: Store,
                                                                tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    clock = FixedClock(datetime(2024, 7, 15, tzinfo=UTC))
    store.observations.ingest("kpi", [
        Observation("load", labels_of({"area": "a0"}), month(f"2024-0{m}"), 150.0)
        for m in range(1, 7)], now=clock.now())
    a, b = member(store, "a"), member(store, "b")
    a.join()
    first = RuleService(store, [str(tmp_path)], clock, CollectorRegistry(), partition=a)
    second = RuleService(store, [str(tmp_path)], clock, CollectorRegistry(), partition=b)
    first.load()
    second.load()
    b.join()  # a holds everything still
    [pending] = first.evaluate().changed
    assert (pending.state, pending.pending_evaluations) == (AlertState.PENDING, 1)
    assert second.evaluate().changed == []  # b holds no shard yet: evaluates nothing
    die(store, "a")
    assert shard_of(group_key("g"), 8) in b.beat().epochs
    clock.advance(timedelta(minutes=1))
    [fired] = second.evaluate().changed
    assert fired.state is AlertState.FIRING  # the second evaluation, counted across owners
    assert [t["to_state"] for t in reversed(store.alerts.transitions())] == \
        ["pending", "firing"]


def test_a_replica_shows_the_alerts_of_groups_another_replica_evaluates(
        store: Store, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    clock = FixedClock(datetime(2024, 7, 15, tzinfo=UTC))
    store.observations.ingest("kpi", [
        Observation("load", labels_of({"area": "a0"}), month(f"2024-0{m}"), 150.0)
        for m in range(1, 7)], now=clock.now())
    a, b = member(store, "a"), member(store, "b")
    a.join()
    b.join()  # a holds every shard: b evaluates nothing, and shows what a decided
    owner = RuleService(store, [str(tmp_path)], clock, CollectorRegistry(), partition=a)
    viewer = RuleService(store, [str(tmp_path)], clock, CollectorRegistry(), partition=b)
    owner.load()
    viewer.load()
    owner.evaluate()
    viewer.evaluate()
    assert [r.state for r in viewer.records.values()] == [AlertState.PENDING]
    for _ in range(2):  # a minute apart: the viewer reads the owner's alerts again
        clock.advance(timedelta(minutes=1))
        owner.evaluate()
        assert viewer.evaluate().changed == []
        assert [r.state for r in owner.records.values()] == [AlertState.FIRING]
        assert viewer.records == owner.records == store.alerts.load()
