"""What this process just saved and enqueued reaches the notifier and the dispatcher from
memory: the transitions are still claimed in the store, the messages still leased, but
neither is decoded again — and what is built from memory equals what the store decodes."""

from __future__ import annotations

import copy
from dataclasses import fields
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from monitor.alerts.state import Transition
from monitor.model import AlertState
from monitor.notify.dispatcher import Enqueued
from monitor.notify.notification import Notification
from monitor.notify.notifier import Notifier
from monitor.store import Store
from monitor.store.alerts import Saved
from monitor.store.notify import OUTBOX, TransitionEvent
from tests.notify.helpers import T0, make_notifier, notify_config, record
from tests.notify.loopback import LoopbackReceiver, Reply


class Rollback(Exception):
    """Leaves a claim undone, so the same rows can be claimed again."""


def ops(hook: LoopbackReceiver) -> dict[str, Any]:
    return {"name": "ops", "webhook": [{"url": hook.url()}, {"url": hook.url("/second")}]}


def move(area: str, to_state: AlertState, value: Any, *, notify: bool = True,
         alertname: str = "BurglaryRising") -> Transition:
    """One transition as the engine makes it (values may be numpy floats)."""
    from_state = AlertState.PENDING if to_state is AlertState.FIRING else AlertState.FIRING
    labels = {"alertname": alertname, "area": area, "severity": "warning"}
    return Transition(
        alert_id=f"{alertname}-{area}", rule=alertname, labels=labels, from_state=from_state,
        to_state=to_state, at=T0, value=value, explanation=f"up {value} in {area} — Jul-08",
        annotations={"summary": f"{alertname} in {area}", "period_id": "2008-07",
                     "value_text": "+6.1%"}, notify=notify, group="crime")


def save(store: Store) -> Saved:
    """Save a cycle's transitions as the rule service does; return what the save wrote."""
    return store.alerts.save([], [
        move("camden", AlertState.FIRING, np.float64(6.1)),
        move("brent", AlertState.FIRING, 4.8),
        move("ealing", AlertState.RESOLVED, None),
        move("hackney", AlertState.FIRING, np.float32(0.5), alertname="RobberyRising"),
        move("barnet", AlertState.FIRING, 9.9, notify=False),  # flapping: held, not claimed
    ], T0)


def claim(store: Store, known: Saved | None) -> list[TransitionEvent]:
    """Claim every claimable transition and undo the claim."""
    claimed: list[TransitionEvent] = []
    with pytest.raises(Rollback), store.notify.transaction() as tx:
        claimed.extend(tx.claim_transitions("me", T0, 100,
                                            known.transitions if known is not None else None))
        raise Rollback
    return claimed


def assert_same(built: object, decoded: object) -> None:
    """Field by field, values and their types."""
    assert type(built) is type(decoded)
    for f in fields(built):  # type: ignore[arg-type]
        ours, theirs = getattr(built, f.name), getattr(decoded, f.name)
        assert ours == theirs, f.name
        assert type(ours) is type(theirs), f.name


def test_it_builds_the_claimed_transitions_it_saved_as_the_store_decodes_them(
        store: Store) -> None:
    record(store, "other", "firing", T0, 1.5)  # another process's row: decoded
    saved = save(store)
    from_memory = claim(store, saved)
    decoded = claim(store, None)
    assert [e.id for e in from_memory] == [e.id for e in decoded]
    assert len(decoded) == 5  # the held (flapping) transition is never claimed
    for built, stored in zip(from_memory, decoded, strict=True):
        assert_same(built, stored)
    ours = [e for e in from_memory if e.id in saved.transitions]
    assert len(ours) == 4
    assert all(e.labels is saved.transitions[e.id].labels for e in ours)
    [theirs] = [e for e in from_memory if e.id not in saved.transitions]
    assert theirs.alert_id == "other"


def test_it_sends_the_messages_it_built_as_the_store_decodes_them_then_forgets_them(
        store: Store, hook: LoopbackReceiver) -> None:
    saved = save(store)
    moves = list(saved.transitions.values())
    before = copy.deepcopy([(t.labels, t.annotations) for t in moves])
    notifier = make_notifier(store, notify_config([ops(hook)]))
    result = notifier.process_transitions(saved=saved)
    assert result.claimed == 4 and result.messages == 4  # two groups, two integrations
    items = store.notify.messages("pending")
    assert sorted(i.id for i in items) == sorted(i for i, _, _ in result.enqueued)
    for item in items:
        built = notifier.enqueued.get(item.id)
        assert built is not None
        assert_same(built, Notification.from_json(item.payload))
        for ours, theirs in zip(built.alerts, Notification.from_json(item.payload).alerts,
                                strict=True):
            assert_same(ours, theirs)
    # Sent from memory: the stored payloads are not read (unreadable, they would be
    # dead letters).
    with store.engine.begin() as conn:
        conn.execute(update(OUTBOX).values(payload="not JSON"))
    assert {o.outcome for o in notifier.dispatch()} == {"delivered"}
    assert len(hook.requests) == 4 and all(not r.problems for r in hook.requests)
    assert len(notifier.enqueued) == 0
    # Nothing downstream changed the engine's dicts it was handed.
    assert [(t.labels, t.annotations) for t in moves] == before


