"""Observations, their revisions and plan milestones: the store side of ingestion.

Writes are bulk and columnar, because a poll can bring millions of values. A poll's
observations arrive as an :class:`~monitor.store.batch.ObservationBatch` (arrays, not an
object per value) and:

1. non-finite values are refused, repeated (series, period) keep the last value, and
   the values are sorted by series, then period (array operations);
2. each series key (indicator + label set) is resolved to an id, creating missing
   ``indicator`` and ``series`` rows — one lookup statement per indicator whose
   fingerprints travel as one parameter (an array on PostgreSQL, a JSON list on SQLite);
3. the stored values of the touched series within the batch's period range are read as
   columns and compared with the batch's as arrays: new, unchanged, revised (value or
   denominator), flag-only;
4. the new rows are written by one bulk statement family: ``executemany`` on SQLite,
   on PostgreSQL one binary ``COPY`` straight into the table, its buffer built by numpy;
   then the revisions (the old value and its as-of time) and the
   updates, each one ``executemany``.

All of it runs in one transaction: a poll lands whole or not at all. Re-ingesting the
same data changes nothing. Reads return columnar numpy blocks, one per indicator.
"""

from __future__ import annotations

import json
import operator
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import chain, repeat
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError
from monitor.model import Frequency, Labels, Milestone, Observation, fingerprint, labels_of, utc
from monitor.store.batch import ObservationBatch, SeriesKey
from monitor.store.db import SHRINK_CACHE
from monitor.store.partkey import from_spec, stored_key

IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
FETCH_ROWS = 32_768  # observations fetched at a time (~7 MB of Python tuples)

VERSION_KEY = "observations:version"  # monitor_meta: writes of observations and milestones
# The most series ids the journal of this process's writes holds (8 bytes each) when
# no reader takes them (see ``forget_changes``): beyond it the oldest versions go.
JOURNAL_SERIES = 1_000_000
_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime in SQLite
DRIVER_ERRORS = (sqlite3.Error, psycopg.Error, SQLAlchemyError)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one ``ingest`` call did. ``observations`` = inserted + unchanged + revised + updated."""

    observations: int = 0
    inserted: int = 0
    unchanged: int = 0
    revised: int = 0  # value or denominator changed: the old value is kept as a revision
    updated: int = 0  # only the provisional flag changed
    series_created: int = 0
    rejected: int = 0  # values that are not finite numbers; never stored
    duplicates: int = 0  # repeated (series, period) in one call; the last one was kept

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.revised or self.updated)


@dataclass(frozen=True, slots=True)
class MilestoneResult:
    """What one ``upsert_milestones`` call did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0  # in the store but no longer in the plan


@dataclass
class SeriesBlock:
    """Every stored observation of one indicator, columnar, sorted by series then period.

    ``row[k]`` indexes ``series_ids``/``labels`` for observation ``k``. ``denominator`` is
    NaN where none was given. Rows, periods and revision counts are int32 (exact: the
    daemon holds these blocks between cycles, 4 bytes a value less each).
    """

    indicator: str
    series_ids: list[int]
    labels: list[dict[str, str]]
    row: Int32Array
    period: Int32Array
    value: FloatArray
    denominator: FloatArray
    provisional: BoolArray
    revisions: Int32Array

    def __len__(self) -> int:
        return int(self.period.shape[0])


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One stored value of one series."""

    period: int
    value: float
    denominator: float | None
    provisional: bool
    revisions: int
    as_of: datetime
    source: str


@dataclass(frozen=True, slots=True)
class RevisionRecord:
    """A stored value that a later poll replaced."""

    indicator: str
    labels: dict[str, str]
    period: int
    old_value: float
    new_value: float
    old_denominator: float | None
    new_denominator: float | None
    old_provisional: bool
    old_as_of: datetime
    revised_at: datetime
    source: str


@dataclass
class _Rows:
    """A batch made ready to store: finite values only, one per (series, period), sorted
    by series key then period. ``local`` indexes ``keys``."""

    keys: list[SeriesKey]
    local: IntArray
    period: IntArray
    value: FloatArray
    denominator: FloatArray  # NaN: none
    provisional: BoolArray
    given: int
    rejected: int

    def __len__(self) -> int:
        return int(self.local.shape[0])


def _prepare(batch: ObservationBatch) -> _Rows:
    """Return the batch's values to store: non-finite values refused (counted), non-finite
    denominators dropped, a repeated (series, period) keeping its last value."""
    finite = np.isfinite(batch.value)
    kept = batch if finite.all() else batch.take(finite)
    den = kept.denominator
    if not np.isfinite(den[~np.isnan(den)]).all():
        den = np.where(np.isfinite(den), den, np.nan)
    local, period = kept.series, kept.period
    if _ascending(local, period):  # a wide table's usual order: nothing to sort or drop
        return _Rows(kept.keys, local, period, kept.value, den, kept.provisional,
                     given=len(batch), rejected=len(batch) - int(finite.sum()))
    # A stable sort keeps repeats in the order given: the last of each run is the last given.
    order = np.lexsort((period, local))
    local, period = local[order], period[order]
    last = np.ones(local.shape[0], dtype=bool)
    last[:-1] = (local[1:] != local[:-1]) | (period[1:] != period[:-1])
    at = order[last]
    return _Rows(kept.keys, local[last], period[last], kept.value[at], den[at],
                 kept.provisional[at], given=len(batch),
                 rejected=len(batch) - int(finite.sum()))


def _ascending(major: IntArray, minor: IntArray) -> bool:
    """Return whether (major, minor) pairs strictly increase: sorted, none repeated."""
    if major.shape[0] < 2:
        return True
    step = np.diff(major)
    return bool(((step > 0) | ((step == 0) & (np.diff(minor) > 0))).all())


def _distinct(ordered: IntArray) -> IntArray:
    """Return the distinct values of an ascending array (the first of each run)."""
    if not ordered.shape[0]:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def _present(values: IntArray, size: int) -> IntArray:
    """Return the distinct values of ``values`` (non-negative, below ``size``), ascending:
    one pass over a mask, where ``np.unique`` would sort millions of values."""
    seen = np.zeros(size, dtype=bool)
    seen[values] = True
    return np.flatnonzero(seen)


def _nullable(values: FloatArray) -> list[float | None]:
    """Return the values as a list with None where NaN (SQL NULL)."""
    return [None if v != v else v for v in values.tolist()]  # v != v: NaN


# Rows handed to ``executemany`` as Python objects at a time. A tuple of three numbers
# costs ~150 bytes: 3.6M rows converted at once held half a gigabyte during a poll.
CHUNK_ROWS = 100_000


def _in_chunks(n: int, make: Callable[[slice], Iterable[tuple[Any, ...]]]
               ) -> Iterator[tuple[Any, ...]]:
    """Yield the rows ``make`` builds for each slice of ``CHUNK_ROWS`` of ``n`` positions,
    one slice after another: ``executemany`` reads an iterator as it goes, so only one
    slice's rows exist as Python objects at a time."""
    for start in range(0, n, CHUNK_ROWS):
        yield from make(slice(start, min(n, start + CHUNK_ROWS)))


# PostgreSQL's binary COPY format: a signature, flags and header-extension length, then per
# row the field count and each field's length and big-endian bytes; -1 ends the data.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # a binary timestamptz counts µs from here
COPY_COLUMNS = "series_id, period, value, denominator, provisional, as_of, revisions, source"


def _copy_row(source: bytes, denominator: bool) -> np.dtype[Any]:
    """The binary COPY row of ``observation`` (:data:`COPY_COLUMNS`): a NULL field is its
    length -1 with no bytes, so rows without a denominator have a dtype of their own."""
    return np.dtype([
        ("fields", ">i2"), ("l_sid", ">i4"), ("sid", ">i4"), ("l_period", ">i4"),
        ("period", ">i4"), ("l_value", ">i4"), ("value", ">f8"), ("l_den", ">i4"),
        *([("den", ">f8")] if denominator else []), ("l_prov", ">i4"), ("prov", "u1"),
        ("l_as_of", ">i4"), ("as_of", ">i8"), ("l_rev", ">i4"), ("rev", ">i4"),
        ("l_source", ">i4"), *([("source", f"S{len(source)}")] if source else [])])


