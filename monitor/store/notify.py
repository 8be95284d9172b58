"""The notifier's tables: claimed transitions, its view of alerts, the notification log,
the outbox and silences.

Two kinds of access:

- :meth:`NotifyStore.transaction` yields a :class:`NotifyTx` for the pipeline's one
  transaction (claim transitions → update alerts → write log and outbox). On PostgreSQL
  it takes a transaction-scoped advisory lock, so replicas flush one at a time; SQLite
  serialises writers with ``BEGIN IMMEDIATE`` already.
- The outbox methods (claim with a lease, deliver, retry, dead-letter, resend) each run
  in their own short transaction, so a slow send never holds a lock.

Claiming is ``UPDATE … WHERE <still claimable>`` with exactly one row changed: two
replicas never take the same transition or the same outbox row.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Container, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from monitor.alerts.state import Transition
from monitor.errors import StoreError
from monitor.jsontext import encoder
from monitor.matchers import Matcher
from monitor.model import STATE_TEXT, AlertEvent, utc
from monitor.notify.notification import FIRING, RESOLVED, NotifyAlert
from monitor.notify.pipeline import LogEntry
from monitor.notify.silences import Silence, recurrence_dict, recurrence_from
from monitor.store.db import (
    BULK_ROWS,
    JsonCodec,
    bulk_cache,
    copy_upsert,
    one_of,
    reader,
    stamper,
)
from monitor.store.history import insert_events
from monitor.store.tables import (
    AlertRow,
    MetaRow,
    NotificationLogRow,
    NotificationRow,
    NotifyAlertRow,
    SilenceRow,
    TransitionRow,
)

TRANSITION = TransitionRow.metadata.tables["alert_transition"]
ALERT = AlertRow.metadata.tables["alert"]
NOTIFY_ALERT = NotifyAlertRow.metadata.tables["notify_alert"]
OUTBOX = NotificationRow.metadata.tables["notification"]
LOG = NotificationLogRow.metadata.tables["notification_log"]
SILENCE = SilenceRow.metadata.tables["silence"]
META = MetaRow.metadata.tables["monitor_meta"]

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
SUPERSEDED = "superseded"
ADVISORY_LOCK = 0x6B70696E  # "kpin": one notifier flush at a time across replicas


def _dt(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


@dataclass(frozen=True)
class TransitionEvent:
    """One claimed alert transition."""

    id: int
    alert_id: str
    rule: str
    labels: dict[str, str]
    annotations: dict[str, str]
    from_state: str
    to_state: str
    value: float | None
    explanation: str
    at: datetime

    @property
    def notifiable(self) -> bool:
        """True for a transition to firing, or from firing to resolved."""
        return self.to_state == FIRING or (self.to_state == RESOLVED
                                           and self.from_state == FIRING)


@dataclass(frozen=True)
class NewMessage:
    """An outbox row to insert: one notification for one integration of a receiver."""

    receiver: str
    integration: str
    group_key: str
    payload: str
    earliest_fired_at: datetime | None = None


@dataclass(frozen=True)
class OutboxItem:
    """One outbox row as stored."""

    id: int
    receiver: str
    integration: str
    group_key: str
    payload: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None
    last_error: str
    delivered_at: datetime | None
    earliest_fired_at: datetime | None

    @property
    def lane(self) -> tuple[str, str]:
        return self.receiver, self.integration


def _item(row: Any) -> OutboxItem:
    m = row._mapping
    return OutboxItem(
        id=m["id"], receiver=m["receiver"], integration=m["integration"],
        group_key=m["group_key"], payload=m["payload"], status=m["status"],
        attempts=m["attempts"], created_at=utc(m["created_at"]),
        next_attempt_at=utc(m["next_attempt_at"]), claimed_by=m["claimed_by"],
        claimed_until=_dt(m["claimed_until"]), last_error=m["last_error"],
        delivered_at=_dt(m["delivered_at"]), earliest_fired_at=_dt(m["earliest_fired_at"]),
    )


_ALERT_COLUMNS = ("alert_id", "rule", "labels", "annotations", "status", "value",
                  "explanation", "starts_at", "ends_at", "updated_at")


def _alert(row: Any) -> NotifyAlert:
    m = row._mapping
    return NotifyAlert(
        alert_id=m["alert_id"], rule=m["rule"], labels=json.loads(m["labels"]),
        annotations=json.loads(m["annotations"]), status=m["status"], value=m["value"],
        explanation=m["explanation"], starts_at=utc(m["starts_at"]),
        ends_at=_dt(m["ends_at"]), updated_at=utc(m["updated_at"]),
    )


def _entry(row: Any) -> tuple[tuple[str, str], LogEntry]:
    m = row._mapping
    return (m["receiver"], m["group_key"]), LogEntry(
        receiver=m["receiver"], group_key=m["group_key"],
        firing=frozenset(json.loads(m["firing"] or "[]")),
        resolved=frozenset(json.loads(m["resolved"] or "[]")),
        sent_at=utc(m["sent_at"]), thread_id=m["message_id"])


def _silence(row: Any) -> Silence:
    m = row._mapping
    recurrence = json.loads(m["recurrence"]) if m["recurrence"] else None
    return Silence(
        id=m["id"], matchers=tuple(Matcher.from_dict(x) for x in json.loads(m["matchers"])),
        starts_at=utc(m["starts_at"]), ends_at=utc(m["ends_at"]), created_by=m["created_by"],
        comment=m["comment"], recurrence=recurrence_from(recurrence),
        created_at=utc(m["created_at"]), expired_at=_dt(m["expired_at"]),
        until_period=m["until_period"],
    )


def _silence_row(silence: Silence) -> dict[str, Any]:
    recurrence = recurrence_dict(silence)
    return {
        "id": silence.id, "matchers": json.dumps([m.to_dict() for m in silence.matchers]),
        "starts_at": silence.starts_at, "ends_at": silence.ends_at,
        "created_by": silence.created_by, "comment": silence.comment,
        "recurrence": json.dumps(recurrence) if recurrence else None,
        "created_at": silence.created_at or silence.starts_at,
        "expired_at": silence.expired_at, "until_period": silence.until_period,
    }


class _Claimed(NamedTuple):
    """A claimed transition's row as ``claim_transitions`` reads it from the table."""

    id: int
    alert_id: str
    rule: str
    from_state: str
    to_state: str
    value: float | None
    explanation: str
    at: Any  # a datetime (PostgreSQL) or its text (SQLite)
    labels: str
    annotations: str


