"""The alert history (issue #17): written in bulk with the engine's transitions, read by
rule and time range, cut into episodes, pruned by the retention, and started from the
transitions an older store holds when migration 0003 runs — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import event, text

from monitor.alerts.state import AlertRecord, Transition
from monitor.matchers import Matcher
from monitor.model import AlertEvent, AlertState, episodes
from monitor.store import Store, history, open_store
from monitor.store.db import _alembic_config

T0 = datetime(2008, 8, 1, 12, tzinfo=UTC)


def move(alert: str, old: AlertState, new: AlertState, minutes: int,
         area: str = "North") -> Transition:
    labels = {"alertname": "BurglaryHigh", "area": area}
    return Transition(alert, "BurglaryHigh", labels, old, new, T0 + timedelta(minutes=minutes),
                      120.0, f"{area} is 120.", {"period_id": "2008-07", "series": "abc"}, True,
                      "crime")


def test_transitions_are_kept_in_one_bulk_insert_and_read_back_as_episodes(
        store_url: str) -> None:
    store = open_store(store_url)
    try:
        statements: list[str] = []
        event.listen(store.engine, "before_cursor_execute",
                     lambda *args: statements.append(args[2]))
        moves = [move(f"a{i}", AlertState.INACTIVE, AlertState.FIRING, i, f"area{i}")
                 for i in range(300)]
        records = [AlertRecord(t.alert_id, t.rule, t.labels, AlertState.FIRING) for t in moves]
        store.alerts.save(records, moves, T0)
        # The events go through the driver's cursor (executemany / COPY) in the save's
        # transaction: no statement through SQLAlchemy, none with a parameter per event.
        assert not [s for s in statements if "alert_event" in s.lower()]
        store.alerts.save([], [move("a0", AlertState.FIRING, AlertState.RESOLVED, 400),
                               move("a0", AlertState.RESOLVED, AlertState.PENDING, 500)], T0)
        found = store.history.events(rules=["BurglaryHigh"])
        assert len(found) == 302 and found[0].period == "2008-07"
        assert found[0].detail == {"group": "crime", "series": "abc"}
        a0 = [ep for ep in episodes(found) if ep.alert_id == "a0"]
        assert [(ep.state, ep.fired_at is not None, ep.resolved_at is not None) for ep in a0] \
            == [("pending", False, False), ("resolved", True, True)]
        window = store.history.events(since=T0 + timedelta(minutes=299),
                                      until=T0 + timedelta(minutes=450))
        assert [(e.alert_id, e.to_state) for e in window] == [("a299", "firing"),
                                                              ("a0", "resolved")]
        assert store.history.prune(T0 + timedelta(minutes=450)) == 301
        assert [e.to_state for e in store.history.events()] == ["pending"]
    finally:
        store.close()


def test_the_notifier_adds_sent_and_muted_messages(store_url: str) -> None:
    store = open_store(store_url)
    try:
        with store.notify.transaction() as tx:
            tx.record_history([AlertEvent("a1", "R", {"area": "North"}, "muted", T0,
                                          detail={"silenced_by": ["s1"]})])
        (muted,) = store.history.events(alert_ids=["a1"])
        assert (muted.kind, muted.detail["silenced_by"]) == ("muted", ["s1"])
    finally:
        store.close()


@pytest.mark.parametrize(("matchers", "expected"), [
    pytest.param([Matcher("area", "North")], ["n1", "n2"], id="equal-in-the-database"),
    pytest.param([Matcher("area", "North"), Matcher("team", "ops")], ["n2"],
                 id="two-equal"),
    pytest.param([Matcher("area", "Nor.*", "=~")], ["n1", "n2"], id="regex-in-python"),
    pytest.param([Matcher("area", "Area.*", "!~")], ["n1", "n2"], id="negative-regex"),
    pytest.param([Matcher("team", "")], ["n1"] + [f"x{i}" for i in range(7)],
                 id="equal-empty-is-absent"),
    pytest.param([Matcher("team", "ops", "!=")], ["n1"] + [f"x{i}" for i in range(7)],
                 id="not-equal"),
])
def test_label_matchers_pick_one_series_events_behind_newer_ones_of_others(
        store_url: str, matchers: list[Matcher], expected: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The matchers are the read's: ``limit`` counts the events they accept, so an old
    episode behind many newer events of other series is found — ``=`` by the database,
    the rest on rows read newest first a page at a time (a page of 3 here)."""
    monkeypatch.setattr(history, "PAGE", 3)
    store = open_store(store_url)
    try:
        store.history.record([
            AlertEvent("n1", "R", {"area": "North"}, "transition", T0, to_state="firing"),
            AlertEvent("n2", "R", {"area": "North", "team": "ops"}, "transition",
                       T0 + timedelta(minutes=1), to_state="firing"),
            *(AlertEvent(f"x{i}", "R", {"area": f"Area{i}"}, "transition",
                         T0 + timedelta(minutes=2 + i), to_state="firing")
              for i in range(7))])
        found = store.history.events(matchers=matchers, limit=9)
        assert [e.alert_id for e in found] == expected
        # The newest ``limit`` of those matched, oldest first.
        assert [e.alert_id for e in store.history.events(matchers=matchers, limit=1)] == \
            expected[-1:]
    finally:
        store.close()


