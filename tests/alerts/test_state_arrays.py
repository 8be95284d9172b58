"""The state machine over arrays does exactly what the one-record reference does.

Random policies (``for`` in seconds, evaluations or periods, keep_firing_for, flapping
windows and thresholds) and random sequences of observations (active or not, the data
period moving on or not, the clock moving by random steps) go through ``step`` one
record at a time and through ``step_many`` for all records at once; every record and
every transition must be the same after every step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.policy import Flapping, ForSpec
from monitor.alerts.state import (
    NO_PERIOD,
    SEEN_ALL,
    SEEN_CLEARED,
    SEEN_RESOLVED,
    STATE_CODES,
    AlertArrays,
    AlertRecord,
    Observation,
    Policy,
    Transition,
    step,
    step_many,
    step_record,
)

T0 = datetime(2008, 7, 31, 12, tzinfo=UTC)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    kind = draw(st.sampled_from(["none", "seconds", "evaluations", "periods"]))
    count = draw(st.integers(1, 4))
    for_ = {"none": ForSpec(), "seconds": ForSpec(seconds=draw(st.sampled_from(
        [0.5, 59.999999, 60.0, 150.0, 3600.0]))), "evaluations": ForSpec(evaluations=count),
        "periods": ForSpec(periods=count)}[kind]
    keep = draw(st.sampled_from([0.0, 0.0, 30.0, 120.0, 90.0000005]))
    flapping = None
    if draw(st.booleans()):
        low = draw(st.sampled_from([0.1, 0.25, 0.3]))
        flapping = Flapping(window=draw(st.sampled_from([4, 5, 8, 21, 64])), low=low,
                            high=draw(st.sampled_from([0.35, 0.5, 0.7])))
    return Policy(for_, keep, flapping)


step_st = st.tuples(st.booleans(), st.sampled_from([None, 0, 1, 1, 2]),
                    st.sampled_from([0, 1, 30, 59, 60, 75, 120, 150, 3600]),
                    st.sampled_from([0, 0, 0, 1, 500_000, 999_999]))


def apply(record: AlertRecord, seen: Observation, arrays_out: AlertArrays, i: int,
          seen_code: int, now: datetime) -> AlertRecord:
    """Rebuild row ``i``'s record as the engine does: moving fields from the arrays,
    value and texts from the observation as ``seen_code`` says."""
    value, explanation, annotations = record.value, record.explanation, record.annotations
    if seen_code == SEEN_ALL:
        value, explanation, annotations = seen.value, seen.explanation, seen.annotations
    elif seen_code == SEEN_RESOLVED:
        value = seen.value
        explanation = seen.explanation or record.explanation
        annotations = seen.annotations or record.annotations
    elif seen_code == SEEN_CLEARED:
        value, explanation = seen.value, seen.explanation
    return arrays_out.record(i, record, now, value=value, explanation=explanation,
                             annotations=annotations)


@settings(max_examples=300, deadline=None)
@given(policy=policies(), sequences=st.lists(st.lists(step_st, min_size=1, max_size=40),
                                             min_size=1, max_size=6))
def test_step_many_matches_step_for_every_record_and_transition(
        policy: Policy, sequences: list[list[tuple[bool, int | None, int, int]]]) -> None:
    n = len(sequences)
    length = max(len(s) for s in sequences)
    reference = [AlertRecord(f"a{i}", "Rule", {"alertname": "Rule", "row": str(i)})
                 for i in range(n)]
    mine = list(reference)
    arrays = AlertArrays.of(mine)
    now = T0
    period = [100] * n
    for k in range(length):
        # One clock for every row (as in one evaluation); each row's own observation.
        now = now + timedelta(seconds=sequences[0][k % len(sequences[0])][2],
                              microseconds=sequences[0][k % len(sequences[0])][3])
        active = np.zeros(n, dtype=bool)
        periods = np.full(n, NO_PERIOD, dtype=np.int32)
        observations = []
        for i, seq in enumerate(sequences):
            on, move, _, _ = seq[k % len(seq)]
            if move is not None:
                period[i] += move
            seen = Observation(on, float(k) if on or k % 3 else None,
                               f"step {k}" if k % 4 else "", {"k": str(k)} if k % 5 else {},
                               None if move is None else period[i])
            observations.append(seen)
            active[i] = on
            periods[i] = NO_PERIOD if seen.period is None else seen.period
        stepped = step_many(arrays, active, periods, now, policy)
        for i in range(n):
            expected, moves = step(reference[i], observations[i], now, policy)
            got = apply(mine[i], observations[i], stepped.arrays, i, int(stepped.seen[i]), now)
            assert got == expected, (k, i)
            transitions: list[Transition] = []
            if stepped.moved[i]:
                transitions.append(Transition(
                    got.id, got.rule, dict(got.labels), STATE_CODES[stepped.moved_from[i]],
                    got.state, now, got.value, got.explanation, dict(got.annotations),
                    bool(stepped.notify[i]), got.group))
            assert transitions == moves, (k, i)
            assert step_record(mine[i], observations[i], now, policy) == (expected, moves)
            reference[i], mine[i] = expected, got
        arrays = stepped.arrays
    assert AlertArrays.of(mine).differs(arrays).sum() == 0  # and they round-trip


def test_a_record_round_trips_through_the_arrays() -> None:
    record = AlertRecord("a", "Rule", {"alertname": "Rule"}, STATE_CODES[2], {"x": "y"}, 1.5,
                         "why", T0, T0 + timedelta(microseconds=7), None,
                         T0 + timedelta(days=400), T0, 3, 2, 24_000, "0110", True,
                         STATE_CODES[3], "g")
    arrays = AlertArrays.of([record])
    assert arrays.record(0, record, T0, value=1.5, explanation="why",
                         annotations={"x": "y"}) == record


def test_many_records_make_the_rows_set_row_makes_one_at_a_time() -> None:
    # ``of`` converts each distinct instant once: records sharing instants (as one
    # evaluation's do), None, a naive time and the same instant in another zone.
    later = T0 + timedelta(microseconds=1)
    naive = later.replace(tzinfo=None)
    east = later.astimezone(timezone(timedelta(hours=2)))
    records = [AlertRecord(f"a{i}", "Rule", {"alertname": "Rule"}, STATE_CODES[i % 4],
                           active_since=[None, T0, later, naive, east][i % 5],
                           fired_at=[T0, None, east][i % 3], last_evaluated=later,
                           pending_evaluations=i, last_period=None if i % 2 else 24_000 + i,
                           history="1" * (i % 70), flapping=bool(i % 2),
                           notified_state=STATE_CODES[(i + 1) % 4]) for i in range(12)]
    one_at_a_time = AlertArrays.empty(len(records))
    for i, record in enumerate(records):
        one_at_a_time.set_row(i, record)
    many = AlertArrays.of(records)
    for name in AlertArrays.__dataclass_fields__:
        assert getattr(many, name).dtype == getattr(one_at_a_time, name).dtype, name
        assert getattr(many, name).tolist() == getattr(one_at_a_time, name).tolist(), name
    assert len(AlertArrays.of([])) == 0


def test_for_and_keep_firing_for_hold_to_the_microsecond() -> None:
    # A minute of `for` is over at exactly a minute; a minute of keep_firing_for too.
    policy = Policy(ForSpec(seconds=60.0), 60.0)
    reference = AlertRecord("a", "Rule", {"alertname": "Rule"})
    arrays = AlertArrays.of([reference])
    states = []
    for k, on in enumerate([True, True, False, False]):
        now = T0 + timedelta(minutes=k)
        reference, _ = step(reference, Observation(on, 1.0, "x", {}, None), now, policy)
        arrays = step_many(arrays, np.array([on]), np.array([NO_PERIOD], dtype=np.int32),
                           now, policy).arrays
        states.append((reference.state, STATE_CODES[arrays.state[0]]))
    assert [a for a, _ in states] == [b for _, b in states] == [
        STATE_CODES[1], STATE_CODES[2], STATE_CODES[2], STATE_CODES[3]]