def copy_rows(sid: IntArray, period: IntArray, value: FloatArray, den: FloatArray,
              provisional: BoolArray, as_of: datetime, source: str) -> Iterator[bytes]:
    """Yield new ``observation`` rows (:data:`COPY_COLUMNS`) as one binary COPY body, in
    parts of ``CHUNK_ROWS`` rows (the header with the first, the trailer last): the rows
    without a denominator (NaN), then those with one.

    Every field of a part has the same width (the source and the stamp are the same in
    every row), so numpy writes a part at once instead of a Python call per row. Straight
    into the table: a temporary table and an ``INSERT … SELECT`` from it cost the server a
    third more (7.2M rows: 9.3–11.1 CPU-s against 6.2–7.5). In parts, a poll of 3.6M rows
    holds a few MB of them at a time, not copies of hundreds of MB.
    """
    text = source.encode()
    stamp = (utc(as_of) - _PG_EPOCH) // timedelta(microseconds=1)
    missing = np.isnan(den)
    head = _COPY_HEADER
    for has_den, which in ((False, missing), (True, ~missing)):
        at = np.flatnonzero(which) if not which.all() else None
        n = int(which.sum())
        if not n:
            continue
        rows = np.empty(min(n, CHUNK_ROWS), dtype=_copy_row(text, has_den))
        rows["fields"] = 8
        rows["l_sid"] = rows["l_period"] = rows["l_rev"] = 4
        rows["l_value"] = rows["l_as_of"] = 8
        rows["l_den"] = 8 if has_den else -1
        rows["l_prov"] = 1
        rows["as_of"], rows["rev"] = stamp, 0
        rows["l_source"] = len(text)
        if text:
            rows["source"] = text
        for start in range(0, n, CHUNK_ROWS):
            part = rows[:min(CHUNK_ROWS, n - start)]
            take: slice | IntArray = slice(start, start + part.shape[0]) if at is None \
                else at[start:start + part.shape[0]]
            part["sid"], part["period"], part["value"] = sid[take], period[take], value[take]
            part["prov"] = provisional[take]
            if has_den:
                part["den"] = den[take]
            yield head + part.tobytes()
            head = b""
    yield head + _COPY_TRAILER


def _literal(text: str) -> str:
    """Return ``text`` as an SQL string literal. Raises ValueError for a NUL character."""
    if "\0" in text:
        raise ValueError("a source name cannot contain a NUL character")
    return "'" + text.replace("'", "''") + "'"


_LABELS_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)  # one, not one a call


def _json_labels(labels: Labels) -> str:
    return _LABELS_JSON.encode(dict(labels))


