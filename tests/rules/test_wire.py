"""A partition's alert changes sent as columns come back as exactly the records and
transitions the worker made, in the order one process makes them."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.state import AlertRecord, Transition, transition
from monitor.model import AlertState
from monitor.rules.wire import concat, encode, merge

NOW = datetime(2026, 3, 31, 12, tzinfo=UTC)
ORDER = {("crime", "A"): 0, ("crime", "B"): 1}


def _record(i: int, rule: str, state: AlertState, **more: object) -> AlertRecord:
    return AlertRecord(f"id{i}", rule, {"alertname": rule, "area": f"a{i}"}, state,
                       {"explanation": f"text {i}", "period": "March 2026"},
                       more.pop("value", 1.5 * i), f"Text {i}.", group="crime",
                       **more)  # type: ignore[arg-type]


def _changes() -> tuple[list[AlertRecord], list[Transition]]:
    firing = _record(1, "B", AlertState.FIRING, active_since=NOW - timedelta(days=62),
                     fired_at=NOW, last_evaluated=NOW, pending_evaluations=3,
                     pending_periods=2, last_period=24313, history="0110", flapping=True,
                     notified_state=AlertState.PENDING)
    resolved = _record(2, "A", AlertState.RESOLVED, value=None, resolved_at=NOW,
                       keep_firing_until=NOW + timedelta(hours=1), last_evaluated=NOW)
    pending = _record(3, "B", AlertState.PENDING, value=-0.0, active_since=NOW,
                      last_evaluated=NOW)
    quiet = _record(4, "A", AlertState.INACTIVE)  # changed, no transition
    changed = [firing, resolved, pending, quiet]
    moves = [transition(firing, 1, NOW, True), transition(resolved, 2, NOW, True),
             transition(pending, 0, NOW, False)]
    return changed, moves


def test_it_sends_records_and_transitions_as_columns_and_makes_them_again_exactly() -> None:
    changed, moves = _changes()
    sent = pickle.loads(pickle.dumps(encode(changed, moves, ORDER)))
    assert not sent.odd  # every transition went as four numbers
    records, transitions = sent.build(NOW)
    assert records == changed
    assert transitions == moves


def test_a_record_the_receiver_holds_travels_without_its_labels_and_takes_the_held_ones(
        ) -> None:
    changed, moves = _changes()
    held = {r.id: r for r in changed[:2]}  # what the receiver started the cycle from
    sent = pickle.loads(pickle.dumps(encode(changed, moves, ORDER, held=held)))
    assert sent.labels == [None, None, changed[2].labels, changed[3].labels]
    records, transitions = sent.build(NOW, held)
    assert records == changed and transitions == moves
    assert records[0].labels is held["id1"].labels  # the held dict, not a copy
    with pytest.raises(ValueError, match="without their labels"):
        sent.build(NOW)


def test_a_transition_that_is_not_its_record_travels_as_itself() -> None:
    changed, moves = _changes()
    odd = Transition("id1", "B", {"alertname": "B"}, AlertState.PENDING, AlertState.FIRING,
                     NOW, 99.0, "Other.", {}, True, "crime")
    sent = encode(changed, [*moves, odd], ORDER)
    assert [t for _, t in sent.odd] == [odd]
    assert sent.build(NOW)[1] == [*moves, odd]


def test_partitions_merge_in_the_rules_order_each_partition_in_its_own() -> None:
    changed, moves = _changes()
    first = encode(changed[:2], moves[:2], ORDER)  # B (id1), A (id2)
    second = encode(changed[2:], moves[2:], ORDER)  # B (id3), A (id4)
    records, transitions = concat([first, second]).build(NOW)
    assert [r.id for r in records] == ["id2", "id4", "id1", "id3"]
    assert [t.alert_id for t in transitions] == ["id2", "id1", "id3"]
    assert concat([]).build(NOW) == ([], [])


def test_partitions_made_as_they_arrive_merge_exactly_as_their_columns_concatenated() -> None:
    changed, moves = _changes()
    odd = Transition("id3", "B", {"alertname": "B"}, AlertState.PENDING, AlertState.FIRING,
                     NOW, 99.0, "Other.", {}, True, "crime")
    parts = [encode(changed[:2], moves[:2], ORDER), encode(changed[2:], [*moves[2:], odd], ORDER)]
    made = [p.made(NOW) for p in reversed(parts)][::-1]  # each part made on its own
    records, transitions = merge(parts, made)
    assert (records, transitions) == concat(parts).build(NOW)
    assert [r.id for r in records] == ["id2", "id4", "id1", "id3"]
    assert [t.alert_id for t in transitions] == ["id2", "id1", "id3", "id3"]
    assert transitions[-1] is odd
    assert merge([], []) == ([], [])
