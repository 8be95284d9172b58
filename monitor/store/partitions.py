"""Reading one partition of the series: what a distributed evaluation's worker reads.

A worker is handed the store's URL and its partition's series filter, never the data,
and reads only its share, so its memory follows its share:

1. read the series (id, indicator, labels, and the values of the key labels taken out
   by the database) of the indicators, keep those whose key values the filter accepts
   (the filter is the rules' partition function; the store knows no rules);
2. read the kept series' observations — on PostgreSQL with one array parameter
   (``= ANY``), on SQLite through a temporary table filled in bulk — never one bound
   parameter per series in a statement;
3. split them into one columnar block per indicator, as ``ObservationStore.read`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from monitor.store import Store
from monitor.store.observations import SeriesBlock, _blocks, _Columns, _pg_columns

KeyFilter = Callable[[Sequence[str]], bool]


def read_partition(store: Store, indicator_ids: list[str], key: Sequence[str],
                   keep: KeyFilter) -> dict[str, SeriesBlock]:
    """Return one block per indicator of ``indicator_ids`` holding the series whose
    ``key`` labels' values (absent: the empty string) ``keep`` accepts; indicators
    without such observations are absent."""
    if not indicator_ids:
        return {}
    marks = ",".join("?" * len(indicator_ids))
    pg = not store.is_sqlite
    # The key's values are taken out of the labels by the database: the series a
    # partition does not keep are never parsed here (a JSON parse each is most of it).
    if pg:
        values = "".join(", labels::json ->> ?" for _ in key)
        args: list[object] = [*key, *indicator_ids]
    else:
        values = "".join(", json_extract(labels, ?)" for _ in key)
        args = [*(f'$."{name}"' for name in key), *indicator_ids]
    with store.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            sql = (f"SELECT id, indicator_id, labels{values} FROM series "  # noqa: S608
                   f"WHERE indicator_id IN ({marks}) ORDER BY indicator_id, id")
            cur.execute(sql.replace("?", "%s") if pg else sql, args)
            width = len(key)
            series = [row[:3] for row in cur.fetchall()
                      if keep([value or "" for value in row[3:3 + width]])]
            if not series:
                return {}
            ids = [int(row[0]) for row in series]
            if pg:
                columns = _pg_columns(cur, "WHERE series_id = ANY(%s)", [ids])
            else:
                columns = _sqlite_columns(cur, ids)
        finally:
            cur.close()
        conn.rollback()
    return _blocks(series, columns)


def _sqlite_columns(cur: object, ids: list[int]) -> _Columns:
    """Return the observations of series ``ids`` as columns sorted by series and period."""
    execute = cur.execute  # type: ignore[attr-defined]
    execute("CREATE TEMP TABLE IF NOT EXISTS partition_series (id INTEGER PRIMARY KEY)")
    execute("DELETE FROM partition_series")
    cur.executemany("INSERT INTO partition_series (id) VALUES (?)",  # type: ignore[attr-defined]
                    [(i,) for i in ids])
    execute("SELECT o.series_id, o.period, o.value, o.denominator, "
            "o.provisional + 2 * o.revisions FROM observation o "
            "JOIN partition_series p ON p.id = o.series_id ORDER BY o.series_id, o.period")
    chunks = [np.empty((0, 5), dtype=np.float64)]
    while rows := cur.fetchmany(250_000):  # type: ignore[attr-defined]
        chunks.append(np.array(rows, dtype=np.float64).reshape(-1, 5))
    execute("DROP TABLE partition_series")
    table = np.concatenate(chunks)
    return _Columns(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64),
                    table[:, 2].copy(), table[:, 3].copy(), table[:, 4].astype(np.int64))
