"""Saving alert records the table already holds: what the caller says the store holds
(``stored``) changes how rows are written, never what the table ends up holding."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from monitor.alerts.state import AlertRecord
from monitor.model import AlertState, alert_id
from monitor.store import Store

NOW = datetime(2016, 12, 5, 6, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)


def _record(i: int, state: AlertState) -> AlertRecord:
    labels = {"alertname": "Up", "area": f"a{i}"}
    return AlertRecord(id=alert_id("g", labels), rule="Up", labels=labels, state=state,
                       annotations={"summary": f"up in a{i}", "period_id": "2016-11"},
                       value=float(i), explanation=f"Up in a{i}.", active_since=NOW,
                       last_evaluated=NOW, pending_evaluations=1, pending_periods=1,
                       last_period=563, history="1", group="g")


def _next_month(r: AlertRecord, state: AlertState) -> AlertRecord:
    return replace(r, state=state, value=(r.value or 0) + 0.5,
                   annotations={**r.annotations, "period_id": "2016-12"},
                   explanation=r.explanation + " Again.", last_period=564,
                   fired_at=LATER if state is AlertState.FIRING else None,
                   last_evaluated=LATER, pending_evaluations=2, pending_periods=2,
                   history="11", notified_state=state)


def test_records_the_table_holds_are_saved_as_whole_as_new_ones(store: Store) -> None:
    first = [_record(i, AlertState.PENDING) for i in range(6)]
    store.alerts.save(first, [], NOW)
    held = store.alerts.load()
    # A month later: two keep their state with new numbers, two fire, one resolves,
    # and two alerts are new.
    later = [_next_month(first[0], AlertState.PENDING), _next_month(first[1], AlertState.PENDING),
             _next_month(first[2], AlertState.FIRING), _next_month(first[3], AlertState.FIRING),
             replace(_next_month(first[4], AlertState.RESOLVED), resolved_at=LATER),
             _record(6, AlertState.PENDING), _record(7, AlertState.FIRING)]
    store.alerts.save(later, [], LATER, stored=held)
    loaded = store.alerts.load()
    assert loaded == {**held, **{r.id: r for r in later}}
    assert loaded[first[5].id] == first[5]  # unchanged, untouched


def test_a_record_removed_behind_the_callers_back_is_saved_all_the_same(store: Store) -> None:
    first = [_record(i, AlertState.PENDING) for i in range(3)]
    store.alerts.save(first, [], NOW)
    held = store.alerts.load()
    with store.engine.begin() as conn:  # e.g. an operator's DELETE while the daemon ran
        conn.execute(text("DELETE FROM alert WHERE id = :id"), {"id": first[1].id})
    later = [_next_month(r, AlertState.FIRING) for r in first]
    store.alerts.save(later, [], LATER, stored=held)
    assert store.alerts.load() == {r.id: r for r in later}


def test_instants_keep_their_microseconds_and_zone_through_a_bulk_write(store: Store) -> None:
    # PostgreSQL's COPY takes each instant as text made once (``stamper(copy=True)``).
    from datetime import timezone

    from monitor.alerts.state import Transition

    india = timezone(timedelta(hours=5, minutes=30))
    at = datetime(2016, 12, 5, 11, 30, 0, 123456, tzinfo=india)
    records = [replace(_record(i, AlertState.FIRING), active_since=at, fired_at=at,
                       last_evaluated=at + timedelta(microseconds=i)) for i in range(1001)]
    moves = [Transition(r.id, r.rule, r.labels, AlertState.PENDING, AlertState.FIRING, at,
                        r.value, r.explanation, r.annotations, notify=True, group="g")
             for r in records]
    store.alerts.save(records, moves, at)
    loaded = store.alerts.load()
    assert loaded == {r.id: r for r in records}
    assert loaded[records[7].id].last_evaluated == \
        datetime(2016, 12, 5, 6, 0, 0, 123463, tzinfo=UTC)
    events = store.history.events(alert_ids=[records[7].id])
    assert [(e.kind, e.at) for e in events] == [("transition", at)]


def test_a_record_written_behind_the_callers_back_is_replaced_not_refused(
        store: Store) -> None:
    # The caller believes the table empty (a first cycle) while another writer stored
    # the same alerts: PostgreSQL's COPY of new records meets their ids and gives way to
    # the upsert; the transitions of the same save are kept.
    from monitor.alerts.state import Transition

    first = [_record(i, AlertState.PENDING) for i in range(3)]
    store.alerts.save(first, [], NOW)
    later = [_next_month(r, AlertState.FIRING) for r in first] + [_record(3, AlertState.PENDING)]
    moves = [Transition(r.id, r.rule, r.labels, AlertState.PENDING, AlertState.FIRING, LATER,
                        r.value, r.explanation, r.annotations, notify=True, group="g")
             for r in later[:3]]
    saved = store.alerts.save(later, moves, LATER, stored={})
    assert store.alerts.load() == {r.id: r for r in later}
    assert len(saved.transitions) == 3
    assert [t["alert_id"] for t in reversed(store.alerts.transitions())] == \
        [r.id for r in later[:3]]


def test_a_bulk_save_gives_its_page_cache_back_when_it_ends(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # A cycle's save of a thousand records or more takes a larger SQLite page cache for
    # its transaction; a daemon that kept it (or kept its freed pages resident) held
    # tens of megabytes through the notifications that follow and between cycles.
    from monitor import memory
    from monitor.store import db

    trims: list[bool] = []
    monkeypatch.setattr(memory, "trim", lambda: trims.append(True) or True)
    records = [_record(i, AlertState.PENDING) for i in range(db.BULK_ROWS)]
    store.alerts.save(records, [], NOW)
    assert len(store.alerts.load()) == db.BULK_ROWS
    with store.engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            assert trims == []  # PostgreSQL's cache is the server's
            return
        size = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    assert size == db.DEFAULT_CACHE_SIZE
    assert trims == [True]