def test_migration_0003_starts_the_history_from_the_stored_transitions(store_url: str) -> None:
    store = Store(store_url)
    try:
        command.upgrade(_alembic_config(store.engine), "0002")
        with store.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO alert_transition (alert_id, rule, labels, annotations, from_state, "
                "to_state, value, explanation, at) VALUES ('a1', 'R', :labels, '{}', "
                "'inactive', 'firing', 1.5, 'why', :at)"),
                {"labels": json.dumps({"area": "North"}), "at": T0})
        store.upgrade()
        (kept,) = store.history.events()
        assert (kept.alert_id, kept.to_state, kept.value, kept.labels) == \
            ("a1", "firing", 1.5, {"area": "North"})
        command.downgrade(_alembic_config(store.engine), "0002")
        store.upgrade()
    finally:
        store.close()


def test_a_messages_notified_events_are_its_alerts_as_the_notifier_holds_them(
        store_url: str) -> None:
    # The store writes a message's events from notify_alert by one INSERT … SELECT: each
    # event must be the one the alert itself would give (``NotifyAlert.event``), in the
    # message's order, whatever its status, value, period or labels; and an alert the
    # table does not hold is written all the same.
    from monitor.notify.notification import NotifyAlert
    from monitor.store.notify import Notified

    def alert(i: int, status: str, **extra: object) -> NotifyAlert:
        annotations = {"summary": f"s{i}"} if i % 3 == 0 else {
            "summary": f"s{i}", "period_id": f"2008-0{i % 9 + 1}"}
        fields: dict[str, object] = dict(
            alert_id=f"n{i:03d}", rule="BurglaryHigh",
            labels={"alertname": "BurglaryHigh", "area": f"Área {i}", "quote": 'a"b'},
            annotations=annotations, status=status,
            value=None if i % 4 == 0 else i * 1.5, explanation=f"Área {i} is high.",
            starts_at=T0, ends_at=T0 + timedelta(hours=1) if status == "resolved" else None,
            updated_at=T0)
        fields.update(extra)
        return NotifyAlert(**fields)  # type: ignore[arg-type]

    held = [alert(i, "resolved" if i % 5 == 0 else "firing") for i in range(1200)]
    unsaved = alert(999, "firing", alert_id="from-a-file")
    message = [held[7], unsaved, *reversed(held[:7]), *held[8:]]
    details = {s: {"receiver": "hook", "status": s, "message_id": "m1"}
               for s in ("firing", "resolved")}
    at = T0 + timedelta(minutes=5)
    store = open_store(store_url)
    try:
        with store.notify.transaction() as tx:
            tx.save_alerts(held)
            tx.record_history([Notified(message, details, at),
                               AlertEvent("n001", "R", {"area": "x"}, "muted", at)])
        events = store.history.events(limit=100_000)
    finally:
        store.close()
    sent = [e for e in events if e.kind == "notified"]
    assert [e.alert_id for e in sent[:-1]] == [a.alert_id for a in message if a is not unsaved]
    assert sent[-1] == unsaved.event("notified", at, details["firing"])
    by_id = {a.alert_id: a for a in message}
    assert all(e == by_id[e.alert_id].event("notified", at, details[by_id[e.alert_id].status])
               for e in sent)
    assert events[-1].kind == "muted"  # after the message's events, as given


