"""A bulk read gives every stored value exactly as each series' own history holds it:
series with gaps, denominators, provisional values and revised values included, with
and without a first period, and for one partition of the series."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from monitor.model import Observation, month
from monitor.store import Store, partitions
from monitor.store.partitions import read_partition, set_key
from monitor.store.partkey import PartitionKey

NOW = datetime(2016, 12, 5, 6, 0, tzinfo=UTC)
START = month("2014-01")




def _observations(revised: bool) -> list[Observation]:
    """Forty areas of two indicators over 36 months: area a3k is missing every third
    month, a5k starts late, a rate's denominator is given on half the areas, the last
    month of every seventh area is provisional; ``revised`` changes some values."""
    out = []
    for i in range(40):
        area = (("area", f"a{i:02d}"),)
        first = 12 if i % 5 == 0 else 0
        for k in range(first, 36):
            if i % 3 == 0 and k % 3 == 1:
                continue  # a gap
            value = float(100 + i + k) + (0.5 if revised and (i + k) % 4 == 0 else 0.0)
            out.append(Observation("burglary", area, START + k, value,
                                   float(1000 + i) if i % 2 else None,
                                   provisional=(k == 35 and i % 7 == 0)))
            if i < 10:
                out.append(Observation("robbery", area, START + k, value / 3))
    return out


def _expected(store: Store, blocks: dict[str, object], since: int | None
              ) -> list[tuple[object, ...]]:
    rows = []
    for name, block in sorted(blocks.items()):
        assert len(block.labels) == len(block.series_ids)  # type: ignore[attr-defined]
        for labels in block.labels:  # type: ignore[attr-defined]
            for p in store.observations.history(name, labels, since=since):
                rows.append((name, tuple(sorted(labels.items())), p.period, p.value,
                             p.denominator, p.provisional, p.revisions))
    return rows


def _read(blocks: dict[str, object]) -> list[tuple[object, ...]]:
    rows = []
    for name, b in sorted(blocks.items()):
        for k in range(len(b)):  # type: ignore[arg-type]
            labels = tuple(sorted(b.labels[b.row[k]].items()))  # type: ignore[attr-defined]
            den = float(b.denominator[k])  # type: ignore[attr-defined]
            rows.append((name, labels, int(b.period[k]), float(b.value[k]),  # type: ignore[attr-defined]
                         None if np.isnan(den) else den, bool(b.provisional[k]),  # type: ignore[attr-defined]
                         int(b.revisions[k])))  # type: ignore[attr-defined]
    return rows


@pytest.mark.parametrize("since", [None, START + 20])
def test_a_bulk_read_holds_every_value_each_series_history_holds(store: Store,
                                                                 since: int | None) -> None:
    store.observations.ingest("s", _observations(False), now=NOW)
    store.observations.ingest("s", _observations(True), now=NOW)  # some values revised
    blocks = store.observations.read(since=since)
    read = _read(blocks)
    assert read == _expected(store, blocks, since)
    assert len(read) > 500
    assert any(r[6] > 0 for r in read)  # revised values are among them
    assert any(r[4] is not None for r in read) and any(r[5] for r in read)
    gaps = [r[2] for r in read if r[1] == (("area", "a03"),) and r[0] == "burglary"]
    assert len(gaps) < 36 - (20 if since else 0)  # a series with gaps


def test_one_partition_read_holds_its_series_as_their_history_does(store: Store) -> None:
    store.observations.ingest("s", _observations(False), now=NOW)
    store.observations.ingest("s", _observations(True), now=NOW)
    key = PartitionKey(("area",))
    parts = [read_partition(store, ["burglary", "robbery"], key, i, 3) for i in range(3)]
    rows = [row for blocks in parts for row in _read(blocks)]
    assert sorted(rows, key=repr) == sorted(_expected(store, store.observations.read(), None),
                                            key=repr)
    for blocks in parts:
        assert _read(blocks) == _expected(store, blocks, None)


def test_a_handful_of_rare_rows_among_many_bare_ones_are_read_in_their_places(
        store: Store) -> None:
    """Most stores hold bare values only: the few rows with a denominator, a provisional
    flag or a revision are found through the index that holds only them (migration
    0007), by a whole read, a read from a period and a partition's read alike."""
    bare = [Observation("burglary", (("area", f"a{i:02d}"),), START + k, float(100 + i + k))
            for i in range(40) for k in range(36)]
    store.observations.ingest("s", bare, now=NOW)
    store.observations.ingest("s", [
        Observation("burglary", (("area", "a07"),), START + 30, 137.0, 5000.0),
        Observation("burglary", (("area", "a21"),), START + 35, 156.0, provisional=True),
        Observation("burglary", (("area", "a33"),), START + 34, 999.0)], now=NOW)  # revised
    for since in (None, START + 30):
        blocks = store.observations.read(since=since)
        read = _read(blocks)
        assert read == _expected(store, blocks, since)
        assert {r[1][0][1]: r[2:] for r in read if r[4] is not None or r[5] or r[6]} == {
            "a07": (START + 30, 137.0, 5000.0, False, 1),  # a denominator added: revised
            "a21": (START + 35, 156.0, None, True, 0),
            "a33": (START + 34, 999.0, None, False, 1)}
    key = PartitionKey(("area",))
    parts = [read_partition(store, ["burglary"], key, i, 3) for i in range(3)]
    for blocks in parts:
        assert _read(blocks) == _expected(store, blocks, None)
    assert sum(1 for blocks in parts for r in _read(blocks) if r[4] or r[5] or r[6]) == 3