class ObservationStore:
    """Observations, series, revisions and milestones on one engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._pg = self.dialect == "postgresql"
        # What this process wrote, by data version: the series touched (sorted ids) and
        # the earliest period written. A reader that saw version v re-reads only what
        # versions after v touched, when all of them were written here (see
        # ``read_changes``); versions the reader holds are forgotten (``forget_changes``).
        self._changes: dict[int, tuple[IntArray, int]] = {}
        self._lock = threading.Lock()

    # --- the data version ------------------------------------------------------------------

    def _bump(self, cur: Any, now: Any) -> int:
        """Count one more write of observations or milestones, in the writer's transaction
        (so readers can tell nothing changed without reading anything); return the new
        version."""
        stamp = self._ts(now) if isinstance(now, datetime) else now
        cast = "(monitor_meta.value::bigint + 1)::text" if self._pg else \
            "CAST(CAST(monitor_meta.value AS INTEGER) + 1 AS TEXT)"
        cur.execute(self._q("INSERT INTO monitor_meta (key, value, updated_at) VALUES "  # noqa: S608
                            f"(?, '1', ?) ON CONFLICT (key) DO UPDATE SET value = {cast}, "
                            "updated_at = excluded.updated_at RETURNING value"),
                    (VERSION_KEY, stamp))
        row = cur.fetchone()
        return int(row[0])

    def _journal(self, version: int, series: set[int], first: int) -> None:
        """Remember what write ``version`` touched, as a sorted array: a poll of 100,000
        series is 0.8 MB here, where a set of Python ints would be ten times that."""
        touched = np.fromiter(series, dtype=np.int64, count=len(series))
        touched.sort()
        with self._lock:
            self._changes[version] = (touched, first)
            held = sum(ids.shape[0] for ids, _first in self._changes.values())
            for old in sorted(self._changes):
                if held <= JOURNAL_SERIES or old == version:
                    break
                held -= self._changes.pop(old)[0].shape[0]

    def forget_changes(self, through: int) -> None:
        """Forget what the writes up to version ``through`` touched: the reader of this
        process (the rule service's dataset cache) holds everything up to it.

        Without this the journal kept the series ids of every write — 100,000 a day for
        a daily poll of 100,000 series — until 1,000 writes had been made. Another
        reader that still wants those versions reads everything again (``read_changes``
        returns None): slower, never wrong."""
        with self._lock:
            for old in [v for v in self._changes if v <= through]:
                del self._changes[old]

    def journal_series(self) -> int:
        """Return how many series ids the journal of this process's writes holds."""
        with self._lock:
            return sum(ids.shape[0] for ids, _first in self._changes.values())

    def version(self) -> int:
        """Return the data version: how many writes changed observations or milestones
        (0 for a store never written). One small read: readers poll it every cycle."""
        rows = self._fetch("SELECT value FROM monitor_meta WHERE key = ?", [VERSION_KEY])
        return int(rows[0][0]) if rows else 0

    def read_changes(self, since: int, until: int, indicator_ids: list[str],
                     held: Mapping[str, SeriesBlock] | None = None
                     ) -> tuple[dict[str, SeriesBlock], int] | None:
        """Return what the writes after version ``since`` up to ``until`` changed, as
        blocks holding every observation of the touched series from the earliest period
        written on, and that period; None when some of those writes were not made by
        this process (another replica, ``monitor ingest``): then read everything.
        ``held``: the blocks the changes are merged into (their series' labels are not
        read again)."""
        changed = self.changed_ids(since, until)
        if changed is None:
            return None
        series, first = changed
        if not series.size:
            return {}, 0
        return self.read(indicator_ids, since=first, series_ids=series, held=held), first

    def changed_ids(self, since: int, until: int) -> tuple[IntArray, int] | None:
        """Return the series the writes after version ``since`` up to ``until`` touched,
        as an ascending array of ids (no Python int per series to make, or to pickle
        for a partition), and the earliest period written (0 when none); None when some
        of those writes were not made by this process."""
        with self._lock:
            wanted = range(since + 1, until + 1)
            if any(v not in self._changes for v in wanted):
                return None
            parts: list[IntArray] = []
            first: int | None = None
            for v in wanted:
                touched, earliest = self._changes[v]
                if touched.shape[0]:
                    parts.append(touched)
                    first = earliest if first is None else min(first, earliest)
        if not parts or first is None:
            return np.zeros(0, dtype=np.int64), 0
        if len(parts) == 1:
            return parts[0], first
        # Each write's ids are ascending already: a stable sort merges the runs (timsort,
        # linear here), where np.unique hashes every id.
        return _distinct(np.sort(np.concatenate(parts), kind="stable")), first

    # --- SQL helpers -----------------------------------------------------------------

    def _q(self, sql: str) -> str:
        """Return ``sql`` with ``?`` placeholders in the driver's style."""
        return sql.replace("?", "%s") if self._pg else sql

    def _ts(self, at: datetime) -> Any:
        """Return ``at`` as the driver stores a DateTime column."""
        at = utc(at)
        return at if self._pg else at.replace(tzinfo=None).strftime(_SQLITE_TS)

    @staticmethod
    def _from_ts(value: Any) -> datetime:
        return utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))

    # --- writing -----------------------------------------------------------------------

    def ingest(self, source: str, observations: ObservationBatch | Iterable[Observation], *,
               now: datetime, indicator_frequency: Frequency | str | None = None
               ) -> IngestResult:
        """Store ``observations`` (a batch, or Observation objects) in one transaction;
        return what changed.

        Keyed by (series, period): an identical value is left alone, a different value or
        denominator is a revision (the old one is kept in ``observation_revision`` and the
        row's ``revisions`` count goes up), a changed provisional flag alone is an update.
        Missing indicators (named by their id, with ``indicator_frequency``) and series are
        created. Non-finite values are refused and counted in ``rejected``; a repeated
        (series, period) keeps the last value. Raises StoreError when the database fails,
        in which case nothing was written.
        """
        batch = observations if isinstance(observations, ObservationBatch) else \
            ObservationBatch.of(observations)
        rows = _prepare(batch)
        frequency = Frequency(indicator_frequency or Frequency.MONTHLY)
        if not len(rows):
            return IngestResult(observations=0, rejected=rows.rejected,
                                duplicates=rows.given - rows.rejected)
        try:
            with self.engine.begin() as conn:
                raw = conn.connection.driver_connection
                assert raw is not None
                if not self._pg:  # _insert_new may raise its page cache
                    conn.connection.info[SHRINK_CACHE] = True
                cur = raw.cursor()
                try:
                    ids, created = self._resolve_series(cur, source, rows, frequency, now)
                    counts, touched = self._apply(cur, source, rows, ids, now)
                    version = self._bump(cur, now) if any(counts) else None
                finally:
                    cur.close()
        except DRIVER_ERRORS as exc:
            raise StoreError(f"cannot store the observations of source {source!r}: "
                             f"{str(exc).strip().splitlines()[0]}; nothing was written") from exc
        if version is not None:
            self._journal(version, *touched)
        total = len(rows)
        inserted, revised, updated = counts
        return IngestResult(
            observations=total, inserted=inserted, revised=revised, updated=updated,
            unchanged=total - inserted - revised - updated, series_created=created,
            rejected=rows.rejected, duplicates=rows.given - rows.rejected - total,
        )

    def _resolve_series(self, cur: Any, source: str, rows: _Rows, frequency: Frequency,
                        now: datetime) -> tuple[IntArray, int]:
        """Return (series id per key of ``rows``, series created), creating missing rows.

        Only the keys some value refers to are resolved; the others get id 0.
        """
        keys = rows.keys
        used = _present(rows.local, len(keys)).tolist()
        prints = {local: fingerprint(keys[local][1]) for local in used}
        wanted: dict[str, dict[str, int]] = {}
        for local in used:
            wanted.setdefault(keys[local][0], {})[prints[local]] = local
        ids = np.zeros(len(keys), dtype=np.int64)
        missing = self._lookup_series(cur, wanted, ids)
        if not missing:
            return ids, 0
        stamp = self._ts(now)
        cur.executemany(
            self._q("INSERT INTO indicator (id, name, reference, unit, direction, frequency, "
                    "definition, updated_at) VALUES (?, ?, '', '', 'neutral', ?, '{}', ?) "
                    "ON CONFLICT (id) DO NOTHING"),
            [(ind, ind, frequency.value, stamp) for ind in sorted({keys[i][0] for i in missing})])
        # Each new series' position under the partition key, read in this transaction
        # (share-locked: a change of key waits for this ingest, or it for the change).
        spec, _generation = stored_key(cur, self._pg, lock="FOR SHARE")
        key = from_spec(spec) if spec else None
        new = [(keys[i][0], prints[i], _json_labels(keys[i][1]),
                key.position_of(dict(keys[i][1])) if key else None) for i in missing]
        if self._pg:
            # One statement over arrays: executemany costs a round trip per row here.
            indicators, fingerprints, labels, parts = (list(column) for column in zip(
                *new, strict=True))
            cur.execute("INSERT INTO series (indicator_id, fingerprint, labels, part, source, "
                        "created_at) SELECT i, f, l, p, %s, %s FROM unnest(%s::text[], "
                        "%s::text[], %s::text[], %s::bigint[]) AS u(i, f, l, p) "
                        "ON CONFLICT (indicator_id, fingerprint) DO NOTHING",
                        (source, stamp, indicators, fingerprints, labels, parts))
            created = cur.rowcount
        else:
            cur.executemany("INSERT INTO series (indicator_id, fingerprint, labels, part, "
                            "source, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                            "(indicator_id, fingerprint) DO NOTHING",
                            [(*row, source, stamp) for row in new])
            created = len(missing)
        again: dict[str, dict[str, int]] = {}
        for local in missing:
            again.setdefault(keys[local][0], {})[prints[local]] = local
        still = self._lookup_series(cur, again, ids)
        if still:
            raise RuntimeError(f"{len(still)} series could not be created")
        return ids, max(0, created)

    def _lookup_series(self, cur: Any, wanted: Mapping[str, Mapping[str, int]],
                       ids: IntArray) -> list[int]:
        """Fill ``ids`` for the stored series in ``wanted``; return the local keys missing.

        One statement per indicator, its fingerprints one parameter: an array joined on
        PostgreSQL (with an IN list it may filter every series of the indicator against
        every fingerprint), a JSON list read by ``json_each`` on SQLite.
        """
        missing: list[int] = []
        for indicator, by_print in wanted.items():
            prints = list(by_print)
            if self._pg:
                cur.execute("SELECT s.fingerprint, s.id FROM series s JOIN unnest(%s::text[]) "
                            "AS w(fingerprint) ON s.fingerprint = w.fingerprint "
                            "WHERE s.indicator_id = %s", (prints, indicator))
            else:
                cur.execute("SELECT fingerprint, id FROM series WHERE indicator_id = ? AND "
                            "fingerprint IN (SELECT value FROM json_each(?))",
                            (indicator, json.dumps(prints)))
            found: dict[str, int] = dict(cur.fetchall())
            for fp, local in by_print.items():
                sid = found.get(fp)
                if sid is None:
                    missing.append(local)
                else:
                    ids[local] = int(sid)
        return missing

    def _apply(self, cur: Any, source: str, rows: _Rows, ids: IntArray, now: datetime
               ) -> tuple[tuple[int, int, int], tuple[set[int], int]]:
        """Merge ``rows`` into ``observation``; return (inserted, revised, updated) and
        (the series written, the earliest period written).

        1. load the stored rows of the touched series within the rows' period range, as
           columns sorted by series and period;
        2. compare as arrays (one sorted search of the rows' keys among the stored):
           new, unchanged, revised (value or denominator), flag-only;
        3. bulk-insert the new rows (``executemany`` / ``COPY``), then write the
           revisions and updates, each one ``executemany``.
        """
        stamp = self._ts(now)
        sid, period, local = ids[rows.local], rows.period, rows.local
        value, den, prov = rows.value, rows.denominator, rows.provisional
        if not _ascending(sid, period):
            # Series ids need not follow key order: sort by what the table is clustered on.
            order = np.lexsort((period, sid))
            sid, period, local = sid[order], period[order], local[order]
            value, den, prov = value[order], den[order], prov[order]
        first, last = int(period.min()), int(period.max())
        series = _distinct(sid)
        stored = self._existing(cur, series, first, last)
        n = sid.shape[0]
        new = np.ones(n, dtype=bool)
        revised = np.zeros(n, dtype=bool)
        flagged = np.zeros(n, dtype=bool)
        if stored.sid.shape[0]:
            # (series, period) as one sortable int64: periods are ordinals below 2**31.
            stored_key = (stored.sid << 32) + stored.period
            key = (sid << 32) + period
            at = np.minimum(np.searchsorted(stored_key, key), stored_key.shape[0] - 1)
            found = stored_key[at] == key
            at = at[found]
            old_den = stored.denominator[at]
            same_den = (old_den == den[found]) | (np.isnan(old_den) & np.isnan(den[found]))
            changed = (stored.value[at] != value[found]) | ~same_den
            flag_only = ~changed & ((stored.flags[at] & 1).astype(bool) != prov[found])
            new = ~found
            revised[found] = changed
            flagged[found] = flag_only
        written = new | revised | flagged
        # All new (a first poll): views of the columns, not copies of them.
        fresh: slice | BoolArray = slice(None) if new.all() else new
        plain = not self._pg and bool(np.isnan(den[fresh]).all()) and not prov[fresh].any()
        self._insert_new(cur, sid[fresh], period[fresh], value[fresh], den[fresh], prov[fresh],
                         stamp, source, plain=plain)
        self._note_feeding(cur, source, {rows.keys[k][0] for k in
                                         _present(local[written], len(rows.keys)).tolist()})
        touched = (set(_distinct(sid[written]).tolist()),
                   int(period[written].min()) if written.any() else last)
        if revised.any():  # copied from the stored row before the update below changes it
            r_value, r_den, r_sid, r_period = (value[revised], den[revised], sid[revised],
                                               period[revised])
            cur.executemany(self._q(
                "INSERT INTO observation_revision (series_id, period, old_value, "
                "old_denominator, old_provisional, old_as_of, new_value, new_denominator, "
                "revised_at, source) SELECT series_id, period, value, denominator, provisional, "
                "as_of, ?, ?, ?, ? FROM observation WHERE series_id = ? AND period = ?"),
                _in_chunks(r_sid.shape[0], lambda s: zip(
                    r_value[s].tolist(), _nullable(r_den[s]),
                    repeat(stamp, len(r_sid[s])), repeat(source, len(r_sid[s])),
                    r_sid[s].tolist(), r_period[s].tolist(), strict=True)))
        update = revised | flagged
        if update.any():
            u_value, u_den, u_prov, u_revised, u_sid, u_period = (
                value[update], den[update], prov[update], revised[update].astype(np.int64),
                sid[update], period[update])
            cur.executemany(self._q(
                "UPDATE observation SET value = ?, denominator = ?, provisional = ?, as_of = ?, "
                "source = ?, revisions = revisions + ? WHERE series_id = ? AND period = ?"),
                _in_chunks(u_sid.shape[0], lambda s: zip(
                    u_value[s].tolist(), _nullable(u_den[s]), u_prov[s].tolist(),
                    repeat(stamp, len(u_sid[s])), repeat(source, len(u_sid[s])),
                    u_revised[s].tolist(), u_sid[s].tolist(), u_period[s].tolist(),
                    strict=True)))
        return (int(new.sum()), int(revised.sum()), int(flagged.sum())), touched

    def _note_feeding(self, cur: Any, source: str, indicators: set[str]) -> None:
        """Record that ``source`` wrote values of ``indicators`` (``source_indicator``)."""
        if indicators:
            cur.executemany(self._q("INSERT INTO source_indicator (source, indicator_id) "
                                    "VALUES (?, ?) ON CONFLICT DO NOTHING"),
                            [(source, indicator) for indicator in sorted(indicators)])

    def _existing(self, cur: Any, sids: IntArray, first: int, last: int) -> _Columns:
        """Return the stored rows of series ``sids`` with periods ``first``..``last`` as
        columns sorted by series, then period (the series ids are one parameter)."""
        if self._pg:
            return _pg_columns(cur, "WHERE series_id = ANY(%s) AND period BETWEEN %s AND %s",
                               [sids.tolist(), first, last])
        # Five numbers a row, read into one float64 array per chunk (series ids and
        # periods are exact in a double); a missing denominator comes as 9e999, infinity,
        # which no stored denominator is (they are finite), rather than as a sixth column.
        cur.execute("SELECT series_id, period, value, COALESCE(denominator, 9e999), "
                    "provisional FROM observation WHERE series_id IN "
                    "(SELECT value FROM json_each(?)) AND period BETWEEN ? AND ? "
                    "ORDER BY series_id, period",
                    (json.dumps(sids.tolist()), first, last))
        sid, period, value, den, flags = _fetch_columns(cur)
        den[np.isinf(den)] = np.nan
        return _Columns(sid, period, value, den, flags)

    def _insert_new(self, cur: Any, sid: IntArray, period: IntArray, value: FloatArray,
                    den: FloatArray, prov: BoolArray, stamp: Any, source: str, *,
                    plain: bool) -> None:
        """Insert new rows; on SQLite only (series, period, value) when ``plain`` (no
        denominator, not provisional): binding fewer values per row is faster."""
        if not sid.shape[0]:
            return
        if self._pg:
            with cur.copy(f"COPY observation ({COPY_COLUMNS}) FROM STDIN (FORMAT BINARY)") \
                    as copy:
                for part in copy_rows(sid, period, value, den, prov, stamp, source):
                    copy.write(part)
            return
        # The default 2 MB page cache thrashes once the table outgrows it; 64 MB keeps the
        # B-tree pages a bulk insert walks through in memory (per connection, not per file)
        # for this transaction. Kept afterwards, it filled with the table's pages over weeks
        # and held them between polls (benchmarks/soak.py): the pool sets it back.
        cur.execute("PRAGMA cache_size = -65536")
        # Constants are written into the statement: binding fewer values per row is what
        # makes executemany fast. The stamp is our own strftime output; the source is
        # quoted as an SQL string literal.
        constants = f"'{stamp}', 0, {_literal(source)}"
        n = sid.shape[0]
        if plain:
            cur.executemany("INSERT INTO observation (series_id, period, value, denominator, "  # noqa: S608
                            f"provisional, as_of, revisions, source) VALUES (?, ?, ?, NULL, 0, "
                            f"{constants})", _in_chunks(n, lambda s: zip(
                                sid[s].tolist(), period[s].tolist(), value[s].tolist(),
                                strict=True)))
        else:
            cur.executemany("INSERT INTO observation (series_id, period, value, denominator, "  # noqa: S608
                            f"provisional, as_of, revisions, source) VALUES (?, ?, ?, ?, ?, "
                            f"{constants})", _in_chunks(n, lambda s: zip(
                                sid[s].tolist(), period[s].tolist(), value[s].tolist(),
                                _nullable(den[s]), prov[s].tolist(), strict=True)))

    # --- reading -------------------------------------------------------------------------

    def read(self, indicator_ids: list[str] | None = None,
             since: int | None = None, series_ids: Collection[int] | IntArray | None = None,
             held: Mapping[str, SeriesBlock] | None = None) -> dict[str, SeriesBlock]:
        """Return one columnar block per indicator with its observations from ``since`` on.

        ``indicator_ids`` None reads every indicator. Indicators without observations in
        range are absent. Two queries in all (series, then observations), no ORM objects;
        with ``held`` (blocks the caller holds), the series those hold take their labels
        from there, and only the others' are read (``with_labels``; ``_read_touched``
        with ``series_ids`` too).
        """
        if series_ids is not None and held is not None and indicator_ids is not None:
            return self._read_touched(indicator_ids, since, _ids(series_ids), held)
        where_series = ""
        params: list[Any] = []
        if indicator_ids is not None:
            if not indicator_ids or (series_ids is not None and not len(series_ids)):
                return {}
            # One parameter however many indicators: an array (PostgreSQL), a JSON list
            # (SQLite).
            if self._pg:
                where_series = "WHERE indicator_id = ANY(?)"
                params = [list(indicator_ids)]
            else:
                where_series = "WHERE indicator_id IN (SELECT value FROM json_each(?))"
                params = [json.dumps(list(indicator_ids))]
        if series_ids is not None:
            where_series += " AND " if where_series else "WHERE "
            if self._pg:
                where_series += "id = ANY(?)"
                params.append(_ids(series_ids).tolist())
            else:
                where_series += "id IN (SELECT value FROM json_each(?))"
                params.append(json.dumps(_ids(series_ids).tolist()))
        with read_cursor(self.engine, self._pg) as cur:
            labels = "labels" if held is None else "NULL"
            cur.execute(self._q(f"SELECT id, indicator_id, {labels} FROM series "  # noqa: S608
                                f"{where_series} ORDER BY indicator_id, id"), params)
            series = cur.fetchall()
            if not series:
                return {}
            if held is not None:
                series = with_labels(cur, self._pg, series, held)
            # the series a poll touched: a row or two each (``thin``)
            columns = self._read_observations(cur, where_series, params, since,
                                              thin=series_ids is not None)
        return _blocks(series, columns)

    def _read_touched(self, indicator_ids: list[str], since: int | None, ids: IntArray,
                      held: Mapping[str, SeriesBlock]) -> dict[str, SeriesBlock]:
        """``read`` of the series ``ids`` (ascending) of ``indicator_ids`` that a poll
        touched, to be merged into the blocks ``held``: the series those blocks hold are
        found there, with their labels, and only the others (new series) are looked up
        in the store; their observations are then read by id.

        It used to read the touched series' list back from the store (every id bound in
        one JSON list, a row each back) and find each one in the blocks in a Python
        loop: for a new month of every one of 1,000,000 series, about a third of the
        read's time before any observation came."""
        if not indicator_ids or not ids.size:
            return {}
        known, unknown = held_series(held, indicator_ids, ids)
        with read_cursor(self.engine, self._pg) as cur:
            found = stored_series(cur, self._pg, indicator_ids, ids[unknown].tolist()) \
                if unknown.any() else []
            series = _series_rows(known, found)
            if not series:
                return {}
            wanted = np.unique(np.fromiter((row[0] for row in series), dtype=np.int64,
                                           count=len(series))).tolist()
            columns = series_columns(cur, self._pg, wanted, since)
        return _blocks(series, columns)

    def _read_observations(self, cur: Any, where_series: str, params: list[Any],
                           since: int | None, *, thin: bool = False) -> _Columns:
        """Return every matching observation as columns sorted by series, then period."""
        clauses = []
        args = list(params)
        if where_series:
            clauses.append(f"series_id IN (SELECT id FROM series {where_series})")  # noqa: S608
        if since is not None:
            clauses.append("period >= ?")
            args.append(int(since))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        if self._pg:
            return _pg_columns(cur, where.replace("?", "%s"), args)
        return sqlite_columns(cur, where, args, thin=thin)

    def history(self, indicator: str, labels: Labels | Mapping[str, str],
                since: int | None = None) -> list[HistoryPoint]:
        """Return the stored values of one series, oldest period first ([] when unknown)."""
        pairs = labels_of(labels) if isinstance(labels, Mapping) else labels
        sql = ("SELECT o.period, o.value, o.denominator, o.provisional, o.revisions, o.as_of, "
               "o.source FROM observation o JOIN series s ON s.id = o.series_id "
               "WHERE s.indicator_id = ? AND s.fingerprint = ?")
        args: list[Any] = [indicator, fingerprint(pairs)]
        if since is not None:
            sql += " AND o.period >= ?"
            args.append(since)
        rows = self._fetch(sql + " ORDER BY o.period", args)
        return [HistoryPoint(int(p), float(v), None if d is None else float(d), bool(f), int(r),
                             self._from_ts(at), str(src)) for p, v, d, f, r, at, src in rows]

    def revisions(self, since: datetime | None = None, indicator: str | None = None,
                  limit: int = 10_000) -> list[RevisionRecord]:
        """Return revisions recorded at or after ``since``, newest first (at most ``limit``)."""
        sql = ("SELECT s.indicator_id, s.labels, r.period, r.old_value, r.new_value, "
               "r.old_denominator, r.new_denominator, r.old_provisional, r.old_as_of, "
               "r.revised_at, r.source FROM observation_revision r "
               "JOIN series s ON s.id = r.series_id")
        clauses: list[str] = []
        args: list[Any] = []
        if since is not None:
            clauses.append("r.revised_at >= ?")
            args.append(self._ts(since))
        if indicator is not None:
            clauses.append("s.indicator_id = ?")
            args.append(indicator)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY r.revised_at DESC, r.id DESC LIMIT {int(limit)}"
        return [RevisionRecord(ind, json.loads(lab), int(p), float(ov), float(nv),
                               None if od is None else float(od),
                               None if nd is None else float(nd), bool(op),
                               self._from_ts(oa), self._from_ts(ra), str(src))
                for ind, lab, p, ov, nv, od, nd, op, oa, ra, src in self._fetch(sql, args)]

    def revision_count(self, source: str | None = None) -> int:
        """Return how many revisions are stored (for one source, or all)."""
        if source is None:
            rows = self._fetch("SELECT COUNT(*) FROM observation_revision", [])
        else:
            rows = self._fetch("SELECT COUNT(*) FROM observation_revision WHERE source = ?",
                               [source])
        return int(rows[0][0])

    def count(self, indicator: str | None = None) -> int:
        """Return how many observations are stored (for one indicator, or all)."""
        if indicator is None:
            rows = self._fetch("SELECT COUNT(*) FROM observation", [])
        else:
            rows = self._fetch("SELECT COUNT(*) FROM observation o JOIN series s "
                               "ON s.id = o.series_id WHERE s.indicator_id = ?", [indicator])
        return int(rows[0][0])

    def count_by_source(self) -> dict[str, int]:
        """Return, per source name, how many observations it wrote that the store holds;
        milestones count for milestone sources."""
        out: dict[str, int] = {}
        for source, count in self._fetch(
                "SELECT source, COUNT(*) FROM observation GROUP BY source "
                "UNION ALL SELECT source, COUNT(*) FROM milestone GROUP BY source", []):
            out[str(source)] = out.get(str(source), 0) + int(count)
        return out

    def label_names(self) -> set[str]:
        """Return every label name the stored series carry (the database lists the keys
        of their labels: no label set is parsed here)."""
        sql = "SELECT DISTINCT json_object_keys(labels::json) FROM series" if self._pg else \
            "SELECT DISTINCT j.key FROM series, json_each(series.labels) AS j"
        return {str(name) for (name,) in self._fetch(sql, [])}

    def indicators_by_source(self) -> dict[str, list[str]]:
        """Return, per source name, the indicators it has stored observations of (sorted):
        every source that fed an indicator, whichever was polled first."""
        out: dict[str, list[str]] = {}
        for source, indicator in self._fetch(
                "SELECT source, indicator_id FROM source_indicator ORDER BY 1, 2", []):
            out.setdefault(str(source), []).append(str(indicator))
        return out

    def _fetch(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            cur = raw.cursor()
            try:
                cur.execute(self._q(sql), list(args))
                rows = [tuple(r) for r in cur.fetchall()]
            finally:
                cur.close()
            conn.rollback()
        return rows

    # --- milestones ------------------------------------------------------------------------

    def upsert_milestones(self, source: str, milestones: Sequence[Milestone], *,
                          now: datetime, remove_missing: bool = True) -> MilestoneResult:
        """Make the stored plan of ``source`` equal ``milestones``, in one transaction.

        Milestones no longer in the plan are removed (the plan file is the authority)
        unless ``remove_missing`` is false, as when some rows of the plan were rejected.
        """
        wanted: dict[str, tuple[Any, ...]] = {m.id: _milestone_fields(m) for m in milestones}
        stamp = self._ts(now)
        try:
            return self._upsert_milestones(source, wanted, stamp, remove_missing)
        except DRIVER_ERRORS as exc:
            raise StoreError(f"cannot store the milestones of source {source!r}: "
                             f"{str(exc).strip().splitlines()[0]}; nothing was written") from exc

    def _upsert_milestones(self, source: str, wanted: dict[str, tuple[Any, ...]], stamp: Any,
                           remove_missing: bool) -> MilestoneResult:
        with self.engine.begin() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            cur = raw.cursor()
            try:
                cur.execute(self._q("SELECT id, title, owner, due, status, completed, labels "
                                    "FROM milestone WHERE source = ?"), (source,))
                stored = {str(r[0]): tuple(r[1:]) for r in cur.fetchall()}
                new = [(source, mid, *f, stamp) for mid, f in wanted.items() if mid not in stored]
                changed = [(*f, stamp, source, mid) for mid, f in wanted.items()
                           if mid in stored and stored[mid] != f]
                gone = [(source, mid) for mid in stored if mid not in wanted] \
                    if remove_missing else []
                cur.executemany(self._q(
                    "INSERT INTO milestone (source, id, title, owner, due, status, completed, "
                    "labels, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"), new)
                cur.executemany(self._q(
                    "UPDATE milestone SET title = ?, owner = ?, due = ?, status = ?, "
                    "completed = ?, labels = ?, updated_at = ? WHERE source = ? AND id = ?"),
                    changed)
                cur.executemany(self._q("DELETE FROM milestone WHERE source = ? AND id = ?"), gone)
                version = self._bump(cur, stamp) if new or changed or gone else None
            finally:
                cur.close()
        if version is not None:
            self._journal(version, set(), 0)  # milestones are read whole at every read
        return MilestoneResult(inserted=len(new), updated=len(changed), removed=len(gone),
                               unchanged=len(wanted) - len(new) - len(changed))

    def milestones(self, source: str | None = None) -> list[Milestone]:
        """Return the stored milestones (of one source, or all), by due date then id."""
        sql = "SELECT id, title, owner, due, status, completed, labels FROM milestone"
        args: list[Any] = []
        if source is not None:
            sql += " WHERE source = ?"
            args.append(source)
        rows = self._fetch(sql + " ORDER BY due, id", args)
        return [Milestone(id=str(i), title=str(t), owner=str(o), due=date.fromisoformat(d),
                          status=str(s), completed=date.fromisoformat(c) if c else None,
                          labels=labels_of(json.loads(lab)))
                for i, t, o, d, s, c, lab in rows]


def _milestone_fields(m: Milestone) -> tuple[str, str, str, str, str | None, str]:
    return (m.title, m.owner, m.due.isoformat(), m.status,
            m.completed.isoformat() if m.completed else None, _json_labels(m.labels))


@dataclass
class _Columns:
    """Observations as parallel arrays, sorted by series then period."""

    sid: IntArray
    period: IntArray
    value: FloatArray
    denominator: FloatArray  # NaN where none
    flags: IntArray  # provisional + 2 * revisions


_COLUMN_TYPES = (np.int64, np.int64, np.float64, np.float64, np.int64)


# An observation that is not a bare value: the condition of the partial index
# ix_observation_rare (tables.py, migration 0007), as each database writes it (SQLite
# uses the index for a query whose WHERE holds this very text; PostgreSQL's provisional
# is a boolean).
RARE_SQLITE = "denominator IS NOT NULL OR provisional <> 0 OR revisions <> 0"
RARE_POSTGRES = "denominator IS NOT NULL OR provisional OR revisions <> 0"

READ_ROWS = 250_000  # rows a read fetches at a time (~50 MB of Python tuples)


def _fetch_columns(cur: Any, fetch: int | None = None) -> list[npt.NDArray[Any]]:
    """Return the rows of the query ``cur`` executed, five numbers each (series id,
    period, value, denominator, flags; NULL as NaN), as five columns.

    Rows come ``fetch`` (``READ_ROWS``) at a time (a tuple per row costs ~200 bytes)
    and each batch is split into its columns at once; the columns are joined one at a
    time, each column's parts let go as it is joined. Joining a table of all five and
    cutting it into columns afterwards held three copies of every value at once.
    """
    parts: list[list[npt.NDArray[Any]]] = [[] for _ in _COLUMN_TYPES]
    while fetched := cur.fetchmany(fetch or READ_ROWS):
        table = np.array(fetched, dtype=np.float64).reshape(-1, len(_COLUMN_TYPES))
        del fetched
        for k, kind in enumerate(_COLUMN_TYPES):
            parts[k].append(table[:, k].astype(kind))
    columns: list[npt.NDArray[Any]] = []
    for k, kind in enumerate(_COLUMN_TYPES):
        columns.append(np.concatenate(parts[k]) if parts[k] else np.empty(0, dtype=kind))
        parts[k].clear()
    return columns


def sqlite_columns(cur: Any, where: str, args: Sequence[Any], fetch: int | None = None,
                   *, thin: bool = False) -> _Columns:
    """Return the observations that ``where`` (a WHERE clause over ``observation`` with
    ``?`` marks for ``args``, or "") selects, as columns sorted by series, then period;
    mostly read as one number a row. Call inside a read transaction: its four queries
    must see the same rows.

    Each row Python's sqlite3 fetches is a tuple of number objects, and making them is
    most of a read (3.6M rows: 5.4 CPU-s as five numbers a row, 2.0 as one). But most
    series are a run of consecutive periods, and most rows have no denominator, are not
    provisional and were never revised. So the read asks for:

    1. each series' run: its row count, first and last period (a row per series);
    2. the values alone, in order;
    3. the periods of the series whose run has gaps, only;
    4. the rows with a denominator, a flag or a revision, only, each put in its place by
       (series, period).

    ``thin``: the read holds a row or two per series (a poll's changes: the new month of
    every series), where a run per series costs more than the rows themselves; 1 and 2
    are then one query of (series, period, value) a row (at 1M series, a new month's
    read of 250,000 series: 0.47 CPU-s against 1.03).

    Rows come ``fetch`` (``READ_ROWS``) at a time.
    """
    if thin:
        sid, period, value = _thin_rows(cur, where, args, fetch)
    else:
        sid, period, value = _run_rows(cur, where, args, fetch)
    return _with_rare(cur, where, args, sid, period, value)


def _thin_rows(cur: Any, where: str, args: Sequence[Any], fetch: int | None
               ) -> tuple[IntArray, IntArray, FloatArray]:
    """``sqlite_columns``' series, periods and values, read as one row each (``thin``)."""
    cur.execute(f"SELECT series_id, period, value FROM observation {where} "  # noqa: S608
                "ORDER BY series_id, period", args)
    parts: list[FloatArray] = []
    while fetched := cur.fetchmany(fetch or READ_ROWS):
        parts.append(np.fromiter(chain.from_iterable(fetched), dtype=np.float64,
                                 count=3 * len(fetched)))
        del fetched
    rows = (np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)).reshape(-1, 3)
    return rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2].copy()