def _from_memory(row_id: int, move: Transition) -> TransitionEvent:
    """Return a claimed row as the transition it was saved from: the same dicts (not
    decoded) and values (each as written: the value as a float, the states' names)."""
    return TransitionEvent(
        id=row_id, alert_id=move.alert_id, rule=move.rule, labels=move.labels,
        annotations=move.annotations, from_state=STATE_TEXT[move.from_state],
        to_state=STATE_TEXT[move.to_state],
        value=None if move.value is None else float(move.value),
        explanation=move.explanation, at=utc(move.at))


@dataclass(frozen=True)
class Notified:
    """The ``notified`` history events of one message: one per alert it holds, with
    ``details[alert.status]`` (receiver, status, message id).

    The message was made of the notifier's alerts, which ``notify_alert`` holds as they
    were saved until the run ends: the store writes the events from there, in the
    message's order, by one ``INSERT … SELECT`` — not a row made and sent per alert (a
    message can hold 100,000). An alert the table does not hold is written from
    ``alerts``, as before."""

    alerts: Sequence[NotifyAlert]
    details: Mapping[str, Mapping[str, Any]]
    at: datetime


_EVENT_COLUMNS = ("alert_id, rule, group_name, labels, kind, from_state, to_state, value, "
                  "explanation, period, detail, at")
# The event of each (alert id, status) pair, in the message's order: as ``AlertEvent``s
# made by ``NotifyAlert.event`` would be written (the period from the annotations).
_NOTIFIED_SQLITE = (
    f"INSERT INTO alert_event ({_EVENT_COLUMNS}) "  # noqa: S608
    "SELECT a.alert_id, a.rule, '', a.labels, 'notified', '', '', a.value, a.explanation, "
    "coalesce(json_extract(a.annotations, '$.period_id'), ''), "
    "json_extract(?1, '$.\"' || json_extract(i.value, '$[1]') || '\"'), ?2 "
    "FROM json_each(?3) AS i "
    "JOIN notify_alert AS a ON a.alert_id = json_extract(i.value, '$[0]') ORDER BY i.key")
_NOTIFIED_POSTGRES = (
    f"INSERT INTO alert_event ({_EVENT_COLUMNS}) "  # noqa: S608
    "SELECT a.alert_id, a.rule, '', a.labels, 'notified', '', '', a.value, a.explanation, "
    "coalesce(a.annotations::json ->> 'period_id', ''), %s::json ->> j.status, %s "
    "FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS j(alert_id, status, n) "
    "JOIN notify_alert AS a ON a.alert_id = j.alert_id ORDER BY j.n")


