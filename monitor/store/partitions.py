"""Reading one partition of the series: what a distributed evaluation's worker reads.

A worker is handed the store's URL, the partition key and its partition's number, never
the data, and reads only its share, so its read and its memory follow its share:

1. read the series (id, indicator, labels) of the indicators whose stored position
   (``series.part``, see ``store/partkey.py``) is in the partition's range — an index
   range per indicator — when the stored key is the reader's and did not change during
   the read; else read every series' key values (taken out of the labels by the
   database) and keep those whose position under the reader's key is the partition's;
2. read the kept series' observations — on PostgreSQL with one array parameter
   (``= ANY``), on SQLite with one JSON list (``json_each``) — never one bound
   parameter per series in a statement;
3. split them into one columnar block per indicator, as ``ObservationStore.read`` does.

:func:`set_key` stores a key and every series' position under it (once per key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from monitor.store import Store
from monitor.store.observations import (
    IntArray,
    SeriesBlock,
    _blocks,
    _series_rows,
    held_series,
    read_cursor,
    series_columns,
    stored_series,
    with_labels,
)
from monitor.store.partkey import META_KEY, PartitionKey, partition_of, span, stored_key


def set_key(store: Store, key: PartitionKey) -> int:
    """Store ``key`` as the partition key and every series' position under it, in one
    transaction; return the series positioned (0 when ``key`` was the stored one)."""
    pg = not store.is_sqlite
    spec = key.spec()
    with store.engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            stored, generation = stored_key(cur, pg, lock="FOR UPDATE")
            if stored == spec:
                return 0
            rows = _key_values(cur, pg, key, "", [])
            ids = [int(row[0]) for row in rows]
            parts = [key.position([value or "" for value in row[3:]]) for row in rows]
            if pg:
                cur.execute("UPDATE series s SET part = u.p FROM unnest(%s::bigint[], "
                            "%s::bigint[]) AS u(id, p) WHERE s.id = u.id", (ids, parts))
            else:
                cur.executemany("UPDATE series SET part = ? WHERE id = ?",
                                zip(parts, ids, strict=True))
            value = json.dumps({"spec": spec, "generation": generation + 1})
            sql = ("INSERT INTO monitor_meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                   "DO UPDATE SET value = excluded.value")
            cur.execute(sql.replace("?", "%s") if pg else sql, (META_KEY, value))
        finally:
            cur.close()
    return len(ids)


def _key_values(cur: Any, pg: bool, key: PartitionKey, where: str, args: list[object],
                *, labels: bool = True) -> list[tuple[Any, ...]]:
    """Return (id, indicator, labels, *key values) of the series ``where`` selects: the
    key's values taken out of the labels by the database (a JSON parse each in Python is
    most of the cost). ``labels`` False: None for the labels."""
    if pg:
        values = "".join(", labels::json ->> %s" for _ in key.names)
        names: list[object] = list(key.names)
    else:
        values = "".join(", json_extract(labels, ?)" for _ in key.names)
        names = [f'$."{name}"' for name in key.names]
    text = "labels" if labels else "NULL"
    sql = (f"SELECT id, indicator_id, {text}{values} FROM series {where} "  # noqa: S608
           "ORDER BY indicator_id, id")
    cur.execute(sql.replace("?", "%s") if pg else sql, [*names, *args])
    return list(cur.fetchall())


def read_partition(store: Store, indicator_ids: list[str], key: PartitionKey, index: int,
                   partitions: int, *, series_ids: IntArray | None = None,
                   since: int | None = None, held: Mapping[str, SeriesBlock] | None = None
                   ) -> dict[str, SeriesBlock]:
    """Return one block per indicator of ``indicator_ids`` holding the series of
    partition ``index`` of ``partitions`` under ``key`` (all of them for one partition);
    indicators without such observations are absent. ``series_ids`` (ascending): only
    those of the partition's series (what a poll touched); ``since``: their observations
    from that period on; ``held``: the blocks they will be merged into, whose series'
    labels are taken from there, not read again (``with_labels``)."""
    if not indicator_ids:
        return {}
    pg = not store.is_sqlite
    marks = ",".join(("%s" if pg else "?") for _ in indicator_ids)
    where = f"WHERE indicator_id IN ({marks})"
    with read_cursor(store.engine, pg) as cur:
        series = _touched(cur, pg, key, indicator_ids, index, partitions, series_ids,
                          held) if series_ids is not None and held is not None else None
        if series is None:
            series = _listed(cur, pg, key, where, indicator_ids, index, partitions,
                             series_ids, held)
        # One indicator at a time: its columns are its block (no copy of them for each
        # indicator), and the read's transient memory is one indicator's.
        out: dict[str, SeriesBlock] = {}
        for name in dict.fromkeys(row[1] for row in series):  # as the series are sorted
            mine = [row[:3] for row in series if row[1] == name]
            ids = [int(row[0]) for row in mine]
            columns = series_columns(cur, pg, ids, since, thin=series_ids is not None)
            out.update(_blocks(mine, columns))
    return out


def _listed(cur: Any, pg: bool, key: PartitionKey, where: str, indicator_ids: list[str],
            index: int, partitions: int, series_ids: IntArray | None,
            held: Mapping[str, SeriesBlock] | None) -> list[tuple[Any, ...]]:
    """Return (id, indicator, labels) of the partition's series, sorted by indicator,
    then id: every one (read from the store), or those of ``series_ids``; with their
    labels taken from the blocks ``held`` where those hold them (``with_labels``)."""
    labels = held is None
    if partitions <= 1:
        series = _key_values(cur, pg, PartitionKey(()), where, [*indicator_ids],
                             labels=labels)
    else:
        series = _ranged(cur, pg, key, where, indicator_ids, index, partitions,
                         labels=labels)
    if series_ids is not None:
        held_ids = np.fromiter((row[0] for row in series), dtype=np.int64, count=len(series))
        series = [series[i] for i in np.flatnonzero(np.isin(held_ids, series_ids)).tolist()]
    if held is not None:
        series = with_labels(cur, pg, [row[:3] for row in series], held)
    return series


def _touched(cur: Any, pg: bool, key: PartitionKey, indicator_ids: list[str], index: int,
             partitions: int, series_ids: IntArray, held: Mapping[str, SeriesBlock]
             ) -> list[tuple[int, str, Any]] | None:
    """Return (id, indicator, labels) of the partition's series among ``series_ids``
    (ascending: what a poll touched), sorted by indicator, then id, without listing the
    partition's series: those the blocks ``held`` (this partition's) hold are found
    there, with their labels; of the others, the store gives those positioned in this
    partition (new series). None when the stored positions are not under ``key`` (or
    moved during the read): then the partition's series are listed (``_listed``).

    A new month for every one of 1,000,000 series made each worker list its 500,000
    series, keep those the poll touched, and find each one's labels in its blocks by a
    lookup a series."""
    spec, generation = stored_key(cur, pg)
    if partitions > 1 and spec != key.spec():
        return None
    known, unknown = held_series(held, indicator_ids, series_ids)
    found: list[tuple[Any, ...]] = []
    if unknown.any():
        found = stored_series(cur, pg, indicator_ids, series_ids[unknown].tolist(),
                              span(index, partitions) if partitions > 1 else None)
        if partitions > 1 and stored_key(cur, pg)[1] != generation:
            return None
    return _series_rows(known, found)


def _ranged(cur: Any, pg: bool, key: PartitionKey, where: str, indicator_ids: list[str],
            index: int, partitions: int, *, labels: bool = True) -> list[tuple[Any, ...]]:
    """Return (id, indicator, labels) of partition ``index``'s series: a range of the
    stored positions when they are under ``key`` (and stayed so during the read), else
    every series' key values filtered here. ``labels`` False: None for the labels where
    the range is read."""
    spec, generation = stored_key(cur, pg)
    if spec == key.spec():
        lo, hi = span(index, partitions)
        mark = "%s" if pg else "?"
        text = "labels" if labels else "NULL"
        cur.execute(f"SELECT id, indicator_id, {text} FROM series {where} "  # noqa: S608
                    f"AND part >= {mark} AND part < {mark} ORDER BY indicator_id, id",
                    [*indicator_ids, lo, hi])
        series = list(cur.fetchall())
        if stored_key(cur, pg)[1] == generation:
            return series
    width = len(key.names)
    return [row[:3] for row in _key_values(cur, pg, key, where, [*indicator_ids])
            if partition_of(key.position([v or "" for v in row[3:3 + width]]),
                            partitions) == index]