def _run_rows(cur: Any, where: str, args: Sequence[Any], fetch: int | None
              ) -> tuple[IntArray, IntArray, FloatArray]:
    """``sqlite_columns``' series, periods and values: each series' run, then the values
    alone, then the periods of the runs with gaps (steps 1 to 3)."""
    def also(condition: str) -> str:
        return f"{where} AND {condition}" if where else f"WHERE {condition}"

    cur.execute("SELECT series_id, count(*), min(period), max(period) "  # noqa: S608
                f"FROM observation {where} GROUP BY series_id ORDER BY series_id", args)
    runs = np.array(cur.fetchall(), dtype=np.int64).reshape(-1, 4)
    sids, counts, first, last = runs.T
    n = int(counts.sum())
    cur.execute(f"SELECT value FROM observation {where} "  # noqa: S608
                "ORDER BY series_id, period", args)
    parts: list[FloatArray] = []
    while fetched := cur.fetchmany(fetch or READ_ROWS):
        parts.append(np.fromiter(chain.from_iterable(fetched), dtype=np.float64,
                                 count=len(fetched)))
        del fetched
    value = np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
    parts.clear()
    if value.shape[0] != n:
        raise StoreError(f"the store changed during a read ({n:,} observations counted, "
                         f"{value.shape[0]:,} read): was the read outside a transaction?")
    starts = np.cumsum(counts) - counts
    sid = np.repeat(sids, counts)
    period = np.arange(n, dtype=np.int64) - np.repeat(starts - first, counts)
    gaps = counts != last - first + 1
    if gaps.any():  # their periods as stored, in the same order
        cur.execute(f"SELECT period FROM observation {also('series_id IN (SELECT value FROM json_each(?))')} "  # noqa: S608,E501
                    "ORDER BY series_id, period", [*args, json.dumps(sids[gaps].tolist())])
        period[np.repeat(gaps, counts)] = np.array(cur.fetchall(), dtype=np.int64).reshape(-1)
    return sid, period, value


