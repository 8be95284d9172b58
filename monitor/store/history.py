"""The alert history (``alert_event``): what happened to every alert, kept for the
retention (``notify.history_retention``).

Written in bulk — one ``INSERT … VALUES`` executemany per batch, in the transaction that
made the events: the engine's transitions with the alert records
(:meth:`monitor.store.alerts.AlertStore.save`), the notifier's sent and muted messages
with its outbox. Read by time range, rule, alert and label matchers: the ``=`` matchers
are answered by the database (a JSON extract of the labels, on SQLite and PostgreSQL), the
others on the rows it returns, read newest first until ``limit`` events match — so one
series' old episode is found however many newer events other series have.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, cast, delete, func, select
from sqlalchemy.dialects.postgresql import JSON

from monitor.jsontext import encoder
from monitor.matchers import Matcher, matches_all
from monitor.model import AlertEvent, iter_chunks, utc
from monitor.store.db import BULK_ROWS, JsonCodec, bulk_cache, stamper
from monitor.store.tables import AlertEventRow

EVENT = AlertEventRow.metadata.tables["alert_event"]
CHUNK = 500  # alert ids per IN (…) when reading one series' alerts
PAGE = 5_000  # rows read per round when matchers the database cannot answer remain


COLUMNS = ("alert_id", "rule", "group_name", "labels", "kind", "from_state", "to_state",
           "value", "explanation", "period", "detail", "at")
# The history's event of each transition row: its period and the detail's series and
# cause from its annotations, its group; the detail without empty entries, keys sorted.
_COPY_SQLITE = (
    f"INSERT INTO alert_event ({', '.join(COLUMNS)}) "  # noqa: S608
    "SELECT alert_id, rule, group_name, labels, 'transition', from_state, to_state, value, "
    "explanation, coalesce(json_extract(annotations, '$.period_id'), ''), "
    "json_patch(json_patch(json_patch('{}', "
    "iif(coalesce(json_extract(annotations, '$.cause'), '') = '', '{}', "
    "json_object('cause', json_extract(annotations, '$.cause')))), "
    "iif(group_name = '', '{}', json_object('group', group_name))), "
    "iif(coalesce(json_extract(annotations, '$.series'), '') = '', '{}', "
    "json_object('series', json_extract(annotations, '$.series')))), at "
    "FROM alert_transition WHERE id BETWEEN ? AND ? ORDER BY id")
_COPY_POSTGRES = (
    f"INSERT INTO alert_event ({', '.join(COLUMNS)}) "  # noqa: S608
    "SELECT alert_id, rule, group_name, labels, 'transition', from_state, to_state, value, "
    "explanation, coalesce(annotations::json ->> 'period_id', ''), "
    "json_strip_nulls(json_build_object("
    "'cause', nullif(annotations::json ->> 'cause', ''), 'group', nullif(group_name, ''), "
    "'series', nullif(annotations::json ->> 'series', '')))::text, at "
    "FROM alert_transition WHERE id = ANY(%s) ORDER BY id")


def copy_transitions(conn: Connection, ids: Sequence[int]) -> None:
    """Append the history's events of the transition rows ``ids`` (ascending, written in
    the caller's transaction) by one ``INSERT … SELECT`` of theirs: the database copies
    their labels and texts, no row is made and sent again per transition. On SQLite
    ``ids`` are one run (its one writer gives them); on PostgreSQL other replicas' rows
    may fall between, so the ids are given."""
    if not ids:
        return
    if len(ids) >= BULK_ROWS:
        bulk_cache(conn)
    raw = conn.connection.driver_connection
    assert raw is not None
    cur = raw.cursor()
    try:
        if conn.dialect.name == "postgresql":
            cur.execute(_COPY_POSTGRES, (list(ids),))
        elif ids[-1] - ids[0] + 1 == len(ids):
            cur.execute(_COPY_SQLITE, (ids[0], ids[-1]))
        else:  # not one run: named one by one (one parameter)
            cur.execute(_COPY_SQLITE.replace("id BETWEEN ? AND ?",
                                             "id IN (SELECT value FROM json_each(?))"),
                        (json.dumps(list(ids)),))
    finally:
        cur.close()
_INSERT = (f"INSERT INTO alert_event ({', '.join(COLUMNS)}) "  # noqa: S608
           f"VALUES ({', '.join('?' * len(COLUMNS))})")


def _event(row: Any) -> AlertEvent:
    m = row._mapping
    return AlertEvent(alert_id=m["alert_id"], rule=m["rule"], labels=json.loads(m["labels"]),
                      kind=m["kind"], at=utc(m["at"]), from_state=m["from_state"],
                      to_state=m["to_state"], value=m["value"], explanation=m["explanation"],
                      period=m["period"], detail=json.loads(m["detail"] or "{}"))


def _detail_encoder() -> Callable[[Mapping[str, Any]], str]:
    """Return a function giving an event's detail as stored (sorted-key JSON). A message's
    events share one detail, and follow one another: the last few details are remembered
    with their text (and held, so no other dict takes their id). Not the caller's codec,
    which keeps every dict it encoded: each transition's detail is its own."""
    plain = encoder(sort_keys=True)
    recent: dict[int, tuple[Mapping[str, Any], str]] = {}

    def encode(detail: Mapping[str, Any]) -> str:
        found = recent.get(id(detail))
        if found is not None and found[0] is detail:
            return found[1]
        text = plain(detail if isinstance(detail, dict) else dict(detail))
        if len(recent) >= 8:
            del recent[next(iter(recent))]
        recent[id(detail)] = (detail, text)
        return text
    return encode


