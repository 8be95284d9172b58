"""The daemon's dataset is read whole once, then only what each write changed, and not
at all while nothing was written — and it always equals a fresh read of the store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from monitor.model import Observation, month
from monitor.rules.inputs import DatasetCache, read_dataset
from monitor.rules.loader import RuleSet, load_rules
from monitor.store import Store
from monitor.store.observations import SeriesBlock, merge_blocks

NOW = datetime(2016, 12, 5, tzinfo=UTC)
RULES = """
indicators:
  - {id: burglary, name: Burglary}
  - {id: robbery, name: Robbery}
groups:
  - name: g
    rules:
      - {alert: High, indicator: burglary, when: {level: {above: 5}}}
"""


@pytest.fixture
def ruleset(tmp_path: Path) -> RuleSet:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return load_rules([path])


def _rows(blocks: object) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for name, b in blocks.items():  # type: ignore[attr-defined]
        out[name] = sorted(
            (tuple(sorted(b.labels[int(r)].items())), int(p), float(v),
             None if np.isnan(d) else float(d), bool(f), int(n))
            for r, p, v, d, f, n in zip(b.row, b.period, b.value, b.denominator,
                                        b.provisional, b.revisions, strict=True))
    return out


def _obs(indicator: str, area: str, period: str, value: float, **kw: object) -> Observation:
    return Observation(indicator, (("area", area),), month(period), value, **kw)  # type: ignore[arg-type]


def test_it_reads_only_what_each_write_changed(store: Store, ruleset: RuleSet,
                                                store_url: str) -> None:
    repo = store.observations
    repo.ingest("s", [_obs(i, a, p, 1.0) for i in ("burglary", "robbery")
                      for a in ("a", "b", "c") for p in ("2016-10", "2016-11")], now=NOW)
    cache = DatasetCache(store)
    first = cache.get(ruleset, [])
    assert cache.get(ruleset, []) is first  # nothing written: nothing read
    assert dict(cache.reads) == {"full": 1, "none": 1}

    # A new month for some series, a revision, a provisional flag, a new series.
    repo.ingest("s", [_obs("burglary", "a", "2016-12", 3.0),
                      _obs("burglary", "b", "2016-11", 7.0),
                      _obs("robbery", "c", "2016-12", 2.0, provisional=True),
                      _obs("burglary", "d", "2016-12", 9.0)], now=NOW)
    second = cache.get(ruleset, [])
    assert cache.reads["changes"] == 1
    assert _rows(second.blocks) == _rows(read_dataset(store, ruleset, []).blocks)

    # A write by another process (here another Store on the same database): read all.
    other = Store(store_url)
    try:
        other.observations.ingest("s", [_obs("robbery", "e", "2016-12", 4.0)], now=NOW)
    finally:
        other.close()
    third = cache.get(ruleset, [])
    assert cache.reads["full"] == 2
    assert _rows(third.blocks) == _rows(read_dataset(store, ruleset, []).blocks)


def test_it_forgets_the_writes_the_cache_holds(store: Store, ruleset: RuleSet) -> None:
    """A daily poll of every series must not leave its series ids behind: the journal
    of this process's writes kept them for 1,000 writes (the soak's memory creep)."""
    repo = store.observations
    cache = DatasetCache(store)
    days = [f"2016-{m:02d}" for m in range(1, 13)]
    for day, period in enumerate(days):
        repo.ingest("s", [_obs("burglary", f"a{k}", period, float(day)) for k in range(50)],
                    now=NOW)
        assert repo.journal_series() == 50  # this write, until the cache reads it
        cache.get(ruleset, [])
        assert repo.journal_series() == 0
    assert dict(cache.reads) == {"full": 1, "changes": len(days) - 1}

    # A second reader on the same store finds the versions gone and reads everything.
    late = DatasetCache(store)
    assert _rows(late.get(ruleset, []).blocks) == _rows(read_dataset(store, ruleset, []).blocks)
    assert _rows(cache.get(ruleset, []).blocks) == _rows(read_dataset(store, ruleset, []).blocks)


def test_it_bounds_the_journal_when_nothing_reads(store: Store,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that writes and never evaluates keeps at most JOURNAL_SERIES ids (and
    always the latest write's)."""
    monkeypatch.setattr("monitor.store.observations.JOURNAL_SERIES", 120)
    repo = store.observations
    for day in range(10):
        repo.ingest("s", [_obs("burglary", f"a{k}", "2016-11", float(day)) for k in range(50)],
                    now=NOW)
        assert repo.journal_series() == min(50 * (day + 1), 100)
    repo.ingest("s", [_obs("robbery", f"a{k}", "2016-11", 1.0) for k in range(200)], now=NOW)
    assert repo.journal_series() == 200


def _since(rows: dict[str, list[tuple[object, ...]]], first: int
           ) -> dict[str, list[tuple[object, ...]]]:
    return {name: [r for r in kept if int(r[1]) >= first]  # type: ignore[call-overload]
            for name, kept in rows.items()}


