"""Alert state and transitions: loaded at start, saved after each evaluation in one
transaction, so a restart restores every alert exactly (no `for` timer restarts)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update

from monitor.alerts.state import AlertRecord, Transition
from monitor.model import AlertState, iter_chunks, utc
from monitor.store.history import insert_events, transition_events
from monitor.store.tables import AlertRow

ALERT = AlertRow.metadata.tables["alert"]
TRANSITION = AlertRow.metadata.tables["alert_transition"]

CHUNK = 10_000  # ids per IN (…): SQLite allows 32,766 parameters, PostgreSQL 65,535
HELD = "held:flapping"  # claimed_by of transitions the notifier must not send


def _dt(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


def _record(row: AlertRow) -> AlertRecord:
    return AlertRecord(
        id=row.id, rule=row.rule, labels=json.loads(row.labels), state=AlertState(row.state),
        annotations=json.loads(row.annotations), value=row.value, explanation=row.explanation,
        active_since=_dt(row.active_since), fired_at=_dt(row.fired_at),
        resolved_at=_dt(row.resolved_at), keep_firing_until=_dt(row.keep_firing_until),
        last_evaluated=_dt(row.last_evaluated), pending_evaluations=row.pending_evaluations,
        pending_periods=row.pending_periods, last_period=row.last_period, history=row.history,
        flapping=row.flapping, notified_state=AlertState(row.notified_state),
        group=row.group_name,
    )


def _row(r: AlertRecord, now: datetime) -> dict[str, object]:
    return {
        "id": r.id, "rule": r.rule, "group_name": r.group,
        "labels": json.dumps(r.labels, sort_keys=True),
        "annotations": json.dumps(r.annotations, sort_keys=True), "state": r.state.value,
        "value": r.value, "explanation": r.explanation, "active_since": r.active_since,
        "fired_at": r.fired_at, "resolved_at": r.resolved_at,
        "keep_firing_until": r.keep_firing_until, "last_evaluated": r.last_evaluated,
        "pending_evaluations": r.pending_evaluations, "pending_periods": r.pending_periods,
        "last_period": r.last_period, "history": r.history, "flapping": r.flapping,
        "notified_state": r.notified_state.value, "updated_at": now,
    }


class AlertStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self) -> dict[str, AlertRecord]:
        """Return every stored alert record by id."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ALERT)).all()
        return {row.id: _record(AlertRow.model_validate(row._mapping)) for row in rows}

    def save(self, changed: Iterable[AlertRecord], transitions: Iterable[Transition],
             now: datetime, *, removed: Iterable[str] = (),
             guard: Callable[[Connection], None] | None = None) -> None:
        """Persist changed records and their transitions atomically.

        ``guard`` runs first in the same transaction (a replica checking it still holds
        its shards); whatever it raises rolls the transaction back and propagates.
        """
        records = [_row(r, now) for r in changed]
        moves = list(transitions)
        events = [{
            "alert_id": t.alert_id, "rule": t.rule,
            "labels": json.dumps(t.labels, sort_keys=True),
            "annotations": json.dumps(t.annotations, sort_keys=True),
            "from_state": t.from_state.value, "to_state": t.to_state.value, "value": t.value,
            "explanation": t.explanation, "at": t.at,
            "claimed_by": None if t.notify else HELD, "claimed_at": None if t.notify else now,
        } for t in moves]
        gone = list(removed)
        if not records and not events and not gone:
            return
        with self.engine.begin() as conn:
            if guard is not None:
                guard(conn)
            if records:
                existing: set[object] = set()
                for chunk in iter_chunks([r["id"] for r in records], CHUNK):
                    existing.update(conn.execute(select(ALERT.c.id).where(
                        ALERT.c.id.in_(chunk))).scalars())
                new = [r for r in records if r["id"] not in existing]
                old = [{**r, "key": r["id"]} for r in records if r["id"] in existing]
                if new:
                    conn.execute(insert(ALERT), new)
                if old:  # one executemany, not one statement per alert
                    conn.execute(update(ALERT).where(ALERT.c.id == bindparam("key")), old)
            if events:
                conn.execute(insert(TRANSITION), events)
                insert_events(conn, transition_events(moves))
            for gone_chunk in iter_chunks(gone, CHUNK):
                conn.execute(delete(ALERT).where(ALERT.c.id.in_(gone_chunk)))

    def transitions(self, limit: int = 1000) -> list[dict[str, object]]:
        """Return the newest transitions, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(TRANSITION).order_by(
                TRANSITION.c.id.desc()).limit(limit)).all()
        return [dict(row._mapping) for row in rows]
