"""Alert state and transitions: loaded at start, saved after each evaluation in one
transaction, so a restart restores every alert exactly (no `for` timer restarts).

Both directions are bulk, because a cycle at 100,000 series can change hundreds of
thousands of alerts: rows are read through the driver's cursor (no ORM object per row)
and written with ``executemany`` of one upsert on SQLite and ``COPY`` on PostgreSQL —
never a statement with one bound parameter per alert.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from monitor.alerts.state import AlertRecord, Transition
from monitor.jsontext import encoder
from monitor.model import STATE_TEXT, AlertState
from monitor.store.db import BULK_ROWS, JsonCodec, bulk_cache, copy_upsert, reader, stamper
from monitor.store.history import copy_transitions
from monitor.store.tables import AlertRow

ALERT = AlertRow.metadata.tables["alert"]
TRANSITION = AlertRow.metadata.tables["alert_transition"]

HELD = "held:flapping"  # claimed_by of transitions the notifier must not send
COLUMNS = ("id", "rule", "group_name", "labels", "annotations", "state", "value",
           "explanation", "active_since", "fired_at", "resolved_at", "keep_firing_until",
           "last_evaluated", "pending_evaluations", "pending_periods", "last_period",
           "history", "flapping", "notified_state", "updated_at")
EVENT_COLUMNS = ("id", "alert_id", "rule", "group_name", "labels", "annotations", "from_state",
                 "to_state", "value", "explanation", "at", "claimed_by", "claimed_at")
_UPSERT = (f"INSERT INTO alert ({', '.join(COLUMNS)}) VALUES "  # noqa: S608
           f"({', '.join('?' * len(COLUMNS))}) ON CONFLICT (id) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:]))
# A stored alert's id, rule, group and labels never change (the id hashes them): SQLite
# rewrites the entries of every index whose column a statement sets (and an upsert tries
# the insert first), so a record the table holds is written by an update of the rest.
_MOVING = ("state", "annotations", "value", "explanation", "active_since", "fired_at",
           "resolved_at", "keep_firing_until", "last_evaluated", "pending_evaluations",
           "pending_periods", "last_period", "history", "flapping", "notified_state", "updated_at")
_UPDATE = (f"UPDATE alert SET {', '.join(f'{c} = ?' for c in _MOVING)} "  # noqa: S608
           "WHERE id = ?")



@dataclass(frozen=True)
class Saved:
    """What one :meth:`AlertStore.save` wrote, for a reader in the same process.

    ``transitions`` are the transitions by the id each row was given. The notifier
    claims these rows as any others, but builds them from here instead of decoding them
    again (the dicts must not be changed; none is). The text the save encoded is not
    kept: the notifier's copies of the alerts are made from the rows by the database
    (``NotifyTx.save_claimed``), and the text of 157,000 alerts was 90 MB held until the
    notifier ended.
    """

    transitions: Mapping[int, Transition]


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


class AlertStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"

    def load(self, groups: Collection[str] | None = None) -> dict[str, AlertRecord]:
        """Return every stored alert record by id, or those of the rule ``groups``."""
        if groups is not None and not groups:
            return {}
        when = reader()
        sql = f"SELECT {', '.join(COLUMNS)} FROM alert"  # noqa: S608
        args: tuple[Any, ...] = ()
        if groups is not None:  # one parameter however many groups
            if self._pg:
                sql += " WHERE group_name = ANY(%s)"
                args = (list(groups),)
            else:
                sql += " WHERE group_name IN (SELECT value FROM json_each(?))"
                args = (json.dumps(list(groups)),)
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            cur = raw.cursor()
            try:
                if args:
                    cur.execute(sql, args)
                else:
                    cur.execute(sql)
                rows = cur.fetchall()
            finally:
                cur.close()
            conn.rollback()
        out: dict[str, AlertRecord] = {}
        for (alert_id, rule, group, labels, notes, state, value, explanation,
             active_since, fired_at, resolved_at, keep_firing_until, last_evaluated,
             pending_evaluations, pending_periods, last_period, history, flapping,
             notified_state, _updated) in rows:
            out[alert_id] = AlertRecord(
                id=alert_id, rule=rule, labels=json.loads(labels), state=AlertState(state),
                annotations=json.loads(notes), value=value, explanation=explanation,
                active_since=when(active_since), fired_at=when(fired_at),
                resolved_at=when(resolved_at), keep_firing_until=when(keep_firing_until),
                last_evaluated=when(last_evaluated),
                pending_evaluations=int(pending_evaluations),
                pending_periods=int(pending_periods), last_period=last_period,
                history=history, flapping=bool(flapping),
                notified_state=AlertState(notified_state), group=group)
        return out

    def save(self, changed: Iterable[AlertRecord], transitions: Iterable[Transition],
             now: datetime, *, removed: Iterable[str] = (),
             guard: Callable[[Connection], None] | None = None,
             stored: Mapping[str, AlertRecord] | None = None) -> Saved:
        """Persist changed records and their transitions atomically; return the
        transitions by the id each row got (ids in the order of ``transitions``).

        ``guard`` runs first in the same transaction (a replica checking it still holds
        its shards); whatever it raises rolls the transaction back and propagates.
        ``stored``: the records the store holds as far as the caller knows (what it last
        loaded or saved). A changed record among them is written by an update of the
        fields that move (SQLite) or the upsert (PostgreSQL); the rest by the upsert
        (SQLite) or a ``COPY`` into the table (PostgreSQL). Should the caller be wrong
        either way (a row removed or written behind its back), those records take the
        upsert instead: nothing is lost and nothing fails.
        """
        ts = stamper(self._pg, copy=True)  # PostgreSQL: rows for COPY alone
        # A record and its transition share their labels and annotations dicts. The
        # labels' text is kept for the transition (short, and the same every cycle); the
        # annotations are encoded for each (at 100k, their text held through the save was
        # 55 MB of the first cycle's peak, encoding them again 0.2 CPU-s).
        encode = JsonCodec().encode
        note = encoder(sort_keys=True)
        records = list(changed)
        moves = list(transitions)
        stamp = ts(now)
        gone = [(alert_id,) for alert_id in removed]
        if not records and not moves and not gone:
            return Saved({})
        # Records the table holds (``known``: updated, or upserted) and new ones; the
        # caller not saying, every record may be either (the upsert).
        known: list[AlertRecord] = []
        if stored is None and self._pg:
            known, records = records, []
        elif stored:
            fresh: list[AlertRecord] = []
            for r in records:
                (fresh if r.id not in stored else known).append(r)
            records = fresh
        with self.engine.begin() as conn:
            if guard is not None:
                guard(conn)
            if len(records) + len(known) + len(moves) >= BULK_ROWS:
                bulk_cache(conn)
            raw = conn.connection.driver_connection
            assert raw is not None
            cur = raw.cursor()
            try:
                # The ids are given here, not left to the database, so the caller knows
                # which row is which transition: PostgreSQL's sequence hands out a block
                # (other replicas' rows may fall between, as with the column default);
                # SQLite has one writer (BEGIN IMMEDIATE), so the next ids are free.
                ids = _new_ids(cur, len(moves), self._pg)
                # Each row is made as the driver takes it (generators): at 100,000 alerts
                # the rows of a cycle held at once were over a hundred megabytes.
                event_rows = ((i, t.alert_id, t.rule, t.group, encode(t.labels),
                               note(t.annotations),
                               STATE_TEXT[t.from_state], STATE_TEXT[t.to_state], _float(t.value),
                               t.explanation, ts(t.at),
                               None if t.notify else HELD, None if t.notify else stamp)
                              for i, t in zip(ids, moves, strict=True))
                if self._pg:
                    _save_postgres(cur, lambda rs: _record_rows(rs, encode, note, ts, stamp),
                                   records, known, event_rows if moves else None, gone)
                else:
                    _update_sqlite(cur, known, encode, note, ts, stamp)
                    if records:
                        cur.executemany(_UPSERT, _record_rows(records, encode, note, ts, stamp))
                    if moves:
                        cur.executemany(
                            f"INSERT INTO alert_transition ({', '.join(EVENT_COLUMNS)}) "  # noqa: S608
                            f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})", event_rows)
                    if gone:
                        cur.executemany("DELETE FROM alert WHERE id = ?", gone)
            finally:
                cur.close()
            if moves:  # the alert history's copy, in the same transaction
                copy_transitions(conn, ids)
        return Saved(dict(zip(ids, moves, strict=True)))


    def transitions(self, limit: int = 1000) -> list[dict[str, object]]:
        """Return the newest transitions, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(TRANSITION).order_by(
                TRANSITION.c.id.desc()).limit(limit)).all()
        return [dict(row._mapping) for row in rows]


