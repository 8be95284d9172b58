"""Dense matrices of an indicator's series: the shape the conditions compute on.

Rows are series (label sets), columns are periods of one frequency on a shared grid.
Base indicators come from stored observations; derived ones are computed from their
inputs with label matching, like recording rules. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import numpy as np
import numpy.typing as npt

from monitor.errors import EvaluationError
from monitor.model import Labels, fingerprint, label_rows, labels_of
from monitor.rules.schema import Indicator

T = TypeVar("T")
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
CountArray = npt.NDArray[np.int32]  # small counts (revisions): int32 is exact


class LongBlock(Protocol):
    """Observations of one indicator in long form (what the store's ``read`` returns).

    A block handed to the engine is not changed afterwards: new data comes as a new block
    (or new arrays). The engine pivots a block once and reuses the matrix while the same
    block comes back (a steady cycle); it makes the arrays it pivoted read-only, so a
    change in place fails loudly instead of going unseen.
    """

    labels: list[dict[str, str]]
    row: npt.NDArray[Any]
    period: npt.NDArray[Any]
    value: npt.NDArray[Any]
    denominator: npt.NDArray[Any]
    provisional: npt.NDArray[Any]
    revisions: npt.NDArray[Any]


@dataclass
class Block:
    """A plain in-memory LongBlock (rule tests and backtests build these)."""

    labels: list[dict[str, str]]
    row: npt.NDArray[Any]
    period: npt.NDArray[Any]
    value: npt.NDArray[Any]
    denominator: npt.NDArray[Any]
    provisional: npt.NDArray[Any]
    revisions: npt.NDArray[Any]
    series_ids: list[int] = field(default_factory=list)


@dataclass
class Grid:
    """The period axis: column ``j`` is period ordinal ``start + j``."""

    start: int
    end: int  # inclusive: the evaluation period

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def column(self, period: int) -> int:
        return period - self.start

    def period(self, column: int) -> int:
        return self.start + column


@dataclass
class Matrix:
    """One indicator's series on a grid.

    ``values`` are what the source gave (numerators for rates); ``denominators`` is set
    for proportions. ``parts`` holds the two operands of a derived difference, whose
    window value is the difference of the operands' window values.
    """

    indicator: Indicator
    labels: list[dict[str, str]]
    grid: Grid
    values: FloatArray
    denominators: FloatArray | None = None
    provisional: BoolArray | None = None
    revisions: CountArray | None = None  # earlier values kept per cell (int32)
    parts: tuple[Matrix, Matrix] | None = None
    _index: dict[Labels, int] | None = None
    _names: set[str] | None = None
    _by_key: dict[tuple[str, ...], int] | None = None
    _key_names: list[str] = field(default_factory=list)
    # What readers computed over the whole matrix once per cycle (the scorecard's
    # headline, changes and ranks), so one per row costs nothing more; a copy made with
    # ``dataclasses.replace`` starts empty.
    memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def n(self) -> int:
        return len(self.labels)

    def cached(self, key: Any, make: Callable[[], T]) -> T:
        """Return ``make()``, computed once for this matrix (``memo``)."""
        if key not in self.memo:
            self.memo[key] = make()
        return cast(T, self.memo[key])

    def inherit(self, older: Matrix) -> None:
        """Take from ``older`` what depends on its series alone — the label list itself,
        the fingerprints made so far and the label indexes — when it holds the same
        series in the same rows: a new month's matrix of the same series (every series
        one period longer) makes none of it again."""
        if older.labels is not self.labels and older.labels != self.labels:
            return
        self.labels = older.labels
        self._index, self._names = older._index, older._names
        self._by_key, self._key_names = older._by_key, older._key_names
        made = older.memo.get(("fingerprints", None))
        if made is not None:
            self.memo[("fingerprints", None)] = made

    def fingerprint(self, row: int) -> str:
        """Return the fingerprint of row ``row``'s series, made once per series (every
        rule on the indicator, and every cycle on the same matrix, reuses it)."""
        made: dict[int, str] = self.cached(("fingerprints", None), dict)
        found = made.get(row)
        if found is None:
            found = made[row] = fingerprint(self.labels[row])
        return found

    def label_names(self) -> set[str]:
        if self._names is None:
            self._names = set().union(*self.labels) if self.labels \
                else set()
        return self._names

    def index(self) -> dict[Labels, int]:
        """Return label set → row (built on first use)."""
        if self._index is None:
            self._index = label_index(self.labels, self.label_names())
        return self._index

    def row_of(self, labels: Mapping[str, str]) -> int | None:
        """Return the row whose series labels are the ones ``labels`` carries (extra labels,
        such as an alert's ``alertname``, are ignored)."""
        if self._by_key is None:
            self._key_names, self._by_key = label_rows(self.labels, self.label_names())
        key = tuple(labels.get(k, "") for k in self._key_names)
        return self._by_key.get(key)

    @property
    def scale(self) -> float:
        return 100.0 if self.indicator.unit in ("percent", "pp") else (
            1000.0 if self.indicator.unit == "rate_per_1000" else 1.0)

    @property
    def is_rate(self) -> bool:
        return self.denominators is not None or self.indicator.aggregation == "rate"

    def per_period(self) -> FloatArray:
        """Return each period's value in the headline's unit (rates as rates)."""
        if self.parts is not None:
            a, b = self.parts
            return a.per_period() - b.per_period()
        if self.denominators is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                out: FloatArray = np.where(self.denominators > 0,
                                           self.values / self.denominators * self.scale, np.nan)
            return out
        return self.values

    def last_column(self) -> int:
        """Return the last column where any series has data, or -1 when none has (worked
        out once per matrix: every rule on it asks)."""
        return self.cached(("last_column", None), self._last_column)

    def _last_column(self) -> int:
        data = self.per_period()
        if data.size == 0:
            return -1
        has = ~np.isnan(data).all(axis=0)
        cols = np.flatnonzero(has)
        return int(cols[-1]) if cols.size else -1

    def window(self, end: int, n: int) -> tuple[FloatArray, BoolArray]:
        """Return (window value per series, complete mask) for the ``n`` columns ending at
        ``end``. An incomplete window (a missing period, or before the grid) has NaN."""
        if self.parts is not None:
            a, b = self.parts
            va, ca = a.window(end, n)
            vb, cb = b.window(end, n)
            return va - vb, ca & cb
        start = end - n + 1
        if start < 0 or end >= self.grid.size or n <= 0:
            return np.full(self.n, np.nan), np.zeros(self.n, dtype=bool)
        vals = self.values[:, start:end + 1]
        complete = ~np.isnan(vals).any(axis=1)
        agg = self.indicator.aggregation
        if self.denominators is not None:
            dens = self.denominators[:, start:end + 1]
            complete &= ~np.isnan(dens).any(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                den_sum = dens.sum(axis=1)
                value = np.where(den_sum > 0, vals.sum(axis=1) / den_sum * self.scale, np.nan)
        elif agg == "mean":
            value = vals.mean(axis=1) if vals.shape[1] else np.full(self.n, np.nan)
        elif agg == "last":
            value = vals[:, -1].copy()
        else:
            value = vals.sum(axis=1)
        value = np.where(complete, value, np.nan)
        return np.asarray(value, dtype=np.float64), np.asarray(complete, dtype=bool)

    def counts(self, end: int, n: int) -> tuple[FloatArray, FloatArray]:
        """Return (sum of values, sum of denominators) over a window; NaN when incomplete."""
        start = end - n + 1
        if start < 0 or end >= self.grid.size:
            nan = np.full(self.n, np.nan)
            return nan, nan
        vals = self.values[:, start:end + 1].sum(axis=1)
        if self.denominators is None:
            return vals, np.full(self.n, np.nan)
        return vals, self.denominators[:, start:end + 1].sum(axis=1)

    def provisional_in(self, end: int, n: int) -> BoolArray:
        if self.provisional is None or end < 0:
            return np.zeros(self.n, dtype=bool)
        return np.asarray(self.provisional[:, max(0, end - n + 1):end + 1].any(axis=1),
                          dtype=bool)


def label_index(labels: Sequence[Mapping[str, str]], names: set[str]) -> dict[Labels, int]:
    """Return ``labels_of(labels[i])`` → i for every row (a label set twice: its last
    row), ``names`` being every row's label names together.

    When every row has all of ``names`` and every name and value is text (the series of
    one indicator, most often), it is made a label at a time, not a sorted tuple per row
    (500,000 series: 0.87 s row by row, most of the first series page read after a
    cycle at 1M series)."""
    keys = sorted(names)
    width = len(keys)
    if width and all(type(k) is str for k in keys) \
            and all(len(lab) == width for lab in labels):  # (so each has every name)
        columns = [[lab[k] for lab in labels] for k in keys]
        if all(type(v) is str for column in columns for v in column):
            pairs = [[(k, v) for v in column] for k, column in zip(keys, columns, strict=True)]
            return dict(zip(zip(*pairs, strict=True), range(len(labels)), strict=True))
    return {labels_of(lab): i for i, lab in enumerate(labels)}


def from_block(indicator: Indicator, block: LongBlock | None, grid: Grid) -> Matrix:
    """Pivot a long block onto ``grid`` (periods outside it are dropped)."""
    labels = list(block.labels) if block is not None else []
    n, t = len(labels), grid.size
    values = np.full((n, t), np.nan)
    provisional = np.zeros((n, t), dtype=bool)
    revisions = np.zeros((n, t), dtype=np.int32)
    denominators: FloatArray | None = None
    if block is not None and len(block.row):
        period = np.asarray(block.period)
        keep = (period >= grid.start) & (period <= grid.end)
        everything = bool(keep.all())

        def kept(array: npt.NDArray[Any], dtype: Any) -> npt.NDArray[Any]:
            out = np.asarray(array, dtype=dtype)
            return out if everything else out[keep]

        # Flat indices: one scatter per array instead of 2-D fancy indexing. Built in
        # one int64 array (3.6M observations: 29 MB), not from int64 copies of the
        # rows and columns and their product.
        flat = np.multiply(block.row, t, dtype=np.int64)
        flat += period
        flat -= grid.start
        if not everything:
            flat = flat[keep]
        values.ravel()[flat] = kept(block.value, np.float64)
        flags = kept(block.provisional, bool)
        if flags.any():
            provisional.ravel()[flat] = flags
        revs = kept(block.revisions, np.int64)
        if revs.any():
            revisions.ravel()[flat] = np.minimum(revs, np.iinfo(np.int32).max)
        den = kept(block.denominator, np.float64)
        if indicator.aggregation == "rate" or (den.size and not np.isnan(den).all()):
            denominators = np.full((n, t), np.nan)
            denominators.ravel()[flat] = den
    elif indicator.aggregation == "rate":
        denominators = np.full((n, t), np.nan)
    return Matrix(indicator, labels, grid, values, denominators, provisional, revisions)


@dataclass
class Alignment:
    """Row ``i`` of the left matrix matches row ``right[i]`` of the right one (-1: none)."""

    right: IntArray

    def take(self, vector: npt.NDArray[Any], fill: Any = np.nan) -> npt.NDArray[Any]:
        out = np.full(self.right.shape, fill, dtype=vector.dtype if fill is not np.nan
                      else np.float64)
        ok = self.right >= 0
        out[ok] = vector[self.right[ok]]
        return out


def align(left: Sequence[Mapping[str, str]], right: Sequence[Mapping[str, str]],
          on: Sequence[str] | None = None) -> Alignment:
    """Match each left label set to the right series with the same values of ``on``.

    ``on`` defaults to the label names both sides share; a right series with none of
    them (a single national series) matches every left row.
    """
    if on is None:
        left_names = set().union(*left) if left else set()
        right_names = set().union(*right) if right else set()
        on = sorted(left_names & right_names)
    if len(on) == 1:
        # The common case (one shared label, e.g. borough) without building tuples.
        (name,) = on
        keyed1 = dict(zip(reversed([lab.get(name, "") for lab in right]),
                          range(len(right) - 1, -1, -1), strict=True))
        return Alignment(np.fromiter((keyed1.get(lab.get(name, ""), -1) for lab in left),
                                     dtype=np.int64, count=len(left)))
    keyed: dict[tuple[str, ...], int] = {}
    for j, lab in enumerate(right):
        keyed.setdefault(tuple(lab.get(name, "") for name in on), j)
    return Alignment(np.array([keyed.get(tuple(lab.get(name, "") for name in on), -1)
                               for lab in left], dtype=np.int64))


def derive(indicator: Indicator, inputs: Mapping[str, Matrix]) -> Matrix:
    """Compute a derived indicator's matrix from its inputs' matrices.

    Raises EvaluationError when the inputs do not share a grid.
    """
    spec = indicator.derived
    assert spec is not None
    if spec.total is not None:
        return group_total(indicator, inputs[spec.total], spec.by)
    names = spec.inputs
    mats = [inputs[name] for name in names]
    grid = mats[0].grid
    if any(m.grid != grid for m in mats):
        raise EvaluationError(f'derived indicator "{indicator.id}": inputs have different '
                              "frequencies; derive only from indicators of one frequency")
    on = spec.on
    if on is None:
        shared = None
        for m in mats:
            names_here = m.label_names() if m.labels else set()
            shared = names_here if shared is None else shared & names_here
        on = sorted(shared or set())
    if all(m.labels == mats[0].labels for m in mats[1:]) and \
            all(set(lab) <= set(on) for lab in mats[0].labels[:1]):
        # Every input holds the same series in the same order: no alignment needed.
        return _combine(indicator, spec, mats, list(mats[0].labels), grid)
    keys: dict[tuple[str, ...], dict[str, str]] = {}
    for m in mats:
        for lab in m.labels:
            key = tuple(lab.get(name, "") for name in on)
            keys.setdefault(key, {name: lab[name] for name in on if name in lab})
    labels = list(keys.values())
    aligned = []
    for m in mats:
        alignment = align(labels, m.labels, on)
        aligned.append((m, alignment))

    def pick(m: Matrix, alignment: Alignment, array: FloatArray | None) -> FloatArray:
        out = np.full((len(labels), grid.size), np.nan)
        if array is None:
            return out
        ok = alignment.right >= 0
        out[ok] = array[alignment.right[ok]]
        return out

    def pick_bool(m: Matrix, alignment: Alignment) -> BoolArray:
        out = np.zeros((len(labels), grid.size), dtype=bool)
        if m.provisional is not None:
            ok = alignment.right >= 0
            out[ok] = m.provisional[alignment.right[ok]]
        return out

    provisional = np.zeros((len(labels), grid.size), dtype=bool)
    for m, alignment in aligned:
        provisional |= pick_bool(m, alignment)
    if spec.sum is not None:
        total = np.zeros((len(labels), grid.size))
        for m, alignment in aligned:
            total = total + pick(m, alignment, m.values)
        return Matrix(indicator, labels, grid, total, None, provisional)
    if spec.ratio is not None:
        (num, na), (den, da) = aligned
        return Matrix(indicator, labels, grid, pick(num, na, num.values),
                      pick(den, da, den.values), provisional)
    (a, aa), (b, ba) = aligned
    left = _reindexed(a, aa, labels)
    right = _reindexed(b, ba, labels)
    return Matrix(indicator, labels, grid, left.per_period() - right.per_period(), None,
                  provisional, parts=(left, right))


def _reindexed(m: Matrix, alignment: Alignment, labels: list[dict[str, str]]) -> Matrix:
    def rows(array: npt.NDArray[Any] | None, fill: Any) -> Any:
        if array is None:
            return None
        out = np.full((len(labels), array.shape[1]), fill, dtype=array.dtype)
        ok = alignment.right >= 0
        out[ok] = array[alignment.right[ok]]
        return out

    return Matrix(m.indicator, labels, m.grid, rows(m.values, np.nan),
                  rows(m.denominators, np.nan), rows(m.provisional, False),
                  rows(m.revisions, 0), m.parts)


def _combine(indicator: Indicator, spec: Any, mats: list[Matrix], labels: list[dict[str, str]],
             grid: Grid) -> Matrix:
    provisional = np.zeros((len(labels), grid.size), dtype=bool)
    for m in mats:
        if m.provisional is not None:
            provisional |= m.provisional
    if spec.sum is not None:
        total = mats[0].values.copy()
        for m in mats[1:]:
            total += m.values
        return Matrix(indicator, labels, grid, total, None, provisional)
    if spec.ratio is not None:
        return Matrix(indicator, labels, grid, mats[0].values, mats[1].values, provisional)
    a, b = mats
    return Matrix(indicator, labels, grid, a.per_period() - b.per_period(), None, provisional,
                  parts=(a, b))


@dataclass(frozen=True)
class GroupSums:
    """The series of a matrix added up by the values of some labels, one row per group:
    ``covered`` says where some member had started; before its first observation a member
    adds 0, after it a missing period makes the sum missing (NaN)."""

    labels: list[dict[str, str]]
    covered: BoolArray
    values: FloatArray
    denominators: FloatArray | None
    provisional: BoolArray


def group_sums(m: Matrix, by: Sequence[str]) -> GroupSums:
    """Return the sums of ``m``'s series by the ``by`` labels, coverage kept apart (a
    partition's share of a total adds up with the others' before coverage applies)."""
    keys: dict[tuple[str, ...], int] = {}
    group = np.zeros(m.n, dtype=np.int64)
    if not by:  # one total over every series
        keys = {(): 0} if m.n else {}
    else:
        for i, lab in enumerate(m.labels):
            group[i] = keys.setdefault(tuple(lab.get(name, "") for name in by), len(keys))
    g, t = len(keys), m.grid.size
    observed = ~np.isnan(m.values)
    first = np.where(observed.any(axis=1), observed.argmax(axis=1), t)
    outside = np.arange(t)[None, :] < first[:, None]
    covered = np.zeros((g, t), dtype=bool)
    provisional = np.zeros((g, t), dtype=bool)

    def add(array: FloatArray | None) -> FloatArray | None:
        if array is None:
            return None
        out = np.zeros((g, t))
        if g == 1:  # one total: a sum down the rows, in the rows' order as ``add.at`` adds
            out += np.where(outside, 0.0, array).sum(axis=0)
        else:
            np.add.at(out, group, np.where(outside, 0.0, array))  # interior NaN propagates
        return out

    if g == 1:  # every series in one group (a total over all): no scatter by group
        covered[0] = (~outside).any(axis=0)
        if m.provisional is not None:
            provisional[0] = m.provisional.any(axis=0)
    else:
        np.logical_or.at(covered, group, ~outside)
        if m.provisional is not None:
            np.logical_or.at(provisional, group, m.provisional)
    values = add(m.values)
    assert values is not None
    return GroupSums([dict(zip(by, key, strict=True)) for key in keys], covered, values,
                     add(m.denominators), provisional)


def group_total(indicator: Indicator, m: Matrix, by: Sequence[str]) -> Matrix:
    """Add up the series of ``m`` that share the values of the ``by`` labels.

    A member that has not started yet (an airport that opened later) is absent before its
    first observation; after that, a missing period — a gap, or a latest month not yet
    reported — makes the group's period missing, since a total of what happened to be
    reported would look like a fall. Denominators add separately.
    """
    sums = group_sums(m, by)
    for array in (sums.values, sums.denominators):
        if array is not None:
            array[~sums.covered] = np.nan
    return Matrix(indicator, sums.labels, m.grid, sums.values, sums.denominators,
                  sums.provisional)