def _with_rare(cur: Any, where: str, args: Sequence[Any], sid: IntArray, period: IntArray,
               value: FloatArray) -> _Columns:
    """The columns of the rows read, with the denominators and flags of the rare rows
    among them put in their places (``sqlite_columns``' step 4)."""
    n = value.shape[0]
    denominator = np.full(n, np.nan)
    flags = np.zeros(n, dtype=np.int64)
    # The rare rows: through the partial index that holds only them (migration 0007), read
    # whole, when the store holds no more of them than this read returns rows (most
    # stores: none or a few); else, as the values, a seek per series (a store of rates,
    # every row with a denominator). ``+series_id`` keeps SQLite from seeking each series
    # in the table for the index scan. The probe reads at most n entries of that index.
    cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM observation WHERE {RARE_SQLITE} "  # noqa: S608
                "LIMIT ?)", [n + 1])
    few = int(cur.fetchone()[0]) <= n
    scan = where.replace("WHERE series_id ", "WHERE +series_id ", 1) if few else where
    cur.execute("SELECT series_id, period, COALESCE(denominator, 9e999), "  # noqa: S608
                "provisional + 2 * revisions FROM observation "
                f"{f'{scan} AND ({RARE_SQLITE})' if scan else f'WHERE {RARE_SQLITE}'} "
                "ORDER BY series_id, period", args)
    rare = np.array(cur.fetchall(), dtype=np.float64).reshape(-1, 4)
    if rare.shape[0]:
        low = int(period.min())
        key = (sid << 32) | (period - low)
        at = np.searchsorted(key, (rare[:, 0].astype(np.int64) << 32)
                             | (rare[:, 1].astype(np.int64) - low))
        den = rare[:, 2]
        denominator[at] = np.where(np.isinf(den), np.nan, den)
        flags[at] = rare[:, 3].astype(np.int64)
    return _Columns(sid, period, value, denominator, flags)