def _new_ids(cur: Any, count: int, postgres: bool) -> list[int]:
    """Return ``count`` unused transition ids, ascending (the notifier claims in id order)."""
    if not count:
        return []
    if postgres:
        cur.execute("SELECT nextval(pg_get_serial_sequence('alert_transition', 'id')) "
                    "FROM generate_series(1, %s)", (count,))
        return sorted(int(row[0]) for row in cur.fetchall())
    cur.execute("SELECT coalesce(max(id), 0) FROM alert_transition")
    first = int(cur.fetchone()[0]) + 1
    return list(range(first, first + count))


def _save_postgres(cur: Any,
                   rows: Callable[[Sequence[AlertRecord]], Iterable[tuple[Any, ...]]],
                   fresh: Sequence[AlertRecord], known: Sequence[AlertRecord],
                   events: Iterable[tuple[Any, ...]] | None, gone: Sequence[tuple[str]]
                   ) -> None:
    """Write with COPY: records the table holds (``known``) into a temporary table merged
    by one upsert; new ones (``fresh``) and transitions straight into their tables, the
    server storing rows while the next are made; removed ids as one array parameter.
    None: no transitions. A fresh record already there after all (written behind the
    caller's back) rolls its COPY back and the fresh records take the upsert."""
    if known:
        copy_upsert(cur, "alert", COLUMNS, rows(known))
    if fresh:
        from psycopg.errors import UniqueViolation  # PostgreSQL's driver: not on SQLite

        cur.execute("SAVEPOINT fresh_alerts")
        try:
            with cur.copy(f"COPY alert ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows(fresh):
                    copy.write_row(row)
        except UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT fresh_alerts")
            copy_upsert(cur, "alert", COLUMNS, rows(fresh))
        else:
            cur.execute("RELEASE SAVEPOINT fresh_alerts")
    if events is not None:
        with cur.copy(f"COPY alert_transition ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
                      ) as copy:
            for row in events:
                copy.write_row(row)
    if gone:
        cur.execute("DELETE FROM alert WHERE id = ANY(%s)", ([g for (g,) in gone],))


def _record_rows(records: Iterable[AlertRecord], encode: Callable[[Mapping[str, Any]], str],
                 note: Callable[[Mapping[str, Any]], str],
                 ts: Callable[[datetime | None], Any], stamp: Any
                 ) -> Iterator[tuple[Any, ...]]:
    """The rows of ``records`` in the order of COLUMNS, each made as the driver takes it."""
    return ((r.id, r.rule, r.group, encode(r.labels), note(r.annotations), STATE_TEXT[r.state],
             _float(r.value), r.explanation, ts(r.active_since), ts(r.fired_at),
             ts(r.resolved_at), ts(r.keep_firing_until), ts(r.last_evaluated),
             int(r.pending_evaluations), int(r.pending_periods),
             None if r.last_period is None else int(r.last_period), r.history,
             bool(r.flapping), STATE_TEXT[r.notified_state], stamp)
            for r in records)


def _moving_rows(records: Iterable[AlertRecord], note: Callable[[Mapping[str, Any]], str],
                 ts: Callable[[datetime | None], Any], stamp: Any) -> Iterator[tuple[Any, ...]]:
    """The parameters of ``_UPDATE`` for ``records``."""
    return ((STATE_TEXT[r.state], note(r.annotations), _float(r.value), r.explanation,
             ts(r.active_since), ts(r.fired_at), ts(r.resolved_at), ts(r.keep_firing_until),
             ts(r.last_evaluated), int(r.pending_evaluations), int(r.pending_periods),
             None if r.last_period is None else int(r.last_period), r.history,
             bool(r.flapping), STATE_TEXT[r.notified_state], stamp, r.id)
            for r in records)


def _update_sqlite(cur: Any, known: Sequence[AlertRecord],
                   encode: Callable[[Mapping[str, Any]], str],
                   note: Callable[[Mapping[str, Any]], str],
                   ts: Callable[[datetime | None], Any], stamp: Any) -> None:
    """Write records the table holds by an update of what moves; when fewer rows matched
    than records were given (one was removed behind the caller's back), upsert them all:
    the rows that matched are written again, the same."""
    if not known:
        return
    # In the order given (the rules', each in its series' order): the order the rows were
    # first inserted, so the updates walk the table's wide rows page after page. Sorted
    # by id (the index's order) they walk the small index in turn and the rows at
    # random, which measured slower.
    cur.executemany(_UPDATE, _moving_rows(known, note, ts, stamp))
    if cur.rowcount != len(known):
        cur.executemany(_UPSERT, _record_rows(known, encode, note, ts, stamp))