_UPDATE_ALERT = ("ON CONFLICT (alert_id) DO UPDATE SET "
                 + ", ".join(f"{c} = excluded.{c}" for c in _ALERT_COLUMNS[1:]))
# The notifier's alert of each claimed transition row: the row's rule, labels,
# annotations, value and explanation; the status and times apply_transitions gave.
_CLAIMED_SQLITE = (
    f"INSERT INTO notify_alert ({', '.join(_ALERT_COLUMNS)}) "  # noqa: S608
    "SELECT t.alert_id, t.rule, t.labels, t.annotations, json_extract(j.value, '$[1]'), "
    "t.value, t.explanation, json_extract(j.value, '$[2]'), json_extract(j.value, '$[3]'), "
    "json_extract(j.value, '$[4]') FROM json_each(?) AS j "
    "JOIN alert_transition AS t ON t.id = json_extract(j.value, '$[0]') "
    "WHERE true " + _UPDATE_ALERT)  # "WHERE": SQLite's upsert after a join needs one
_CLAIMED_POSTGRES = (
    f"INSERT INTO notify_alert ({', '.join(_ALERT_COLUMNS)}) "  # noqa: S608
    "SELECT t.alert_id, t.rule, t.labels, t.annotations, j.status, t.value, t.explanation, "
    "j.starts, j.ends, j.updated FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], "
    "%s::timestamptz[], %s::timestamptz[]) AS j(id, status, starts, ends, updated) "
    "JOIN alert_transition AS t ON t.id = j.id " + _UPDATE_ALERT)


