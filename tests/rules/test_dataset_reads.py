"""The daemon's dataset is read whole once, then only what each write changed, and not
at all while nothing was written — and it always equals a fresh read of the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from monitor.model import Observation, month
from monitor.rules.inputs import DatasetCache, read_dataset
from monitor.rules.loader import RuleSet, load_rules
from monitor.store import Store, open_store

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
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


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
