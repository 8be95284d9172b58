"""The notifier's repository on SQLite and PostgreSQL: claims, outbox leases, log, silences."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from monitor.matchers import parse_matchers
from monitor.notify.notification import NotifyAlert
from monitor.notify.pipeline import LogEntry
from monitor.notify.silences import SilenceSpec, expire, new_silence
from monitor.notify.timeintervals import TimeIntervalSpec
from monitor.store import Store
from monitor.store.notify import OUTBOX, TRANSITION, NewMessage

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def record_transitions(store: Store, count: int, to_state: str = "firing") -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(TRANSITION), [{
            "alert_id": f"a{i}", "rule": "R", "labels": json.dumps({"alertname": "R", "i": str(i)}),
            "annotations": "{}", "from_state": "pending", "to_state": to_state,
            "value": float(i), "explanation": "", "at": NOW} for i in range(count)])


def test_two_claimers_never_take_the_same_transition(store: Store) -> None:
    record_transitions(store, 300)
    results: dict[str, list[int]] = {}
    barrier = threading.Barrier(2)

    def claim(owner: str) -> None:
        barrier.wait()
        with store.notify.transaction() as tx:
            results[owner] = [e.id for e in tx.claim_transitions(owner, NOW)]

    threads = [threading.Thread(target=claim, args=(name,)) for name in ("r1", "r2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = results["r1"] + results["r2"]
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 300
    with store.notify.transaction() as tx:
        assert tx.claim_transitions("r3", NOW) == []


def test_claimed_transitions_read_back_with_their_values(store: Store) -> None:
    record_transitions(store, 2)
    with store.notify.transaction() as tx:
        events = tx.claim_transitions("me", NOW)
    assert [(e.alert_id, e.to_state, e.value, e.at, e.labels["i"]) for e in events] == [
        ("a0", "firing", 0.0, NOW, "0"), ("a1", "firing", 1.0, NOW, "1")]
    assert all(e.notifiable for e in events)


def test_alerts_and_the_log_round_trip(store: Store) -> None:
    alert = NotifyAlert("a1", "R", {"alertname": "R", "borough": "Camden"},
                        {"summary": "s"}, "resolved", 2.5, "why", NOW,
                        NOW + timedelta(minutes=5), NOW + timedelta(minutes=5))
    entry = LogEntry("ops", '{}:{alertname="R"}', frozenset({"a1"}), frozenset({"a2"}), NOW, "t1")
    with store.notify.transaction() as tx:
        tx.save_alerts([alert])
        tx.save_alerts([alert])  # replacing is idempotent
        tx.write_log([entry])
    with store.notify.transaction() as tx:
        assert tx.load_alerts() == [alert]
        assert tx.log_entries() == {("ops", entry.group_key): entry}
        tx.delete_alerts(["a1"])
        assert tx.load_alerts() == []


def test_loading_the_alerts_but_those_just_saved_reads_each_other_one_whole(
        store: Store) -> None:
    """``skip`` (the alerts a run holds as just saved) leaves those out, whether most of
    the table is skipped (the ids are read, then the others) or few (one scan)."""
    alerts = [NotifyAlert(f"a{i:02d}", "R", {"alertname": "R", "i": str(i)}, {"summary": "s"},
                          "firing", float(i), f"why {i}", NOW, None, NOW) for i in range(20)]
    with store.notify.transaction() as tx:
        tx.save_alerts(alerts)
    for skipped in (set(), {"a03"}, {a.alert_id for a in alerts[:15]},
                    {a.alert_id for a in alerts}, {"a05", "elsewhere"}):
        with store.notify.transaction() as tx:
            loaded = sorted(tx.load_alerts(skip=skipped), key=lambda a: a.alert_id)
        assert loaded == [a for a in alerts if a.alert_id not in skipped], skipped


def enqueue(store: Store, group: str = "g", count: int = 1) -> None:
    with store.notify.transaction() as tx:
        tx.enqueue([NewMessage("ops", "webhook:0", group, json.dumps({"n": i}))
                    for i in range(count)], NOW)


def test_a_leased_message_is_not_handed_out_again_until_the_lease_ends(store: Store) -> None:
    enqueue(store)
    notify = store.notify
    first = notify.claim_due("ops", "webhook:0", "r1", NOW, lease=60)
    assert len(first) == 1 and first[0].attempts == 1 and first[0].claimed_by == "r1"
    assert notify.claim_due("ops", "webhook:0", "r2", NOW + timedelta(seconds=30), 60) == []
    again = notify.claim_due("ops", "webhook:0", "r2", NOW + timedelta(seconds=61), 60)
    assert [i.id for i in again] == [first[0].id] and again[0].attempts == 2


def test_two_dispatchers_racing_for_one_lane_send_each_message_once(store: Store) -> None:
    enqueue(store, count=40)
    taken: dict[str, list[int]] = {"r1": [], "r2": []}
    barrier = threading.Barrier(2)

    def work(owner: str) -> None:
        barrier.wait()
        while items := store.notify.claim_due("ops", "webhook:0", owner, NOW, 60, limit=3):
            taken[owner].extend(i.id for i in items)

    threads = [threading.Thread(target=work, args=(o,)) for o in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = taken["r1"] + taken["r2"]
    assert len(everything) == 40 and len(set(everything)) == 40


def test_retry_delivered_dead_and_resend(store: Store) -> None:
    enqueue(store)
    notify = store.notify
    item = notify.claim_due("ops", "webhook:0", "r1", NOW, 60)[0]
    notify.mark_retry(item.id, NOW + timedelta(seconds=10), "HTTP 500")
    assert notify.claim_due("ops", "webhook:0", "r1", NOW + timedelta(seconds=5), 60) == []
    assert notify.next_attempt_at("ops", "webhook:0") == NOW + timedelta(seconds=10)
    item = notify.claim_due("ops", "webhook:0", "r1", NOW + timedelta(seconds=10), 60)[0]
    notify.mark_dead(item.id, "permanent failure: HTTP 400")
    dead = notify.messages("dead")
    assert [(d.id, d.last_error, d.attempts) for d in dead] == [
        (item.id, "permanent failure: HTTP 400", 2)]
    assert notify.counts() == {("ops", "webhook:0", "dead"): 1}
    resent = notify.resend(item.id, NOW + timedelta(hours=1))
    assert resent is not None and resent.status == "pending" and resent.attempts == 0
    item = notify.claim_due("ops", "webhook:0", "r1", NOW + timedelta(hours=1), 60)[0]
    notify.mark_delivered(item.id, NOW + timedelta(hours=1))
    assert notify.get(item.id).status == "delivered"  # type: ignore[union-attr]
    assert notify.resend(999_999, NOW) is None


def test_a_newer_message_for_a_group_supersedes_a_waiting_older_one(store: Store) -> None:
    enqueue(store, group="g1")
    enqueue(store, group="g2")
    enqueue(store, group="g1")
    with store.engine.connect() as conn:
        rows = conn.execute(select(OUTBOX.c.id, OUTBOX.c.group_key, OUTBOX.c.status)
                            .order_by(OUTBOX.c.id)).all()
    assert [(r[1], r[2]) for r in rows] == [("g1", "superseded"), ("g2", "pending"),
                                            ("g1", "pending")]


def test_release_leases_frees_a_dead_processes_messages(store: Store) -> None:
    enqueue(store)
    store.notify.claim_due("ops", "webhook:0", "dead-process", NOW, 60)
    assert store.notify.release_leases(NOW + timedelta(seconds=1)) == 1
    assert len(store.notify.claim_due("ops", "webhook:0", "me", NOW + timedelta(seconds=1),
                                      60)) == 1


def test_silences_round_trip_and_expired_ones_are_kept(store: Store) -> None:
    weekends = TimeIntervalSpec.model_validate({"weekdays": ["saturday:sunday"],
                                                "times": [{"start_time": "00:00",
                                                           "end_time": "24:00"}],
                                                "location": "Europe/London"})
    plain = new_silence(SilenceSpec(tuple(parse_matchers('borough="Camden"')), NOW,
                                    NOW + timedelta(hours=2), "alice", "reload"), NOW, "s1")
    recurring = new_silence(SilenceSpec(tuple(parse_matchers('team=~"crime|roads"')), NOW,
                                        NOW + timedelta(days=90), "bob", "weekends",
                                        weekends), NOW + timedelta(seconds=1), "s2")
    store.notify.save_silence(plain)
    store.notify.save_silence(recurring)
    assert store.notify.silences() == [recurring, plain]
    store.notify.save_silence(expire(plain, NOW + timedelta(minutes=5)))
    kept = store.notify.silence("s1")
    assert kept is not None and kept.state(NOW + timedelta(minutes=6)) == "expired"
    assert kept.expired_at == NOW + timedelta(minutes=5)
    loaded = store.notify.silence("s2")
    assert loaded is not None and loaded.recurrence == weekends
    assert loaded.mutes({"team": "crime"}, NOW + timedelta(days=1))  # Saturday


def test_meta_values_are_replaced(store: Store) -> None:
    store.notify.set_meta("k", "v1", NOW)
    store.notify.set_meta("k", "v2", NOW)
    assert store.notify.get_meta("k") == "v2" and store.notify.get_meta("other") is None