def insert_events(conn: Connection, events: Iterable[AlertEvent],
                  codec: JsonCodec | None = None, count: int | None = None) -> None:
    """Append ``events`` in the caller's transaction, through the driver's cursor: one
    ``executemany`` on SQLite, ``COPY`` on PostgreSQL — no per-row round trip and no
    SQLAlchemy parameter processing per row (a cycle at 100,000 series writes hundreds
    of thousands). ``codec`` encodes the label sets: the caller's, when the same dicts
    were written in its transaction already. ``events`` may be a generator, each event
    made and written in turn; ``count`` then says how many (for the page cache)."""
    if count is None:
        events = list(events)
        count = len(events)
    if not count:
        return
    postgres = conn.dialect.name == "postgresql"
    ts = stamper(postgres, copy=True)  # PostgreSQL: rows for COPY alone
    encode = (codec or JsonCodec()).encode  # the labels: the records' and transitions'
    detail = _detail_encoder()
    rows = ((e.alert_id, e.rule, str(e.detail.get("group", "")), encode(e.labels), e.kind,
             e.from_state, e.to_state, None if e.value is None else float(e.value),
             e.explanation, e.period, detail(e.detail) if e.detail else "{}", ts(e.at))
            for e in events)
    if count >= BULK_ROWS:
        bulk_cache(conn)
    raw = conn.connection.driver_connection
    assert raw is not None
    cur = raw.cursor()
    try:
        if postgres:
            with cur.copy(f"COPY alert_event ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cur.executemany(_INSERT, rows)
    finally:
        cur.close()


class HistoryStore:
    """The alert history on the shared engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, events: Sequence[AlertEvent]) -> None:
        """Append ``events`` in a transaction of their own."""
        if events:
            with self.engine.begin() as conn:
                insert_events(conn, events)

    def events(self, *, rules: Sequence[str] = (), alert_ids: Sequence[str] = (),
               matchers: Sequence[Matcher] = (), since: datetime | None = None,
               until: datetime | None = None, limit: int = 10_000) -> list[AlertEvent]:
        """Return events oldest first: of these rules and alerts (empty: all), whose labels
        every matcher accepts, at or after ``since`` and before ``until``; the newest
        ``limit`` when there are more."""
        query = select(EVENT)
        if rules:
            query = query.where(EVENT.c.rule.in_(list(rules)))
        if since is not None:
            query = query.where(EVENT.c.at >= since)
        if until is not None:
            query = query.where(EVENT.c.at < until)
        rows: list[Any] = []
        with self.engine.connect() as conn:
            postgres = conn.dialect.name == "postgresql"
            # An equal matcher with a value needs the label present: the database's
            # answer. The rest (!=, regular expressions, ="" for a missing label) are
            # Python's, with Alertmanager's anchoring, on what the database returns.
            for m in matchers:
                if m.op == "=" and m.value:
                    query = query.where(_label(m.name, postgres) == m.value)
            rest = [m for m in matchers if not (m.op == "=" and m.value)]
            if alert_ids:
                for chunk in iter_chunks(list(dict.fromkeys(alert_ids)), CHUNK):
                    rows.extend(_newest(conn, query.where(EVENT.c.alert_id.in_(chunk)),
                                        rest, limit))
            else:
                rows.extend(_newest(conn, query, rest, limit))
        rows.sort(key=lambda r: r._mapping["id"])
        return [_event(r) for r in rows[-limit:]]

    def prune(self, before: datetime) -> int:
        """Forget events older than ``before`` (the retention); return how many."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(EVENT).where(EVENT.c.at < before)).rowcount)


def _label(name: str, postgres: bool) -> ColumnElement[Any]:
    """Return the SQL for the value of label ``name`` in an event's labels (NULL: absent).
    Label names are ``[A-Za-z_][A-Za-z0-9_]*``, so the quoted JSON path is safe."""
    if postgres:
        value: ColumnElement[Any] = cast(EVENT.c.labels, JSON)[name].astext
        return value
    return func.json_extract(EVENT.c.labels, f'$."{name}"')


def _newest(conn: Connection, query: Any, matchers: Sequence[Matcher],
            limit: int) -> list[Any]:
    """Return the newest ``limit`` rows of ``query`` whose labels ``matchers`` accept:
    one read when there are none, else pages of ``PAGE`` rows, newest first, until
    ``limit`` match or the rows run out."""
    if not matchers:
        return list(conn.execute(query.order_by(EVENT.c.id.desc()).limit(limit)))
    found: list[Any] = []
    before: int | None = None
    while len(found) < limit:
        page = query if before is None else query.where(EVENT.c.id < before)
        rows = list(conn.execute(page.order_by(EVENT.c.id.desc()).limit(PAGE)))
        found.extend(r for r in rows
                     if matches_all(matchers, json.loads(r._mapping["labels"])))
        if len(rows) < PAGE:
            break
        before = rows[-1]._mapping["id"]
    return found[:limit]
