"""The cluster's pure decisions: which shard a key is in, which shards each replica
holds, how long to wait after a failed heartbeat — and the [cluster] settings."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.cluster import (
    Ownership,
    assign,
    digest_key,
    group_key,
    retry_delay,
    shard_of,
    source_key,
)
from monitor.errors import ConfigError
from monitor.settings import load


@pytest.mark.parametrize(("key", "shards", "shard"), [
    pytest.param("rules:a", 64, 14, id="a rule group"),
    pytest.param("source:kpi", 64, 18, id="a source"),
    pytest.param("digest:weekly", 64, 30, id="a digest"),
    pytest.param("rules:a", 1, 0, id="one shard"),
])
def test_it_puts_a_key_in_the_same_shard_in_every_process_and_version(
        key: str, shards: int, shard: int) -> None:
    # Replicas of one cluster must agree, so the hash is fixed (not Python's hash()).
    assert shard_of(key, shards) == shard


def test_it_names_the_work_keys_by_kind() -> None:
    assert (group_key("g"), source_key("s"), digest_key("d")) == \
        ("rules:g", "source:s", "digest:d")


@pytest.mark.parametrize(("shards", "replicas", "sizes"), [
    pytest.param(12, ["r1", "r2", "r3"], [4, 4, 4], id="even"),
    pytest.param(64, ["r1", "r2", "r3"], [22, 21, 21], id="uneven"),
    pytest.param(2, ["r1", "r2", "r3"], [0, 1, 1], id="more replicas than shards"),
    pytest.param(5, ["solo"], [5], id="alone"),
])
def test_it_gives_every_shard_to_one_replica_and_balances_them(
        shards: int, replicas: list[str], sizes: list[int]) -> None:
    held = assign(shards, replicas)
    assert sorted(len(s) for s in held.values()) == sorted(sizes)
    assert sorted(s for owned in held.values() for s in owned) == list(range(shards))


def test_it_assigns_nothing_without_live_replicas() -> None:
    assert assign(8, []) == {}


@given(st.integers(1, 300), st.lists(st.text(min_size=1, max_size=12), min_size=1,
                                     max_size=9, unique=True))
def test_every_replica_computes_the_same_balanced_assignment(
        shards: int, replicas: list[str]) -> None:
    held = assign(shards, replicas)
    assert held == assign(shards, list(reversed(replicas)))  # the order seen is irrelevant
    counts = Counter(s for owned in held.values() for s in owned)
    assert counts == Counter(range(shards))  # each shard exactly once
    room = -(-shards // len(replicas))
    assert max(len(owned) for owned in held.values()) <= room


def test_a_replica_leaving_moves_few_of_the_survivors_shards() -> None:
    rng = random.Random(7)
    for _ in range(300):
        names = [f"replica-{rng.randrange(10**6)}" for _ in range(rng.randint(2, 8))]
        gone = rng.choice(names)
        survivors = [n for n in names if n != gone]
        before, after = assign(64, names), assign(64, survivors)
        held = sum(len(before[n]) for n in survivors)
        kept = sum(len(before[n] & after[n]) for n in survivors)
        assert kept >= 0.75 * held, (names, gone)
        assert before[gone] <= frozenset().union(*after.values())  # its shards taken over


@pytest.mark.parametrize(("failures", "low", "high"), [
    pytest.param(1, 4.5, 5.5, id="first: one interval"),
    pytest.param(2, 9.0, 11.0, id="second: doubled"),
    pytest.param(3, 13.5, 16.5, id="third: capped"),
    pytest.param(50, 13.5, 16.5, id="many: still capped"),
])
def test_it_backs_off_after_failed_heartbeats(failures: int, low: float, high: float) -> None:
    delays = [retry_delay(failures, 5.0, 15.0, random.Random(seed)) for seed in range(50)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 1  # jittered: replicas that lost the database part ways


def test_ownership_says_which_keys_are_held() -> None:
    ownership = Ownership(64, {14: 3})
    assert ownership.owns("rules:a")
    assert not ownership.owns("source:kpi")
    assert not Ownership(64).owns("rules:a")


@pytest.mark.parametrize(("text", "message"), [
    pytest.param('heartbeat_interval = "10s"\nlease_ttl = "15s"',
                 "cluster.lease_ttl must be at least twice cluster.heartbeat_interval, or a "
                 "replica loses its shards between two heartbeats", id="ttl too short"),
    pytest.param('heartbeat_interval = "0s"',
                 "cluster.heartbeat_interval must be more than 0", id="no interval"),
    pytest.param("shards = 0", "Input should be greater than or equal to 1",
                 id="no shards"),
])
def test_it_refuses_cluster_settings_that_cannot_work(tmp_path: Path, text: str,
                                                      message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[cluster]\n{text}\n")
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    assert [p.message for p in caught.value.problems] == [message]


def test_the_cluster_defaults_take_a_dead_replicas_shards_within_30s() -> None:
    cluster = load(None, environ={}).cluster
    assert (cluster.heartbeat_interval, cluster.lease_ttl, cluster.shards) == (5.0, 30.0, 64)
