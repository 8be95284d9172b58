"""Observations as columns: what a parser hands the store, one array per field.

A poll brings up to millions of values. Kept as one :class:`~monitor.model.Observation`
object each, they cost a Python object, a tuple and a dict entry per value at every
stage; as an :class:`ObservationBatch` they are five numpy arrays and one list of series
keys, and the stages (provisional rule, duplicate sums, the diff against stored values)
are array operations. Source kinds that read record by record build a batch from their
observations with :meth:`ObservationBatch.of`; the CSV wide layout builds one directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.model import Labels, Observation

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SeriesKey = tuple[str, Labels]  # (indicator id, label set)


@dataclass(frozen=True)
class ObservationBatch:
    """Observations as parallel arrays; ``series[k]`` indexes ``keys`` for value ``k``.

    ``denominator`` is NaN where none was given. Order is the parser's (row order, then
    period order within a wide row); ``keys`` may hold series no value refers to.
    """

    keys: list[SeriesKey]
    series: IntArray
    period: IntArray
    value: FloatArray
    denominator: FloatArray
    provisional: BoolArray

    def __len__(self) -> int:
        return int(self.series.shape[0])

    @classmethod
    def empty(cls) -> ObservationBatch:
        """Return a batch of no observations."""
        return cls([], np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64),
                   np.empty(0, np.float64), np.empty(0, np.bool_))

    @classmethod
    def of(cls, observations: Iterable[Observation]) -> ObservationBatch:
        """Return the batch of ``observations`` (one series key per distinct
        (indicator, labels), in order of first sight)."""
        items = observations if isinstance(observations, Sequence) else list(observations)
        n = len(items)
        index: dict[SeriesKey, int] = {}
        keys: list[SeriesKey] = []
        series = np.empty(n, np.int64)
        last: SeriesKey | None = None
        local = -1
        for k, obs in enumerate(items):
            # Parsers emit a series' periods together: compare with the previous key
            # first, which is cheaper than hashing the label set again.
            if last is None or obs.labels is not last[1] or obs.indicator is not last[0]:
                last = (obs.indicator, obs.labels)
                found = index.get(last)
                if found is None:
                    found = index[last] = len(keys)
                    keys.append(last)
                local = found
            series[k] = local
        period = np.fromiter((o.period for o in items), np.int64, n)
        value = np.fromiter((o.value for o in items), np.float64, n)
        denominator = np.fromiter((np.nan if o.denominator is None else o.denominator
                                   for o in items), np.float64, n)
        provisional = np.fromiter((o.provisional for o in items), np.bool_, n)
        return cls(keys, series, period, value, denominator, provisional)

    def observations(self) -> list[Observation]:
        """Return the batch as one Observation per value, in batch order (for tests and
        tools; the store reads the arrays)."""
        keys = self.keys
        dens = [None if d != d else d for d in self.denominator.tolist()]  # NaN: none
        return [Observation(keys[s][0], keys[s][1], p, v, d, f)
                for s, p, v, d, f in zip(self.series.tolist(), self.period.tolist(),
                                         self.value.tolist(), dens,
                                         self.provisional.tolist(), strict=True)]

    def take(self, index: IntArray | BoolArray) -> ObservationBatch:
        """Return the observations ``index`` selects (a mask or positions), same keys."""
        return ObservationBatch(self.keys, self.series[index], self.period[index],
                                self.value[index], self.denominator[index],
                                self.provisional[index])

    def with_provisional(self, provisional: BoolArray) -> ObservationBatch:
        """Return the batch with its provisional flags replaced."""
        return ObservationBatch(self.keys, self.series, self.period, self.value,
                                self.denominator, provisional)

    def summed(self) -> ObservationBatch:
        """Return the batch with the observations of one series and period merged:
        values and denominators added (a sum of none stays none), provisional if any
        part is; merged observations sit where their first part was."""
        n = len(self)
        if n == 0:
            return self
        low = int(self.period.min())
        span = int(self.period.max()) - low + 1
        code = self.series * span + (self.period - low)
        _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # groups in order of first sight
        rank = np.empty_like(order)
        rank[order] = np.arange(order.shape[0])
        group = rank[inverse]
        groups = order.shape[0]
        has_den = ~np.isnan(self.denominator)
        value = np.bincount(group, weights=self.value, minlength=groups).astype(np.float64)
        den = np.bincount(group, weights=np.where(has_den, self.denominator, 0.0),
                          minlength=groups)
        any_den = np.bincount(group, weights=has_den, minlength=groups) > 0
        provisional = np.bincount(group, weights=self.provisional, minlength=groups) > 0
        at = first[order]
        return ObservationBatch(self.keys, self.series[at], self.period[at], value,
                                np.where(any_den, den, np.nan), provisional)

