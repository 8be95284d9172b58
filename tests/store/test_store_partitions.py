"""A partition reads its own series by their stored positions (an index range), under
whatever key the rules name, and a store migrated from before positions reads the same."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from monitor.model import Observation, labels_of
from monitor.store import Store, db, open_store
from monitor.store.partitions import read_partition, set_key
from monitor.store.partkey import PartitionKey, partition_of

NOW = datetime(2016, 12, 5, 6, 0, tzinfo=UTC)
AREAS = [f"E{i:04d}" for i in range(60)]
KINDS = ["burglary", "robbery", "theft"]
BY_AREA = PartitionKey(("area",))
BY_KIND = PartitionKey(("kind",))
PINNED = PartitionKey(("area",), {"E0001": 7, "E0002": 7})  # a peer group, kept whole




def _ingest(store: Store, areas: list[str], indicator: str = "crime") -> None:
    store.observations.ingest("gen", [
        Observation(indicator, labels_of({"area": area, "kind": kind}), 24_000 + k,
                    float(k + i))
        for i, area in enumerate(areas) for kind in KINDS for k in range(3)], now=NOW)


def _partitions(store: Store, key: PartitionKey, n: int, indicators: list[str] | None = None
                ) -> list[set[tuple[str, str, str]]]:
    """Return each partition's series as (indicator, area, kind)."""
    out = []
    for index in range(n):
        blocks = read_partition(store, indicators or ["crime"], key, index, n)
        out.append({(name, lab["area"], lab["kind"])
                    for name, block in blocks.items() for lab in block.labels})
    return out


def _expected(key: PartitionKey, n: int, areas: list[str], indicator: str = "crime"
              ) -> list[set[tuple[str, str, str]]]:
    out: list[set[tuple[str, str, str]]] = [set() for _ in range(n)]
    for area in areas:
        for kind in KINDS:
            labels = {"area": area, "kind": kind}
            out[partition_of(key.position_of(labels), n)].add((indicator, area, kind))
    return out


@pytest.mark.parametrize("key", [pytest.param(BY_AREA, id="by-area"),
                                 pytest.param(BY_KIND, id="by-kind"),
                                 pytest.param(PINNED, id="peer-group-pinned")])
@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_it_reads_each_series_in_exactly_the_partition_of_its_key(
        store: Store, key: PartitionKey, n: int) -> None:
    _ingest(store, AREAS)
    before = _partitions(store, key, n)  # no key stored: every series' key values read
    assert set_key(store, key) == len(AREAS) * len(KINDS)
    assert _partitions(store, key, n) == before == _expected(key, n, AREAS)


def test_it_keeps_a_peer_group_in_one_partition(store: Store) -> None:
    set_key(store, PINNED)
    _ingest(store, AREAS)
    homes = {index for index, part in enumerate(_partitions(store, PINNED, 8))
             for _name, area, _kind in part if area in {"E0001", "E0002"}}
    assert len(homes) == 1


def test_it_positions_series_created_after_the_key_was_stored(store: Store) -> None:
    set_key(store, BY_AREA)
    _ingest(store, AREAS[:30])
    _ingest(store, AREAS[20:], indicator="other")
    wanted = [a | b for a, b in zip(_expected(BY_AREA, 4, AREAS[:30]),
                                    _expected(BY_AREA, 4, AREAS[20:], "other"), strict=True)]
    assert _partitions(store, BY_AREA, 4, ["crime", "other"]) == wanted


def test_a_new_key_positions_every_series_again_and_the_old_one_still_reads_right(
        store: Store) -> None:
    _ingest(store, AREAS)
    set_key(store, BY_AREA)
    assert set_key(store, BY_AREA) == 0  # the stored key: nothing to do
    assert set_key(store, BY_KIND) == len(AREAS) * len(KINDS)  # the rules' key changed
    assert _partitions(store, BY_KIND, 3) == _expected(BY_KIND, 3, AREAS)
    # A reader still on the old key (a worker before the reload reached it) is not
    # served the new key's ranges: it reads the key values, and the same series.
    assert _partitions(store, BY_AREA, 3) == _expected(BY_AREA, 3, AREAS)


def test_a_store_migrated_from_before_positions_reads_the_same_partitions(
        store_url: str) -> None:
    old = Store(store_url)
    try:
        command.upgrade(db._alembic_config(old.engine), "0004")
        with old.engine.begin() as conn:
            conn.execute(text("INSERT INTO indicator (id, name, reference, unit, direction, "
                              "frequency, definition) VALUES ('crime', 'crime', '', '', "
                              "'neutral', 'monthly', '{}')"))
            for sid, area in enumerate(AREAS, start=1):
                conn.execute(text("INSERT INTO series (id, indicator_id, fingerprint, labels, "
                                  "source) VALUES (:id, 'crime', :fp, :labels, 'gen')"),
                             {"id": sid, "fp": f"f{sid}",
                              "labels": f'{{"area": "{area}", "kind": "theft"}}'})
                conn.execute(text("INSERT INTO observation (series_id, period, value, "
                                  "provisional, as_of, revisions, source) VALUES "
                                  "(:id, 24000, 1.0, false, '2016-01-01', 0, 'gen')"),
                             {"id": sid})
        old.upgrade()
        wanted = [{s for s in part if s[2] == "theft"} for part in _expected(BY_AREA, 4, AREAS)]
        assert _partitions(old, BY_AREA, 4) == wanted  # no positions yet: read the old way
        set_key(old, BY_AREA)
        assert _partitions(old, BY_AREA, 4) == wanted
    finally:
        old.close()


def test_it_reads_a_partition_through_the_position_index_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    open_store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT id, indicator_id, labels FROM series WHERE "
            "indicator_id IN (?, ?) AND part >= ? AND part < ? ORDER BY indicator_id, id",
            ("a", "b", 0, 1 << 31)))
    assert "ix_series_part (indicator_id=? AND part>? AND part<?)" in plan
