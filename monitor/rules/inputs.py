"""What a cycle reads from the store.

``read_dataset`` is the one way anything (the daemon, ``eval``, ``backtest``, ``diff``)
reads the observations, milestones and source feeding of a rule set; ``DatasetCache``
keeps the daemon from re-reading 100,000 series when no poll has landed, and reads only
what a poll changed when one has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from monitor.model import Milestone
from monitor.rules import sourcehealth
from monitor.rules.data import LongBlock
from monitor.rules.engine import Dataset
from monitor.rules.loader import RuleSet
from monitor.store import Store
from monitor.store.observations import SeriesBlock, merge_blocks, trim_block


def read_dataset(store: Store, ruleset: RuleSet, milestone_sources: Sequence[str], *,
                 observations: bool = True) -> Dataset:
    """Return the observations of every base indicator, the milestones of the named
    sources and the sources feeding each indicator, from the store. Without
    ``observations`` the blocks are left out: a distributed engine's workers read them,
    each its own partition's."""
    blocks = store.observations.read(base_indicators(ruleset)) if observations else {}
    return _dataset(store, blocks, milestone_sources, ruleset)


def base_indicators(ruleset: RuleSet) -> list[str]:
    return [i.id for i in ruleset.indicators.values() if i.derived is None]


def _dataset(store: Store, blocks: Mapping[str, LongBlock], milestone_sources: Sequence[str],
             ruleset: RuleSet) -> Dataset:
    milestones: list[tuple[str, Milestone]] = []
    for source in milestone_sources:
        milestones.extend((source, m) for m in store.observations.milestones(source))
    sources = sourcehealth.indicator_sources(ruleset, store.observations.indicators_by_source())
    return Dataset(blocks, milestones, sources)


class DatasetCache:
    """The daemon's dataset, read again only when the data changed, and then only what
    changed; holding only the periods the evaluation reads.

    Reading every series is the costly part of a cycle at scale (seconds for 100,000
    series), and data only changes when a write lands. Every write of observations or
    milestones counts up the store's data version in its transaction: a cycle reads
    that one number, and nothing else when it has not moved. When it moved and this
    process made every write since (its poller), only the touched series are read, from
    the earliest period written, and merged into the blocks held; otherwise (another
    replica's poll, ``monitor ingest``, new rules) everything is read again. Once it
    holds a version, the store forgets what the writes up to it touched.

    ``since`` (each base indicator's first period in the evaluation's window) drops
    older observations from the blocks held: the store keeps every period ever
    polled, and blocks holding them all grew with each new week and month (and were
    copied whole at every merge) although the engine pivots only the window. A window
    that starts earlier than the one held (the clock or ``as_of`` moved back) reads
    everything again.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._data: Dataset | None = None
        self._blocks: dict[str, SeriesBlock] = {}
        self._signature: tuple[object, ...] = ()
        self._version = -1
        self._since: Mapping[str, int] = {}  # the periods the blocks held start at
        self.reads = Counter[str]()  # "full", "changes", "none": how each get() read

    def invalidate(self) -> None:
        """Read everything on the next ``get``."""
        self._data = None

    def get(self, ruleset: RuleSet, milestone_sources: Sequence[str],
            since: Mapping[str, int] | None = None) -> Dataset:
        """Return the dataset of ``ruleset``: the observations of its base indicators
        (each from its period in ``since`` on; all of them where absent), the
        milestones of ``milestone_sources`` and the sources feeding each indicator."""
        signature = (id(ruleset), tuple(milestone_sources))
        since = dict(since or {})
        observations = self.store.observations
        version = observations.version()
        if self._data is not None and signature == self._signature \
                and not _earlier(since, self._since):
            if version == self._version:
                self.reads["none"] += 1
                return self._data
            base = base_indicators(ruleset)
            changes = observations.read_changes(self._version, version, base,
                                                held=self._blocks)
            if changes is not None:
                delta, first = changes
                for name, block in delta.items():
                    held = self._blocks.get(name)
                    self._blocks[name] = block if held is None else \
                        merge_blocks(held, block, first)
                self._hold(since)
                self._data = _dataset(self.store, dict(self._blocks), milestone_sources,
                                      ruleset)
                self._version = version
                observations.forget_changes(version)
                self.reads["changes"] += 1
                return self._data
        self._blocks = observations.read(base_indicators(ruleset))
        self._hold(since)
        self._data = _dataset(self.store, dict(self._blocks), milestone_sources, ruleset)
        self._signature = signature
        self._version = version
        observations.forget_changes(version)
        self.reads["full"] += 1
        return self._data

    def _hold(self, since: Mapping[str, int]) -> None:
        """Drop the observations before each block's first period in ``since``."""
        for name, block in self._blocks.items():
            if name in since:
                self._blocks[name] = trim_block(block, since[name])
        self._since = since


def _earlier(wanted: Mapping[str, int], held: Mapping[str, int]) -> bool:
    """True when ``wanted`` needs a period the blocks trimmed to ``held`` dropped."""
    return any(name not in wanted or wanted[name] < start for name, start in held.items())