class NotifyTx:
    """The pipeline's operations inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # The labels and annotations read here (claimed transitions, alerts) are written
        # back in the same transaction (the notifier's alerts, the history): as read.
        self.codec = JsonCodec()

    def claim_transitions(self, owner: str, now: datetime, limit: int = 50_000,
                          known: Mapping[int, Transition] | None = None
                          ) -> list[TransitionEvent]:
        """Claim up to ``limit`` unclaimed transitions, oldest first; return the claimed ones.

        One ``UPDATE … WHERE id IN (the oldest unclaimed) AND claimed_by IS NULL
        RETURNING id, alert_id``: a row another notifier took first is skipped. A claimed
        row in ``known`` (the transitions this process just saved, by row id) is built
        from the transition in memory; only the others (another process's rows, or this
        one's before a restart) are read, and their labels and annotations decoded.
        """
        # Through the driver's cursor: a claim can return 100,000 rows, and SQLAlchemy's
        # result processing costs microseconds a row. ``now`` is written as SQLAlchemy
        # writes the column (``stamper``).
        postgres = self.conn.dialect.name == "postgresql"
        mark = "%s" if postgres else "?"
        raw = self.conn.connection.driver_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            cur.execute(
                f"UPDATE alert_transition SET claimed_by = {mark}, claimed_at = {mark} "  # noqa: S608
                "WHERE id IN (SELECT id FROM alert_transition WHERE claimed_by IS NULL "
                f"ORDER BY id LIMIT {mark}) AND claimed_by IS NULL RETURNING id, alert_id",
                (owner, stamper(postgres)(now), limit))
            claimed = cur.fetchall()
        finally:
            cur.close()
        held = known or {}
        events: list[TransitionEvent] = []
        unknown: list[int] = []
        for row_id, alert_id in claimed:
            move = held.get(row_id)
            if move is not None and move.alert_id == alert_id:
                events.append(_from_memory(row_id, move))
            else:
                unknown.append(row_id)
        if unknown:
            decode = self.codec.decode
            for r in (_Claimed._make(row) for row in self.conn.execute(
                    select(TRANSITION.c.id, TRANSITION.c.alert_id, TRANSITION.c.rule,
                           TRANSITION.c.from_state, TRANSITION.c.to_state,
                           TRANSITION.c.value, TRANSITION.c.explanation, TRANSITION.c.at,
                           TRANSITION.c.labels, TRANSITION.c.annotations)
                    .where(self._one_of(TRANSITION.c.id, unknown)))):
                events.append(TransitionEvent(
                    id=r.id, alert_id=r.alert_id, rule=r.rule, labels=decode(r.labels),
                    annotations=decode(r.annotations), from_state=r.from_state,
                    to_state=r.to_state, value=r.value, explanation=r.explanation,
                    at=utc(r.at if isinstance(r.at, datetime)
                           else datetime.fromisoformat(r.at))))
        events.sort(key=lambda e: e.id)
        return events

    def load_alerts(self, ids: Iterable[str] | None = None, *,
                    skip: Container[str] = ()) -> list[NotifyAlert]:
        """Return the alerts the notifier tracks (firing, and resolved not yet dropped):
        every one, or those of ``ids``; none of ``skip`` (alerts the caller holds as just
        saved: their rows are not decoded again). Read through the cursor: a run can read
        100,000.

        With ``skip`` and no ``ids``, the ids are read first and only the rows not skipped
        whole when they are fewer than half: a first cycle saves every alert a moment
        before the run reads them all, and 157,361 rows read only to be skipped cost more
        than the ids and an index lookup for the few others."""
        sql = f"SELECT {', '.join(_ALERT_COLUMNS)} FROM notify_alert"  # noqa: S608
        args: tuple[Any, ...] = ()
        postgres = self.conn.dialect.name == "postgresql"
        if ids is None and skip:
            every = [i for (i,) in self.conn.exec_driver_sql(
                "SELECT alert_id FROM notify_alert")]
            rest = [i for i in every if i not in skip]
            if 2 * len(rest) < len(every):
                return self.load_alerts(rest) if rest else []
        if ids is not None:  # one parameter however many ids
            if postgres:
                sql += " WHERE alert_id = ANY(%s)"
                args = (list(ids),)
            else:
                sql += " WHERE alert_id IN (SELECT value FROM json_each(?))"
                args = (json.dumps(list(ids)),)
        raw = self.conn.connection.driver_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            cur.execute(sql, args)
            rows = cur.fetchall()
        finally:
            cur.close()
        when = reader()
        loads = self.codec.decode
        return [NotifyAlert(alert_id=i, rule=r, labels=loads(lab), annotations=loads(notes),
                            status=st, value=v, explanation=ex,
                            starts_at=cast(datetime, when(start)), ends_at=when(end),
                            updated_at=when(upd))
                for i, r, lab, notes, st, v, ex, start, end, upd in rows if i not in skip]

    def alert_starts(self, ids: Collection[str]) -> dict[str, datetime]:
        """Return when each alert of ``ids`` the notifier tracks started (its row's
        ``starts_at``; none for an id it does not track). Nothing else of the rows is
        read: resolving an alert takes only its start from the table."""
        if not ids:
            return {}
        postgres = self.conn.dialect.name == "postgresql"
        # one parameter however many ids
        sql = "SELECT alert_id, starts_at FROM notify_alert WHERE alert_id = ANY(%s)" \
            if postgres else \
            "SELECT alert_id, starts_at FROM notify_alert WHERE alert_id IN " \
            "(SELECT value FROM json_each(?))"
        raw = self.conn.connection.driver_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            cur.execute(sql, (list(ids) if postgres else json.dumps(list(ids)),))
            rows = cur.fetchall()
        finally:
            cur.close()
        when = reader()
        return {i: cast(datetime, when(start)) for i, start in rows}

    def _one_of(self, col: Any, values: Iterable[Any]) -> Any:
        return one_of(col, values, self.conn.dialect.name)

    def save_alerts(self, alerts: Sequence[NotifyAlert]) -> None:
        """Insert or replace the given alerts (no id twice): one upsert executed for every
        row, or on PostgreSQL from ``BULK_ROWS`` rows one ``COPY`` merged by one upsert."""
        if not alerts:
            return
        postgres = self.conn.dialect.name == "postgresql"
        ts = stamper(postgres, copy=postgres and len(alerts) >= BULK_ROWS)
        dumps = self.codec.encode
        rows = [(a.alert_id, a.rule, dumps(a.labels), dumps(a.annotations),
                 a.status, a.value, a.explanation, ts(a.starts_at), ts(a.ends_at),
                 ts(a.updated_at or a.starts_at)) for a in alerts]
        mark = "%s" if postgres else "?"
        if len(rows) >= BULK_ROWS:
            bulk_cache(self.conn)
        raw = self.conn.connection.driver_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            if postgres and len(rows) >= BULK_ROWS:
                copy_upsert(cur, "notify_alert", _ALERT_COLUMNS, rows)
            else:
                cur.executemany(f"INSERT INTO notify_alert ({', '.join(_ALERT_COLUMNS)}) "  # noqa: S608
                                f"VALUES ({', '.join([mark] * len(_ALERT_COLUMNS))}) "
                                "ON CONFLICT (alert_id) DO UPDATE SET "
                                + ", ".join(f"{c} = excluded.{c}" for c in _ALERT_COLUMNS[1:]),
                                rows)
        finally:
            cur.close()

    def _bulk_cursor(self, rows: int) -> Any:
        """The driver's cursor in this transaction, with SQLite's larger page cache for a
        statement of ``rows`` rows from ``BULK_ROWS`` (see ``bulk_cache``)."""
        raw = self.conn.connection.driver_connection
        assert raw is not None
        if rows >= BULK_ROWS:
            bulk_cache(self.conn)
        return raw.cursor()

    def save_claimed(self, alerts: Mapping[str, NotifyAlert], rows: Mapping[str, int]
                     ) -> None:
        """Insert or replace ``alerts``, each made from the claimed transition whose row id
        ``rows`` gives (``apply_transitions``: its rule, labels, annotations, value and
        explanation; the status and times given here): the database copies those from
        the row in this transaction by one ``INSERT … SELECT``, so nothing is encoded
        and sent again per alert (157,000 in a first cycle at 100k series)."""
        if not alerts:
            return
        postgres = self.conn.dialect.name == "postgresql"
        ts = stamper(postgres)
        cur = self._bulk_cursor(len(alerts))
        try:
            if postgres:
                ids, statuses, starts, ends, updated = [], [], [], [], []
                for alert_id, a in alerts.items():
                    ids.append(rows[alert_id])
                    statuses.append(a.status)
                    starts.append(ts(a.starts_at))
                    ends.append(ts(a.ends_at))
                    updated.append(ts(a.updated_at or a.starts_at))
                cur.execute(_CLAIMED_POSTGRES, (ids, statuses, starts, ends, updated))
            else:
                cur.execute(_CLAIMED_SQLITE, (json.dumps([
                    (rows[alert_id], a.status, ts(a.starts_at), ts(a.ends_at),
                     ts(a.updated_at or a.starts_at)) for alert_id, a in alerts.items()]),))
            written = cur.rowcount
        finally:
            cur.close()
        if written != len(alerts):  # a row gone behind this transaction's back
            raise StoreError(f"the notifier saved {written} of {len(alerts)} alerts from "
                             "their transitions; the claim is rolled back and retried")

    def delete_alerts(self, alert_ids: Iterable[str]) -> None:
        ids = list(alert_ids)
        if ids:
            self.conn.execute(delete(NOTIFY_ALERT).where(
                self._one_of(NOTIFY_ALERT.c.alert_id, ids)))

    def log_entries(self, groups: Iterable[tuple[str, str]] | None = None
                    ) -> dict[tuple[str, str], LogEntry]:
        """Return the notification log keyed by (receiver, group key): all of it, or the
        entries of ``groups``."""
        if groups is None:
            return dict(_entry(row) for row in self.conn.execute(select(LOG)))
        wanted = set(groups)
        out = {}
        for row in self.conn.execute(select(LOG).where(
                self._one_of(LOG.c.group_key, sorted({key for _r, key in wanted})))):
            ident, entry = _entry(row)
            if ident in wanted:
                out[ident] = entry
        return out

    def write_log(self, entries: Sequence[LogEntry]) -> None:
        """Insert or replace the given log entries."""
        if not entries:
            return
        self.conn.execute(delete(LOG).where(LOG.c.receiver == bindparam("r"),
                                            LOG.c.group_key == bindparam("k")),
                          [{"r": e.receiver, "k": e.group_key} for e in entries])
        self.conn.execute(insert(LOG), [{
            "receiver": e.receiver, "group_key": e.group_key,
            "firing": json.dumps(sorted(e.firing)), "resolved": json.dumps(sorted(e.resolved)),
            "sent_at": e.sent_at, "message_id": e.thread_id,
        } for e in entries])

    def enqueue(self, messages: Sequence[NewMessage], now: datetime) -> list[int]:
        """Commit messages to the outbox, due now; return their row ids, in order.

        An older message for the same receiver, integration and group that is still
        waiting (not leased) is marked ``superseded``: the new one carries the group's
        whole state, and sending the old one after it would be wrong.
        """
        if not messages:
            return []
        self.conn.execute(
            update(OUTBOX).where(
                OUTBOX.c.receiver == bindparam("r"),
                OUTBOX.c.integration == bindparam("i"),
                OUTBOX.c.group_key == bindparam("k"),
                OUTBOX.c.status == PENDING,
                or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until < bindparam("t")))
            .values(status=SUPERSEDED, last_error="superseded by a newer message"),
            [{"r": m.receiver, "i": m.integration, "k": m.group_key, "t": now}
             for m in messages])
        return list(self.conn.execute(
            insert(OUTBOX).returning(OUTBOX.c.id, sort_by_parameter_order=True), [{
                "receiver": m.receiver, "integration": m.integration,
                "group_key": m.group_key, "payload": m.payload, "status": PENDING,
                "attempts": 0, "created_at": now, "next_attempt_at": now,
                "claimed_by": None, "claimed_until": None, "last_error": "",
                "delivered_at": None, "earliest_fired_at": m.earliest_fired_at,
            } for m in messages]).scalars())

    def silences(self) -> list[Silence]:
        return [_silence(row) for row in self.conn.execute(select(SILENCE))]

    def save_silences(self, silences: Sequence[Silence]) -> None:
        """Replace the given silences (their ids) in this transaction."""
        if silences:
            self.conn.execute(delete(SILENCE).where(
                one_of(SILENCE.c.id, [s.id for s in silences], self.conn.dialect.name)))
            self.conn.execute(insert(SILENCE), [_silence_row(s) for s in silences])

    def alert_periods(self) -> list[tuple[dict[str, str], str]]:
        """Return each engine alert's labels and the data period it is about (``2008-07``)
        as last evaluated: what ends a KPI silence."""
        out = []
        for row in self.conn.execute(select(ALERT.c.labels, ALERT.c.annotations)):
            period = json.loads(row.annotations).get("period_id", "")
            if period:
                out.append((json.loads(row.labels), str(period)))
        return out

    def record_history(self, events: Sequence[AlertEvent | Notified]) -> None:
        """Append notified and muted events to the alert history in this transaction, in
        order: events as given, and each ``Notified`` message's events in one statement
        (see :class:`Notified`)."""
        run: list[AlertEvent] = []
        for item in events:
            if isinstance(item, AlertEvent):
                run.append(item)
                continue
            insert_events(self.conn, run, self.codec)
            run = []
            self._record_notified(item)
        insert_events(self.conn, run, self.codec)

    def _record_notified(self, message: Notified) -> None:
        alerts = message.alerts
        if not alerts:
            return
        postgres = self.conn.dialect.name == "postgresql"
        detail = encoder(sort_keys=True)  # as ``insert_events`` writes a detail
        details = {status: detail(d) for status, d in message.details.items()}
        ids = [a.alert_id for a in alerts]
        statuses = [a.status for a in alerts]
        at = stamper(postgres)(message.at)
        cur = self._bulk_cursor(len(ids))
        try:
            if postgres:
                cur.execute(_NOTIFIED_POSTGRES, (json.dumps(details), at, ids, statuses))
            else:
                # One array of [id, status] pairs: a join of two arrays by position has
                # no index to use (every pair of elements compared).
                cur.execute(_NOTIFIED_SQLITE, (json.dumps(details), at,
                                               json.dumps(list(zip(ids, statuses,
                                                                   strict=True)))))
            written = cur.rowcount
        finally:
            cur.close()
        if written != len(ids):  # an alert the table does not hold: from memory
            held = {row.alert_id for row in self.conn.execute(
                select(NOTIFY_ALERT.c.alert_id).where(self._one_of(NOTIFY_ALERT.c.alert_id,
                                                                   ids)))}
            insert_events(self.conn, [a.event("notified", message.at, message.details[a.status])
                                      for a in alerts if a.alert_id not in held], self.codec)

    def get_meta(self, key: str) -> str | None:
        value = self.conn.execute(select(META.c.value).where(META.c.key == key)).scalar()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str, now: datetime) -> None:
        self.conn.execute(delete(META).where(META.c.key == key))
        self.conn.execute(insert(META), [{"key": key, "value": value, "updated_at": now}])


class NotifyStore:
    """The notifier's repository on the shared engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[NotifyTx]:
        """Yield the pipeline's transaction; commits on exit, rolls back on an exception."""
        with self.engine.begin() as conn:
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
            yield NotifyTx(conn)

    # --- outbox ----------------------------------------------------------------------

    def due_lanes(self, now: datetime) -> list[tuple[str, str]]:
        """Return the (receiver, integration) lanes that have a message due and unleased."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(OUTBOX.c.receiver, OUTBOX.c.integration).distinct()
                .where(OUTBOX.c.status == PENDING, OUTBOX.c.next_attempt_at <= now,
                       or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until < now)))
            return sorted((r[0], r[1]) for r in rows)

    def next_attempt_at(self, receiver: str, integration: str) -> datetime | None:
        """Return when the lane's next pending message is due (None: nothing pending)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.min(OUTBOX.c.next_attempt_at)).where(
                    OUTBOX.c.receiver == receiver, OUTBOX.c.integration == integration,
                    OUTBOX.c.status == PENDING)).scalar()
        return _dt(value)

    def claim_due(self, receiver: str, integration: str, owner: str, now: datetime,
                  lease: float, limit: int = 20) -> list[OutboxItem]:
        """Lease up to ``limit`` due messages of one lane to ``owner``, oldest first.

        Each row is taken by ``UPDATE … WHERE id = :id AND status = 'pending' AND
        next_attempt_at <= now AND (claimed_until IS NULL OR claimed_until < now)``;
        a row another replica took first is skipped. The lease lets a crashed sender's
        rows be picked up again once it runs out.
        """
        until = now + timedelta(seconds=lease)
        claimable = and_(OUTBOX.c.status == PENDING, OUTBOX.c.next_attempt_at <= now,
                         or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until < now))
        taken: list[int] = []
        with self.engine.begin() as conn:
            ids = list(conn.execute(
                select(OUTBOX.c.id).where(OUTBOX.c.receiver == receiver,
                                          OUTBOX.c.integration == integration, claimable)
                .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id).limit(limit)).scalars())
            for row_id in ids:
                result = conn.execute(
                    update(OUTBOX).where(OUTBOX.c.id == row_id, claimable)
                    .values(claimed_by=owner, claimed_until=until,
                            attempts=OUTBOX.c.attempts + 1))
                if result.rowcount == 1:
                    taken.append(row_id)
            if not taken:
                return []
            rows = conn.execute(select(OUTBOX).where(OUTBOX.c.id.in_(taken))
                                .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)).all()
        return [_item(r) for r in rows]

    def extend_lease(self, item_id: int, owner: str, now: datetime, lease: float) -> bool:
        """Renew ``owner``'s lease on a message it is about to send, from ``now``; return
        False when the lease ran out or the message is no longer pending (another
        replica may have taken it)."""
        with self.engine.begin() as conn:
            result = conn.execute(update(OUTBOX).where(
                OUTBOX.c.id == item_id, OUTBOX.c.status == PENDING,
                OUTBOX.c.claimed_by == owner, OUTBOX.c.claimed_until >= now)
                .values(claimed_until=now + timedelta(seconds=lease)))
            return int(result.rowcount) == 1

    def mark_delivered(self, item_id: int, now: datetime, note: str = "") -> None:
        """Record a successful delivery."""
        with self.engine.begin() as conn:
            conn.execute(update(OUTBOX).where(OUTBOX.c.id == item_id).values(
                status=DELIVERED, delivered_at=now, claimed_until=None, last_error=note))

    def mark_retry(self, item_id: int, next_attempt_at: datetime, error: str) -> None:
        """Record a retryable failure; the message is due again at ``next_attempt_at``."""
        with self.engine.begin() as conn:
            conn.execute(update(OUTBOX).where(
                OUTBOX.c.id == item_id, OUTBOX.c.status == PENDING).values(
                next_attempt_at=next_attempt_at, claimed_until=None, last_error=error))

    def mark_dead(self, item_id: int, error: str) -> None:
        """Make the message a dead letter, keeping the reason."""
        with self.engine.begin() as conn:
            conn.execute(update(OUTBOX).where(OUTBOX.c.id == item_id).values(
                status=DEAD, claimed_until=None, last_error=error))

    def resend(self, item_id: int, now: datetime) -> OutboxItem | None:
        """Queue a dead (or delivered) message again, due now; return it, or None if unknown."""
        with self.engine.begin() as conn:
            conn.execute(update(OUTBOX).where(OUTBOX.c.id == item_id).values(
                status=PENDING, attempts=0, next_attempt_at=now, claimed_by=None,
                claimed_until=None, created_at=now))
            row = conn.execute(select(OUTBOX).where(OUTBOX.c.id == item_id)).first()
        return _item(row) if row is not None else None

    def get(self, item_id: int) -> OutboxItem | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(OUTBOX).where(OUTBOX.c.id == item_id)).first()
        return _item(row) if row is not None else None

    def messages(self, status: str | None = None, limit: int = 100) -> list[OutboxItem]:
        """Return outbox rows (of one status), newest first."""
        query = select(OUTBOX).order_by(OUTBOX.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(OUTBOX.c.status == status)
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(query)]

    def counts(self) -> dict[tuple[str, str, str], int]:
        """Return ``{(receiver, integration, status): rows}`` for pending and dead rows."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(OUTBOX.c.receiver, OUTBOX.c.integration, OUTBOX.c.status, func.count())
                .where(OUTBOX.c.status.in_([PENDING, DEAD]))
                .group_by(OUTBOX.c.receiver, OUTBOX.c.integration, OUTBOX.c.status))
            return {(r[0], r[1], r[2]): int(r[3]) for r in rows}

    def after_clock_jump_back(self, now: datetime) -> tuple[int, int]:
        """The wall clock jumped back: make every pending message scheduled after ``now``
        due at ``now``, and log entries sent after ``now`` sent at ``now``. Returns
        (messages, log entries) changed."""
        with self.engine.begin() as conn:
            messages = conn.execute(update(OUTBOX).where(
                OUTBOX.c.status == PENDING, OUTBOX.c.next_attempt_at > now)
                .values(next_attempt_at=now)).rowcount
            entries = conn.execute(update(LOG).where(LOG.c.sent_at > now)
                                   .values(sent_at=now)).rowcount
        return int(messages), int(entries)

    def prune(self, before: datetime) -> tuple[int, int]:
        """Forget what was done with before ``before`` (the history's retention): messages
        delivered or superseded, and claimed transitions (their history events say what
        happened). Kept whatever their age: pending messages, dead letters (an operator
        resends or reads them) and unclaimed transitions, and the newest transition (ids
        go on from it). Return how many messages and transitions were removed."""
        with self.engine.begin() as conn:
            messages = conn.execute(delete(OUTBOX).where(or_(
                and_(OUTBOX.c.status == DELIVERED, OUTBOX.c.delivered_at < before),
                and_(OUTBOX.c.status == SUPERSEDED, OUTBOX.c.created_at < before)))).rowcount
            newest = select(func.max(TRANSITION.c.id)).scalar_subquery()
            moves = conn.execute(delete(TRANSITION).where(
                TRANSITION.c.claimed_by.is_not(None), TRANSITION.c.claimed_at < before,
                TRANSITION.c.id < newest)).rowcount
        return int(messages), int(moves)

    def release_leases(self, now: datetime) -> int:
        """End every lease (a SQLite store has one process: leases left are a dead one's)."""
        with self.engine.begin() as conn:
            result = conn.execute(update(OUTBOX).where(
                OUTBOX.c.status == PENDING, OUTBOX.c.claimed_until.is_not(None),
                OUTBOX.c.claimed_until >= now).values(claimed_until=None))
            return int(result.rowcount)

    # --- silences --------------------------------------------------------------------

    def silences(self) -> list[Silence]:
        """Return every stored silence, expired ones included, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(SILENCE).order_by(SILENCE.c.created_at.desc()))
            return [_silence(r) for r in rows]

    def silence(self, silence_id: str) -> Silence | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(SILENCE).where(SILENCE.c.id == silence_id)).first()
        return _silence(row) if row is not None else None

    def save_silence(self, silence: Silence) -> None:
        """Insert or replace a silence."""
        with self.engine.begin() as conn:
            conn.execute(delete(SILENCE).where(SILENCE.c.id == silence.id))
            conn.execute(insert(SILENCE), [_silence_row(silence)])

    # --- small facts -----------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(META.c.value).where(META.c.key == key)).scalar()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(META).where(META.c.key == key))
            conn.execute(insert(META), [{"key": key, "value": value, "updated_at": now}])

    # --- reading alerts for previews -------------------------------------------------

    def find_alert(self, alert_id: str) -> NotifyAlert | None:
        """Return the alert ``alert_id`` as the notifier knows it, else from the engine's
        current state (None when neither has it)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(NOTIFY_ALERT).where(
                NOTIFY_ALERT.c.alert_id == alert_id)).first()
            if row is not None:
                return _alert(row)
            current = conn.execute(select(ALERT).where(ALERT.c.id == alert_id)).first()
        if current is None:
            return None
        m = current._mapping
        status = FIRING if m["state"] == FIRING else RESOLVED
        starts = _dt(m["fired_at"]) or _dt(m["active_since"]) or _dt(m["updated_at"])
        return NotifyAlert(
            alert_id=m["id"], rule=m["rule"], labels=json.loads(m["labels"]),
            annotations=json.loads(m["annotations"]), status=status, value=m["value"],
            explanation=m["explanation"], starts_at=starts or datetime.fromtimestamp(0, UTC),
            ends_at=_dt(m["resolved_at"]) if status == RESOLVED else None)

    def alert_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(NOTIFY_ALERT.c.alert_id)).scalars())