def test_it_holds_only_the_window(store: Store, ruleset: RuleSet) -> None:
    """New periods do not make the blocks held grow: what falls out of the evaluation's
    window is dropped (the store keeps it), and a window that moves back reads it again."""
    repo = store.observations
    months = [f"{y}-{m:02d}" for y in (2015, 2016) for m in range(1, 13)]
    repo.ingest("s", [_obs("burglary", a, p, 1.0) for a in ("a", "b") for p in months[:12]],
                now=NOW)
    cache = DatasetCache(store)
    sizes = []
    for k in range(12, len(months)):
        repo.ingest("s", [_obs("burglary", a, months[k], float(k)) for a in ("a", "b")],
                    now=NOW)
        first = month(months[k - 5])  # a window of six months ending at the new one
        data = cache.get(ruleset, [], since={"burglary": first, "robbery": first})
        sizes.append(data.blocks["burglary"].period.shape[0])
        assert _rows(data.blocks) == _since(_rows(read_dataset(store, ruleset, []).blocks),
                                            first)
    assert sizes == [12] * len(sizes)
    assert cache.reads["full"] == 1

    back = month(months[3])
    data = cache.get(ruleset, [], since={"burglary": back, "robbery": back})
    assert cache.reads["full"] == 2
    assert _rows(data.blocks) == _since(_rows(read_dataset(store, ruleset, []).blocks), back)


def _block(series: list[int], periods: dict[int, list[int]], seed: int) -> SeriesBlock:
    """A block of ``series`` (ids), each with the periods given, values from ``seed``."""
    rng = np.random.default_rng(seed)
    rows = [(k, p) for k, sid in enumerate(series) for p in periods[sid]]
    n = len(rows)
    return SeriesBlock(
        "burglary", list(series), [{"area": f"a{sid}"} for sid in series],
        np.array([r for r, _ in rows], dtype=np.int32),
        np.array([p for _, p in rows], dtype=np.int32), rng.normal(size=n),
        np.where(rng.random(n) < 0.3, np.nan, rng.random(n)), rng.random(n) < 0.2,
        rng.integers(0, 3, n).astype(np.int32))


def test_a_merged_block_is_what_the_store_would_hold_in_the_order_it_is_read() -> None:
    """``merge_blocks`` (a poll's changes into the blocks held, in one process and on a
    worker) gives the observations a fresh read would, sorted by series then period as
    the engine pivots them — with series revised from a period on, series new to the
    block (with ids below the ones held), series untouched and series that only gain a
    month."""
    rng = np.random.default_rng(7)
    held = [int(s) for s in rng.choice(np.arange(100, 400), 120, replace=False)]
    periods = {sid: sorted(int(p) for p in rng.choice(24, int(rng.integers(1, 24)),
                                                         replace=False)) for sid in held}
    old = _block(held, periods, seed=1)
    first = 18
    fresh = [int(s) for s in rng.choice(held, 50, replace=False)] + [5, 450, 7]
    rng.shuffle(fresh)
    new_periods = {sid: sorted(int(p) for p in rng.choice(np.arange(first, 26),
                                                           int(rng.integers(1, 8)),
                                                           replace=False)) for sid in fresh}
    new = _block(fresh, new_periods, seed=2)

    merged = merge_blocks(old, new, first)

    keys = list(zip(merged.row.tolist(), merged.period.tolist(), strict=True))
    assert keys == sorted(set(keys))  # in order, once each
    assert merged.row.dtype == np.int32 and merged.period.dtype == np.int32
    expected = {}
    for block in (old, new):
        for r, p, v, d, f, n in zip(block.row, block.period, block.value, block.denominator,
                                    block.provisional, block.revisions, strict=True):
            sid = block.series_ids[int(r)]
            if block is old and sid in new_periods and p >= first:
                continue  # replaced by the poll's
            expected[(sid, int(p))] = (float(v), float(d), bool(f), int(n))
    got = {(merged.series_ids[int(r)], int(p)): (float(v), float(d), bool(f), int(n))
           for r, p, v, d, f, n in zip(merged.row, merged.period, merged.value,
                                       merged.denominator, merged.provisional,
                                       merged.revisions, strict=True)}
    assert got.keys() == expected.keys()
    for key, (v, d, f, n) in expected.items():
        gv, gd, gf, gn = got[key]
        assert (gv, gf, gn) == (v, f, n) and (gd == d or (np.isnan(gd) and np.isnan(d))), key
    assert merged.labels == [{"area": f"a{sid}"} for sid in merged.series_ids]


def test_a_merge_refuses_changes_before_their_first_period() -> None:
    old = _block([1], {1: [1, 2]}, seed=1)
    with pytest.raises(ValueError, match="periods before 2"):
        merge_blocks(old, _block([1], {1: [1]}, seed=2), 2)


def test_a_new_month_merged_in_keeps_every_held_observation_and_leaves_the_held_block_be(
        ) -> None:
    """A new month replaces nothing held (the merge reads the held columns in place):
    every held observation stays, each series' new month comes after them, and the held
    block is not changed, as a worker keeps it until the merged one is made."""
    old = _block([3, 5, 9], {3: [0, 1, 2], 5: [1, 2], 9: [0, 2]}, seed=1)
    before = {name: getattr(old, name).copy() for name in ("row", "period", "value")}
    new = _block([5, 9, 11], {5: [3], 9: [3], 11: [3]}, seed=2)
    merged = merge_blocks(old, new, 3)
    keys = [(merged.series_ids[int(r)], int(p)) for r, p in zip(merged.row, merged.period,
                                                               strict=True)]
    assert keys == [(3, 0), (3, 1), (3, 2), (5, 1), (5, 2), (5, 3), (9, 0), (9, 2), (9, 3),
                    (11, 3)]
    assert merged.value.tolist() == [*old.value[:5].tolist(), new.value[0],
                                     *old.value[5:].tolist(), *new.value[1:].tolist()]
    for name, column in before.items():
        assert np.array_equal(getattr(old, name), column)