def test_a_restarted_process_decodes_what_the_previous_one_enqueued(
        store: Store, hook: LoopbackReceiver) -> None:
    config = notify_config([ops(hook)])
    first = make_notifier(store, config, instance="first")
    first.process_transitions(saved=save(store))
    built = {i.id: first.enqueued.get(i.id) for i in store.notify.messages("pending")}
    restarted = make_notifier(store, config, instance="restarted")
    assert len(restarted.enqueued) == 0
    assert {o.outcome for o in restarted.dispatch()} == {"delivered"}
    bodies = sorted(r.body for r in hook.requests)
    assert len(bodies) == 4
    # The same messages, had the first process sent them from memory.
    assert all(b is not None for b in built.values())
    assert sorted(n.to_json() for n in built.values() if n is not None) == sorted(
        i.payload for i in store.notify.messages("delivered"))


def test_a_retried_message_is_kept_and_a_dead_one_forgotten(
        store: Store, hook: LoopbackReceiver) -> None:
    notifier = make_notifier(store, notify_config([{"name": "ops",
                                                    "webhook": [{"url": hook.url()}]}]))
    hook.replies.extend([Reply(503, "busy"), Reply(503, "busy"), Reply(400, "bad")])
    notifier.process_transitions(saved=save(store))
    assert len(notifier.enqueued) == 2
    assert sorted(o.outcome for o in notifier.dispatch()) == ["failed", "failed"]
    assert len(notifier.enqueued) == 2  # sent again from memory
    notifier.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
    outcomes = sorted(o.outcome for o in notifier.dispatch())
    assert outcomes == ["dead", "delivered"]
    assert len(notifier.enqueued) == 0


def test_a_replica_that_claimed_first_sends_them_and_the_saver_claims_nothing(
        store: Store, store_url: str, hook: LoopbackReceiver) -> None:
    from monitor.store import open_store

    config = notify_config([ops(hook)])
    other_store = open_store(store_url)
    try:
        other = make_notifier(other_store, config, instance="other")
        saver = make_notifier(store, config, instance="saver")
        saved = save(store)
        assert other.process_transitions().claimed == 4  # decoded: not its save
        assert saver.process_transitions(saved=saved).claimed == 0
        other.dispatch()
        saver.dispatch()
        assert len(hook.requests) == 4  # each group once per integration
    finally:
        other_store.close()


def test_enqueued_is_bounded_and_keeps_only_the_newest_message_of_a_group() -> None:
    def message(group: str, n: int) -> Notification:
        return Notification(kind="alerts", receiver="ops", group_key=group, group_labels={},
                            alerts=(), created_at=T0, message_id=f"m{n}", thread_id=f"m{n}")

    held = Enqueued(capacity=3)
    held.add(1, "webhook:0", message("g1", 1))
    held.add(2, "webhook:1", message("g1", 1))  # another integration: another lane
    held.add(3, "webhook:0", message("g1", 3))  # supersedes row 1
    assert (held.get(1), len(held)) == (None, 2)
    held.add(4, "webhook:0", message("g2", 4))
    held.add(5, "webhook:0", message("g3", 5))  # the oldest (row 2) goes
    assert held.get(2) is None and len(held) == 3
    held.drop(5)
    assert [held.get(i) is not None for i in (3, 4, 5)] == [True, True, False]


def test_the_notifier_keeps_what_it_enqueued_across_a_reload(
        store: Store, hook: LoopbackReceiver) -> None:
    config = notify_config([ops(hook)])
    notifier: Notifier = make_notifier(store, config)
    notifier.process_transitions(saved=save(store))
    notifier.reload(config)
    assert notifier.dispatcher.enqueued is notifier.enqueued and len(notifier.enqueued) == 4
    notifier.dispatch()
    assert len(notifier.enqueued) == 0


def test_its_alerts_copied_from_the_claimed_rows_are_the_alerts_it_built(
        store: Store) -> None:
    # The notifier's alerts are written by the database from the claimed transition
    # rows (save_claimed): each must be the alert apply_transitions built, field by
    # field, as the upsert of the built alerts would have stored it — for an alert fired
    # and resolved in one batch, one resolved whose start the table holds, and another
    # process's row.
    from monitor.notify.notifier import apply_transitions, claimed_rows, resolving

    record(store, "held", "firing", T0 - timedelta(hours=2), 3.0)
    with store.notify.transaction() as tx:  # the notifier tracks it from an earlier run
        events = tx.claim_transitions("me", T0, 100)
        tx.save_alerts(list(apply_transitions({}, events).values()))
    record(store, "held", "resolved", T0 + timedelta(minutes=1), 1.0)
    record(store, "flip", "firing", T0, 2.0)
    record(store, "flip", "resolved", T0 + timedelta(minutes=2), 0.5)
    saved = save(store)

    def stored(copied: bool) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        with pytest.raises(Rollback), store.notify.transaction() as tx:
            claimed = [e for e in tx.claim_transitions("me", T0, 100, saved.transitions)
                       if e.notifiable]
            changed = apply_transitions(tx.alert_starts(resolving(claimed)), claimed)
            if copied:
                tx.save_claimed(changed, claimed_rows(claimed))
            else:
                tx.save_alerts(list(changed.values()))
            rows.extend(sorted((a.alert_id, a.rule, dict(a.labels), dict(a.annotations),
                                a.status, a.value, a.explanation, a.starts_at, a.ends_at,
                                a.updated_at) for a in tx.load_alerts()))
            raise Rollback
        return rows

    copied = stored(True)
    # held, flip, and save()'s camden, brent, ealing and hackney (barnet is flapping)
    assert len(copied) == 6
    assert copied == stored(False)
    by_id = {r[0]: r for r in copied}
    assert by_id["held"][4] == "resolved" and by_id["held"][7] == T0 - timedelta(hours=2)
    assert by_id["flip"][4] == "resolved" and by_id["flip"][7] == T0
