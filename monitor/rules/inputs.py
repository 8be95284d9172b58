"""What a cycle reads from the store.

``read_dataset`` is the one way anything (the daemon, ``eval``, ``backtest``, ``diff``)
reads the observations, milestones and source feeding of a rule set; ``DatasetCache``
keeps the daemon from re-reading 100,000 series when no poll has landed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from monitor.model import Milestone
from monitor.rules import sourcehealth
from monitor.rules.engine import Dataset
from monitor.rules.loader import RuleSet
from monitor.store import Store

DATA_MAX_AGE = 600.0  # seconds a cached dataset is trusted without a new poll


def read_dataset(store: Store, ruleset: RuleSet, milestone_sources: Sequence[str], *,
                 observations: bool = True) -> Dataset:
    """Return the observations of every base indicator, the milestones of the named
    sources and the sources feeding each indicator, from the store. Without
    ``observations`` the blocks are left out: a distributed engine's workers read them,
    each its own partition's."""
    base = [i.id for i in ruleset.indicators.values() if i.derived is None]
    blocks = store.observations.read(base) if observations else {}
    milestones: list[tuple[str, Milestone]] = []
    for source in milestone_sources:
        milestones.extend((source, m) for m in store.observations.milestones(source))
    sources = sourcehealth.indicator_sources(ruleset, store.observations.indicators_by_source())
    return Dataset(blocks, milestones, sources)


class DatasetCache:
    """The daemon's dataset, read again only when it may have changed.

    Reading every series is the costly part of a cycle at scale (seconds for 100,000
    series), and data only changes when a poll lands: the dataset is kept until a
    source's last success moves (any replica's poll), the rules change, or
    ``DATA_MAX_AGE`` passes (a backfill by ``monitor ingest``).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._data: Dataset | None = None
        self._signature: tuple[object, ...] = ()
        self._read_at = 0.0

    def invalidate(self) -> None:
        """Read the store again on the next ``get`` (a poll in this process stored data)."""
        self._data = None

    def get(self, ruleset: RuleSet, milestone_sources: Sequence[str]) -> Dataset:
        signature = (id(ruleset), tuple(milestone_sources), tuple(sorted(
            (h.source, h.last_success_at.isoformat() if h.last_success_at else "")
            for h in self.store.source_state.health())))
        fresh = time.monotonic() - self._read_at < DATA_MAX_AGE
        if self._data is None or signature != self._signature or not fresh:
            self._data = read_dataset(self.store, ruleset, milestone_sources)
            self._signature = signature
            self._read_at = time.monotonic()
        return self._data
