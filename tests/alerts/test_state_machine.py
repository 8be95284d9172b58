"""The alert state machine: pending, firing, resolving, `for`, keep_firing_for, flapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.state import AlertRecord, Observation, Policy, flap_share, step
from monitor.model import AlertState
from monitor.rules.schema import Flapping, ForSpec

T0 = datetime(2008, 7, 31, 12, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def run(results: list[bool], policy: Policy, periods: list[int] | None = None
        ) -> list[tuple[AlertState, list[str]]]:
    record = AlertRecord("a1", "Rule", {"alertname": "Rule"})
    out = []
    for k, active in enumerate(results):
        period = periods[k] if periods else k
        seen = Observation(active, float(k), f"value {k}", {}, period)
        record, transitions = step(record, seen, T0 + k * MINUTE, policy)
        out.append((record.state, [f"{t.from_state.value}->{t.to_state.value}"
                                   f"{'' if t.notify else ' (held)'}" for t in transitions]))
    return out


def test_it_fires_at_once_without_for() -> None:
    states = run([True], Policy())
    assert states == [(AlertState.FIRING, ["inactive->firing"])]


def test_it_waits_for_n_evaluations() -> None:
    states = [s for s, _ in run([True, True, True], Policy(ForSpec(evaluations=3)))]
    assert states == [AlertState.PENDING, AlertState.PENDING, AlertState.FIRING]


def test_it_counts_new_periods_not_evaluations_for_periods() -> None:
    # Evaluated every minute, but the data only moves on at the third evaluation.
    states = [s for s, _ in run([True, True, True, True], Policy(ForSpec(periods=2)),
                                periods=[100, 100, 101, 101])]
    assert states == [AlertState.PENDING, AlertState.PENDING, AlertState.FIRING,
                      AlertState.FIRING]


def test_it_waits_for_a_duration() -> None:
    states = [s for s, _ in run([True] * 4, Policy(ForSpec(seconds=150)))]
    assert states == [AlertState.PENDING] * 3 + [AlertState.FIRING]


def test_a_pending_alert_that_clears_goes_back_to_inactive_silently() -> None:
    states = run([True, False], Policy(ForSpec(evaluations=3)))
    # Recorded, but not for the notifier: people hear of firing and resolved only.
    assert states == [(AlertState.PENDING, ["inactive->pending (held)"]),
                      (AlertState.INACTIVE, ["pending->inactive (held)"])]


def test_it_resolves_with_the_value_at_resolution() -> None:
    record = AlertRecord("a1", "Rule", {})
    record, _ = step(record, Observation(True, 80.0, "80", {}, 1), T0, Policy())
    record, transitions = step(record, Observation(False, 65.5, "65.5", {}, 2), T0 + MINUTE,
                               Policy())
    assert record.state is AlertState.RESOLVED
    assert transitions[0].value == 65.5
    assert transitions[0].explanation == "65.5"


def test_keep_firing_for_delays_the_resolution() -> None:
    policy = Policy(keep_firing_for=150)
    # Clear from 1m on; kept firing until 1m + 150s = 3m30s.
    states = [s for s, _ in run([True, False, False, False, False], policy)]
    assert states == [AlertState.FIRING, AlertState.FIRING, AlertState.FIRING,
                      AlertState.FIRING, AlertState.RESOLVED]


def test_keep_firing_for_is_cancelled_when_the_condition_returns() -> None:
    policy = Policy(keep_firing_for=150)
    states = [s for s, _ in run([True, False, True, False, False, False], policy)]
    assert states[-1] is AlertState.FIRING
    assert AlertState.RESOLVED not in states


@pytest.mark.parametrize(("history", "share"), [
    pytest.param("0000", 0.0, id="steady"),
    pytest.param("0101", 1.0, id="every-result-changes"),
    pytest.param("0011", 1.0 / 3.0, id="one-change-in-the-middle"),
])
def test_flap_share_weights_recent_changes(history: str, share: float) -> None:
    assert flap_share(history) == pytest.approx(share)


def test_it_holds_notifications_while_flapping_and_announces_where_it_settled() -> None:
    policy = Policy(flapping=Flapping(window=6, high=0.5, low=0.25))
    results = [True, False, True, False, True, False, False, False, False, False, False]
    trace = run(results, policy)
    notified = [t for _, ts in trace for t in ts if "(held)" not in t]
    held = [t for _, ts in trace for t in ts if "(held)" in t]
    assert held, "flapping transitions must be recorded but held"
    # Told about the first firing and resolution, then only where it settled.
    assert notified[:2] == ["inactive->firing", "firing->resolved"]
    assert trace[-1][0] is AlertState.RESOLVED
    assert len(notified) < len(notified) + len(held)