@pytest.mark.parametrize("since", [None, START + 34])
def test_a_read_of_the_series_a_poll_touched_holds_what_their_history_holds(
        store: Store, since: int | None) -> None:
    """A poll's changes are read a row per observation (a row or two per series), not as
    runs: the same values, gaps, denominators, flags and revisions."""
    store.observations.ingest("s", _observations(False), now=NOW)
    store.observations.ingest("s", _observations(True), now=NOW)
    every = store.observations.read()
    touched = {int(i) for b in every.values() for i in b.series_ids[::3]}  # type: ignore[attr-defined]
    blocks = store.observations.read(since=since, series_ids=touched)
    read = _read(blocks)
    assert read == _expected(store, blocks, since)
    assert sum(len(b.labels) for b in blocks.values()) == len(touched)  # type: ignore[attr-defined]
    assert any(r[4] is not None for r in read) and any(r[6] for r in read)
    parts = [read_partition(store, ["burglary", "robbery"], PartitionKey(("area",)), i, 2,
                            series_ids=np.array(sorted(touched)), since=since)
             for i in range(2)]
    assert sorted(r for blocks in parts for r in _read(blocks)) == sorted(read)


def test_a_read_of_changes_takes_the_labels_of_the_series_held_and_reads_the_others(
        store: Store) -> None:
    """A poll's changes merged into the blocks held take each held series' labels from
    its block (the same dict, not read again), wherever the block holds it (its series
    in any order), and read the labels of the series it does not hold."""
    store.observations.ingest("s", _observations(False), now=NOW)
    every = store.observations.read()
    stored = {int(sid): labels for b in every.values()  # type: ignore[attr-defined]
              for sid, labels in zip(b.series_ids, b.labels, strict=True)}
    burglary = every["burglary"]
    keep = [k for k in range(len(burglary.series_ids)) if k % 4][::-1]  # some, backwards
    held = {"burglary": replace(burglary, series_ids=[burglary.series_ids[k] for k in keep],
                                labels=[dict(burglary.labels[k]) for k in keep])}
    mine = dict(zip(held["burglary"].series_ids, held["burglary"].labels, strict=True))
    touched = set(stored)
    names = ["burglary", "robbery"]
    key = PartitionKey(("area",))
    whole = store.observations.read(names, since=START + 34, series_ids=touched)
    reads = [store.observations.read(names, since=START + 34, series_ids=touched, held=held)
             ] + [read_partition(store, names, key, i, 2, series_ids=np.array(sorted(touched)),
                                 since=START + 34, held=held) for i in range(2)]
    # the same blocks as a read that holds nothing: series in the same order, same rows
    assert _same_blocks(reads[0], whole)
    for i in range(2):
        assert _same_blocks(reads[1 + i], read_partition(
            store, names, key, i, 2, series_ids=np.array(sorted(touched)), since=START + 34))
    taken = read_again = 0
    for blocks in reads:
        assert _read(blocks) == _expected(store, blocks, START + 34)
        for b in blocks.values():
            for sid, labels in zip(b.series_ids, b.labels, strict=True):  # type: ignore[attr-defined]
                assert labels == stored[sid]
                if sid in mine:
                    assert labels is mine[sid]
                    taken += 1
                else:
                    read_again += 1
    assert taken == 2 * len(keep)  # the whole read, then the two partitions' reads
    assert read_again == 2 * (len(stored) - len(keep))


def test_a_partition_reads_the_changes_of_its_own_series_from_its_blocks_and_new_ones(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the series' positions stored under the key, a partition's read of a poll's
    changes finds the series its blocks hold there and asks the store only for the rest
    that are its own (new series): the same blocks as listing its series, and none of
    another partition's."""
    store.observations.ingest("s", _observations(False), now=NOW)
    names = ["burglary", "robbery"]
    key = PartitionKey(("area",))
    set_key(store, key)
    touched = np.array(sorted(int(i) for b in store.observations.read().values()
                              for i in b.series_ids))  # type: ignore[attr-defined]
    seen: list[int] = []
    listed: list[int] = []
    real = partitions._listed
    monkeypatch.setattr(partitions, "_listed", lambda *a, **k: listed.append(1) or real(*a, **k))
    for i in range(3):
        mine = read_partition(store, names, key, i, 3)
        # its blocks hold some of its series (backwards); the others come as new ones
        held = {name: replace(b, series_ids=b.series_ids[::-2], labels=b.labels[::-2])
                for name, b in mine.items() if name == "burglary"}
        kept = {sid: labels for b in held.values()
                for sid, labels in zip(b.series_ids, b.labels, strict=True)}
        listed.clear()
        changes = read_partition(store, names, key, i, 3, series_ids=touched,
                                 since=START + 30, held=held)
        assert not listed  # the partition's series were not listed
        assert _same_blocks(changes, read_partition(store, names, key, i, 3,
                                                    series_ids=touched, since=START + 30))
        assert _read(changes) == _expected(store, changes, START + 30)
        for b in changes.values():
            for sid, labels in zip(b.series_ids, b.labels, strict=True):  # type: ignore[attr-defined]
                assert sid not in kept or labels is kept[sid]
                seen.append(sid)
    assert sorted(seen) == touched.tolist()  # every series in one partition, once


def _same_blocks(a: dict[str, object], b: dict[str, object]) -> bool:
    """True when the two reads hold the same series in the same order, with the same
    labels and observations."""
    if a.keys() != b.keys():
        return False
    for name, x in a.items():
        y = b[name]
        if x.series_ids != y.series_ids or x.labels != y.labels:  # type: ignore[attr-defined]
            return False
        for column in ("row", "period", "value", "denominator", "provisional", "revisions"):
            if not np.array_equal(getattr(x, column), getattr(y, column), equal_nan=True):
                return False
    return True