def _pg_columns(cur: Any, where: str, args: list[Any]) -> _Columns:
    """Return the rows as columns, each sent by the server as one binary string.

    Fetching millions of rows as Python tuples (or COPY rows one by one) costs seconds;
    ``string_agg`` of each column's binary form is one value per column, decoded by
    numpy in place. All aggregates of one query see the rows in the same order, so the
    columns stay aligned; the order itself is restored here.

    Memory: the result comes in binary (as text each byte was two hex digits: 3.6M rows
    were 0.6 GB of text), the integer columns as the four bytes they are stored in, read
    by a cursor of its own, closed at once (the driver's copy of the result goes with
    it); each column's bytes are let go once decoded, and rows that came in order (the
    table's, usually) are not sorted again.
    """
    with cur.connection.cursor(binary=True) as aggregates:
        aggregates.execute(
            "SELECT string_agg(int4send(series_id), ''::bytea), "  # noqa: S608
            "string_agg(int4send(period), ''::bytea), "
            "string_agg(float8send(value), ''::bytea), "
            "string_agg(float8send(COALESCE(denominator, 'NaN'::float8)), ''::bytea), "
            "string_agg(int4send(provisional::int + 2 * revisions), ''::bytea) "
            f"FROM observation {where}", args or None)
        fetched = aggregates.fetchone()
    del aggregates
    if fetched is None or fetched[0] is None:
        empty = np.empty(0, dtype=np.int64)
        return _Columns(empty, empty, empty.astype(np.float64), empty.astype(np.float64), empty)
    raw: list[bytes] = list(fetched)
    del fetched
    columns: list[npt.NDArray[Any]] = []
    for k, (wire, native) in enumerate(((">i4", np.int64), (">i4", np.int64),
                                        (">f8", np.float64), (">f8", np.float64),
                                        (">i4", np.int64))):
        columns.append(np.frombuffer(raw[k], dtype=wire).astype(native))
        raw[k] = b""
    if not _ascending(columns[0], columns[1]):
        order = np.lexsort((columns[1], columns[0]))
        for k, column in enumerate(columns):
            columns[k] = column[order]
            del column
    sid, period, value, den, flags = columns
    return _Columns(sid, period, value, den, flags)