def _reference_event(t: Transition) -> AlertEvent:
    """A transition's history event as it was made in Python before the database copied
    it (``INSERT … SELECT``): the reference the copy must equal."""
    detail = {k: v for k, v in (("group", t.group), ("series", t.annotations.get("series")),
                                ("cause", t.annotations.get("cause"))) if v}
    return AlertEvent(alert_id=t.alert_id, rule=t.rule, labels=t.labels, kind="transition",
                      at=t.at, from_state=t.from_state.value, to_state=t.to_state.value,
                      value=t.value, explanation=t.explanation,
                      period=t.annotations.get("period_id", ""), detail=detail)


def test_the_history_copy_of_transitions_equals_each_transitions_own_event(
        store_url: str) -> None:
    def moved(i: int) -> Transition:
        annotations = {"summary": "x"}
        if i % 2:
            annotations["period_id"] = f"2008-0{i % 9 + 1}"
        if i % 3:
            annotations["series"] = f"s{i}"
        if i % 5 == 0:
            annotations["cause"] = "revised: 120 → 130"
        elif i % 7 == 0:
            annotations["cause"] = ""
        labels = {"alertname": "BurglaryHigh", "area": f"Área {i}", "q": 'a"b\\c'}
        return Transition(f"t{i:04d}", "BurglaryHigh", labels, AlertState.PENDING,
                          AlertState.FIRING, T0 + timedelta(seconds=i),
                          None if i % 4 == 0 else i / 3, f"Área {i} is high.", annotations,
                          i % 6 != 0, "" if i % 8 == 0 else "crime")

    moves = [moved(i) for i in range(1500)]
    records = [AlertRecord(t.alert_id, t.rule, t.labels, AlertState.FIRING, group=t.group)
               for t in moves]
    store = open_store(store_url)
    try:
        store.alerts.save(records, moves, T0)
        events = store.history.events(limit=10_000)
        assert events == [_reference_event(t) for t in moves]
        # Rows not in one run (SQLite names them one by one): only those are copied.
        with store.engine.begin() as conn:
            ids = [r[0] for r in conn.execute(text(
                "SELECT id FROM alert_transition ORDER BY id"))][10:20:3]
            history.copy_transitions(conn, ids)
        again = store.history.events(limit=10_000)[len(moves):]
        assert [e.alert_id for e in again] == [moves[i].alert_id for i in range(10, 20, 3)]
    finally:
        store.close()


def test_the_history_statements_look_rows_up_by_key_on_sqlite(tmp_path: Path) -> None:
    # A message's notified events, a save's transition events and the notifier's alerts
    # are written by one INSERT … SELECT each, over as many alerts as a message or a
    # cycle holds (100,000):
    # every row must be found by its key, never by comparing it with every other (the
    # first version joined two JSON arrays by position: a cycle at 100k took 131 s).
    from monitor.store.notify import _CLAIMED_SQLITE, _NOTIFIED_SQLITE

    store = open_store(f"sqlite:///{tmp_path}/plan.db")
    try:
        with store.engine.connect() as conn:
            def plan(sql: str, args: tuple[object, ...]) -> list[str]:
                select = "SELECT" + sql.split("SELECT", 1)[1]
                return [row[3] for row in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + select, args)]

            notified = plan(_NOTIFIED_SQLITE, ("{}", "2008-08-01", "[]"))
            copied = plan(history._COPY_SQLITE, (1, 2))
            claimed = plan(_CLAIMED_SQLITE.split(" ON CONFLICT")[0], ("[]",))
    finally:
        store.close()
    scans = [step for step in notified if step.startswith("SCAN")]
    assert len(scans) == 1 and "VIRTUAL TABLE" in scans[0], notified
    assert any(step.startswith("SEARCH a USING INDEX") for step in notified), notified
    assert copied == ["SEARCH alert_transition USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"]
    # The notifier's alerts, copied from the claimed rows (NotifyTx.save_claimed).
    assert [step.split(" ")[0] for step in claimed] == ["SCAN", "SEARCH"], claimed
    assert "INTEGER PRIMARY KEY" in claimed[1], claimed