def with_labels(cur: Any, pg: bool, series: Sequence[Sequence[Any]],
                held: Mapping[str, SeriesBlock]) -> list[tuple[int, str, Any]]:
    """Return the (id, indicator, labels) rows of ``series`` (read without their labels)
    with the labels of the series a block of ``held`` holds taken from it, and the
    others' read in one query.

    A poll's changes, read to be merged into the blocks held (``merge_blocks``), are
    mostly of series held already: a new month for every one of 500,000 series read
    and parsed 500,000 labels' JSON (2 CPU-seconds) that the blocks held had."""
    known: dict[str, dict[int, dict[str, str]]] = {}
    out: list[tuple[int, str, Any]] = []
    missing: dict[int, int] = {}
    for sid, indicator, _ in series:
        name = str(indicator)
        index = known.get(name)
        if index is None:
            block = held.get(name)
            index = known[name] = {} if block is None else \
                dict(zip(block.series_ids, block.labels, strict=True))
        labels = index.get(int(sid))
        if labels is None:
            missing[int(sid)] = len(out)
        out.append((int(sid), name, labels))
    if missing:
        ids = sorted(missing)
        if pg:
            cur.execute("SELECT id, labels FROM series WHERE id = ANY(%s)", [ids])
        else:
            cur.execute("SELECT id, labels FROM series WHERE id IN "
                        "(SELECT value FROM json_each(?))", [json.dumps(ids)])
        found = cur.fetchall()
        if len(found) != len(missing):
            raise StoreError("the store changed during a read (a series went): read again")
        for sid, text in found:
            at = missing[int(sid)]
            out[at] = (out[at][0], out[at][1], text)
    return out


def _ids(series_ids: Collection[int] | IntArray) -> IntArray:
    """Return ``series_ids`` as an ascending array of distinct ids."""
    if isinstance(series_ids, np.ndarray):
        ids = series_ids.astype(np.int64, copy=False)
        if ids.size < 2 or bool(np.all(ids[1:] > ids[:-1])):
            return ids
        return np.unique(ids)
    return np.unique(np.fromiter(series_ids, dtype=np.int64, count=len(series_ids)))


@contextmanager
def read_cursor(engine: Engine, pg: bool) -> Iterator[Any]:
    """Yield a driver cursor in a read transaction: what a read's queries ask sees the
    store as of one moment (on SQLite an explicit BEGIN; nothing is written)."""
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            if not pg:
                cur.execute("BEGIN")
            yield cur
        finally:
            if not pg:
                cur.execute("ROLLBACK")
            cur.close()
        conn.rollback()


def held_series(held: Mapping[str, SeriesBlock], indicator_ids: Sequence[str], ids: IntArray
                ) -> tuple[list[tuple[str, IntArray, list[Any]]], BoolArray]:
    """Return, per indicator of ``indicator_ids`` whose block ``held`` holds some of the
    series ``ids`` (ascending), those ids and their labels (the block's own dicts); and
    which of ``ids`` no block holds."""
    unknown = np.ones(ids.shape[0], dtype=bool)
    known: list[tuple[str, IntArray, list[Any]]] = []
    for name in dict.fromkeys(indicator_ids):
        block = held.get(name)
        if block is None or not block.series_ids:
            continue
        at, hit = _positions(block, ids)
        if hit.any():
            unknown &= ~hit
            mine = block.labels
            known.append((name, ids[hit], [mine[i] for i in at[hit].tolist()]))
    return known, unknown


def stored_series(cur: Any, pg: bool, indicator_ids: Sequence[str], ids: list[int],
                  part: tuple[int, int] | None = None) -> list[tuple[Any, ...]]:
    """Return (id, indicator, labels as stored) of the stored series among ``ids`` of
    ``indicator_ids`` (``part``: only those positioned in that range), each list one
    parameter."""
    if pg:
        sql = "SELECT id, indicator_id, labels FROM series WHERE indicator_id = ANY(%s) " \
              "AND id = ANY(%s)"
        args: list[Any] = [list(indicator_ids), ids]
    else:
        sql = "SELECT id, indicator_id, labels FROM series WHERE indicator_id IN " \
              "(SELECT value FROM json_each(?)) AND id IN (SELECT value FROM json_each(?))"
        args = [json.dumps(list(indicator_ids)), json.dumps(ids)]
    if part is not None:
        mark = "%s" if pg else "?"
        sql += f" AND part >= {mark} AND part < {mark}"
        args += list(part)
    cur.execute(sql, args)
    return list(cur.fetchall())


def _positions(block: SeriesBlock, ids: IntArray) -> tuple[IntArray, BoolArray]:
    """Return, for each of ``ids``, its row in ``block`` and whether ``block`` holds it
    (the row is meaningless where not): a sorted search of the block's ids, sorted first
    when they are not (a series new to the store is appended to a block held)."""
    held = np.asarray(block.series_ids, dtype=np.int64)
    order = None if bool(np.all(held[1:] > held[:-1])) else np.argsort(held, kind="stable")
    at = np.minimum(np.searchsorted(held, ids, sorter=order), held.shape[0] - 1)
    if order is not None:
        at = order[at]
    return at, held[at] == ids


def _series_rows(known: Sequence[tuple[str, IntArray, list[Any]]],
                 found: Sequence[Sequence[Any]]) -> list[tuple[int, str, Any]]:
    """Return the (id, indicator, labels) rows of the series found in the blocks held
    (``known``: per indicator, their ids ascending and labels) and of those found in the
    store (``found``), sorted by indicator, then id, as ``read``'s series query sorts
    them: the held ones' labels as the blocks hold them, the others' as stored text."""
    rows: dict[str, list[tuple[int, str, Any]]] = {}
    for name, ids, labels in known:
        rows[name] = list(zip(ids.tolist(), repeat(name), labels))
    extra: dict[str, list[tuple[int, str, Any]]] = {}
    for sid, indicator, text in found:
        extra.setdefault(str(indicator), []).append((int(sid), str(indicator), text))
    out: list[tuple[int, str, Any]] = []
    for name in sorted(rows.keys() | extra.keys()):
        mine = rows.get(name, [])
        if name in extra:
            mine = sorted(mine + extra[name], key=operator.itemgetter(0))
        out += mine
    return out


def series_columns(cur: Any, pg: bool, ids: list[int], since: int | None = None, *,
                   thin: bool = True) -> _Columns:
    """Return the observations of series ``ids`` (ascending), from period ``since`` on
    when given, as columns sorted by series and period: on PostgreSQL with one array
    parameter (``= ANY``), on SQLite with one JSON list (``json_each``: SQLite walks the
    observations' primary key once per id, in order, with no sort and no temporary
    table) — never one bound parameter per series. ``thin``: a row or two a series
    (a poll's changes), read a row at a time (``sqlite_columns``). Call inside a read
    transaction."""
    if pg:
        return _pg_columns(cur, "WHERE series_id = ANY(%s)" + (
            " AND period >= %s" if since is not None else ""),
            [ids] + ([since] if since is not None else []))
    where = "WHERE series_id IN (SELECT value FROM json_each(?))"
    if since is not None:
        return sqlite_columns(cur, where + " AND period >= ?", [json.dumps(ids), since],
                              FETCH_ROWS, thin=thin)
    return sqlite_columns(cur, where, [json.dumps(ids)], FETCH_ROWS, thin=thin)


def _parse_labels(texts: list[Any]) -> list[dict[str, str]]:
    """Return the labels of each series: its JSON text parsed, or the dict given
    (``with_labels``). The texts are parsed as one JSON array: a call of ``json.loads``
    per series was most of it (1,000,000 series: 4.1 CPU-seconds)."""
    todo = [k for k, text in enumerate(texts) if not isinstance(text, dict)]
    if not todo:
        return texts
    parsed = json.loads("[" + ",".join(texts[k] for k in todo) + "]")
    if len(todo) == len(texts):
        return list(parsed)
    out = list(texts)
    for k, labels in zip(todo, parsed, strict=True):
        out[k] = labels
    return out


def _blocks(series: Sequence[Sequence[Any]], columns: _Columns) -> dict[str, SeriesBlock]:
    """Split the observations into one block per indicator, emptying ``columns``.

    1. find where each series' run of rows starts (the rows are sorted by series);
    2. look up each series' indicator and row within that indicator's series list;
    3. spread both over the rows; then, one field at a time, select each indicator's
       rows and let the field's column go. The read then holds one column more than
       the blocks, not the columns and the blocks whole (3.6M rows: 0.2 GB less).
    """
    codes: dict[str, int] = {}
    names = [str(row[1]) for row in series]
    for name in names:
        codes.setdefault(name, len(codes))
    code = np.fromiter((codes[name] for name in names), dtype=np.int32, count=len(names))
    del names
    sids = np.fromiter((row[0] for row in series), dtype=np.int64, count=len(series))
    labels = _parse_labels([row[2] for row in series])
    place = np.empty(len(series), dtype=np.int32)  # each series' row in its indicator
    members: dict[str, tuple[list[int], list[dict[str, str]]]] = {}
    for name, k in codes.items():
        mine = np.flatnonzero(code == k)
        place[mine] = np.arange(mine.shape[0], dtype=np.int32)
        members[name] = (sids[mine].tolist(), labels if len(codes) == 1 else
                         [labels[i] for i in mine.tolist()])
    n = columns.sid.shape[0]
    if n == 0:
        return {}
    starts = np.concatenate(([0], np.flatnonzero(np.diff(columns.sid)) + 1))
    lengths = np.diff(np.append(starts, n))
    order = np.argsort(sids, kind="stable")
    found = np.searchsorted(sids, columns.sid[starts], sorter=order)
    at = order[np.minimum(found, max(len(order) - 1, 0))]
    if not len(order) or not np.array_equal(sids[at], columns.sid[starts]):
        raise StoreError("the store changed during a read (observations of a series not "
                         "read): was the read outside a transaction?")
    run_code, run_row = code[at], place[at]
    del code, place, order, found, at
    code_of_row = np.repeat(run_code, lengths)
    masks = {name: mask for name, code in codes.items() if (mask := code_of_row == code).any()}
    del code_of_row
    whole = len(masks) == 1  # one indicator: its block takes the columns as they are

    def split(column: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        return {name: column if whole else column[mask] for name, mask in masks.items()}

    empty = np.empty(0, dtype=np.int64)
    columns.sid = empty
    row = split(np.repeat(run_row, lengths))
    period = split(columns.period.astype(np.int32))
    columns.period = empty
    value = split(columns.value)
    columns.value = empty.astype(np.float64)
    denominator = split(columns.denominator)
    columns.denominator = empty.astype(np.float64)
    flags = split(columns.flags.astype(np.int32))
    columns.flags = empty
    out: dict[str, SeriesBlock] = {}
    for name in masks:
        ids, labs = members[name]
        out[name] = SeriesBlock(
            indicator=name, series_ids=ids, labels=labs, row=row.pop(name),
            period=period.pop(name), value=value.pop(name),
            denominator=denominator.pop(name), provisional=(flags[name] & 1) == 1,
            revisions=flags.pop(name) >> 1)
    return out


def iter_block(block: SeriesBlock) -> Iterator[tuple[dict[str, str], int, float]]:
    """Yield (labels, period, value) for every observation of a block (for tests and tools)."""
    for k in range(len(block)):
        yield block.labels[int(block.row[k])], int(block.period[k]), float(block.value[k])


def trim_block(block: SeriesBlock, since: int) -> SeriesBlock:
    """Return ``block`` without its observations of periods before ``since`` (``block``
    itself when it has none); every series keeps its row, with or without observations."""
    keep = block.period >= since
    if keep.all():
        return block
    return SeriesBlock(
        indicator=block.indicator, series_ids=block.series_ids, labels=block.labels,
        row=block.row[keep], period=block.period[keep], value=block.value[keep],
        denominator=block.denominator[keep], provisional=block.provisional[keep],
        revisions=block.revisions[keep])


def merge_blocks(old: SeriesBlock, new: SeriesBlock, first: int) -> SeriesBlock:
    """Return ``old`` with the observations of ``new``'s series from period ``first`` on
    replaced by ``new``'s (what ``read_changes`` returns after a poll: every period of
    ``new`` is ``first`` or later).

    1. give each of ``new``'s series its row in ``old`` (series new to the store are
       appended);
    2. drop ``old``'s rows of those series from ``first`` on;
    3. merge ``new``'s observations in, in order of series then period.

    Step 3 is one pass over ``old``, not a sort of the whole block: what ``old`` keeps
    of a series ``new`` has is all before ``first``, so each new observation goes after
    every kept one of its series and of the series before. (A new month for 500,000
    series merged into 18 million observations, a worker's share at 1M: a ``lexsort``
    of the whole block took 3.3 CPU-seconds.)
    """
    if len(new) and int(new.period.min()) < first:
        raise ValueError(f"merge_blocks: {new.indicator} has periods before {first}")
    index = {sid: row for row, sid in enumerate(old.series_ids)}
    series_ids = list(old.series_ids)
    labels = list(old.labels)
    mapping = np.empty(len(new.series_ids), dtype=np.int32)
    for local, sid in enumerate(new.series_ids):
        at = index.get(sid)
        if at is None:
            at = index[sid] = len(series_ids)
            series_ids.append(sid)
            labels.append(new.labels[local])
        mapping[local] = at
    touched = np.zeros(len(series_ids), dtype=bool)
    touched[mapping[np.unique(new.row)]] = True
    dropped = touched[old.row] & (old.period >= first)
    # A period none of ``old``'s series had (a new month) drops nothing: the columns are
    # then read in place, not copied first (a worker's share at 1M: 72 MB a column, each
    # copy's pages faulted in fresh, 1.2-1.5 CPU-s of kernel time a new month).
    keep: npt.NDArray[np.bool_] | slice = ~dropped if dropped.any() else slice(None)
    kept_row = old.row[keep]
    new_row = mapping[new.row]
    order = np.lexsort((new.period, new_row))  # new's observations alone: a small sort
    new_row = new_row[order]
    slots = np.searchsorted(kept_row, new_row, side="right") \
        + np.arange(new_row.shape[0], dtype=np.int64)
    size = kept_row.shape[0] + new_row.shape[0]
    olds = np.ones(size, dtype=bool)
    olds[slots] = False

    def merged(kept: np.ndarray, added: np.ndarray) -> Any:
        out = np.empty(size, dtype=kept.dtype)
        out[olds] = kept
        out[slots] = added
        return out

    return SeriesBlock(
        indicator=old.indicator, series_ids=series_ids, labels=labels,
        row=merged(kept_row, new_row), period=merged(old.period[keep], new.period[order]),
        value=merged(old.value[keep], new.value[order]),
        denominator=merged(old.denominator[keep], new.denominator[order]),
        provisional=merged(old.provisional[keep], new.provisional[order]),
        revisions=merged(old.revisions[keep], new.revisions[order]))
