"""The alert state machine: one pure step per evaluation.

    inactive ──active──▶ pending ──held for `for`──▶ firing
        ▲                   │                          │
        └──── not active ───┘          not active, and keep_firing_for over
                                                       ▼
                                                   resolved ──active──▶ pending …

Flap detection follows Nagios: the last ``window`` results are kept; the share of
state changes, weighted from 0.8 (oldest) to 1.2 (newest), above ``high`` starts
flapping, below ``low`` ends it. While flapping, notifications are held: transitions
are still recorded, marked ``notify=False``, and the state people were last told about
is re-announced when the flapping stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.alerts.policy import Flapping, ForSpec
from monitor.model import AlertState


@dataclass(slots=True)
class AlertRecord:
    """The persisted state of one alert instance. ``step`` never mutates its input."""

    id: str
    rule: str
    labels: dict[str, str]
    state: AlertState = AlertState.INACTIVE
    annotations: dict[str, str] = field(default_factory=dict)
    value: float | None = None
    explanation: str = ""
    active_since: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    keep_firing_until: datetime | None = None
    last_evaluated: datetime | None = None
    pending_evaluations: int = 0
    pending_periods: int = 0
    last_period: int | None = None
    history: str = ""  # "1" active, "0" not, newest last
    flapping: bool = False
    notified_state: AlertState = AlertState.INACTIVE
    group: str = ""  # the rule group that owns the alert; part of its id, not of its labels


@dataclass(frozen=True)
class Observation:
    """What this evaluation saw for one alert instance."""

    active: bool
    value: float | None
    explanation: str
    annotations: dict[str, str]
    period: int | None  # the latest data period, for `for: N periods`


@dataclass(frozen=True)
class Policy:
    for_: ForSpec = field(default_factory=ForSpec)
    keep_firing_for: float = 0.0
    flapping: Flapping | None = None


@dataclass(frozen=True)
class Transition:
    alert_id: str
    rule: str
    labels: dict[str, str]
    from_state: AlertState
    to_state: AlertState
    at: datetime
    value: float | None
    explanation: str
    annotations: dict[str, str]
    notify: bool
    group: str = ""


_FIELDS = tuple(AlertRecord.__dataclass_fields__)


def _clone(record: AlertRecord) -> AlertRecord:
    return AlertRecord(*[getattr(record, name) for name in _FIELDS])


def _set(record: AlertRecord, **changes: Any) -> AlertRecord:
    """Update ``record`` in place (a clone that ``step`` owns) and return it."""
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def flap_share(history: str) -> float:
    """Return the weighted share of state changes in ``history`` (Nagios' formula)."""
    if len(history) < 2:
        return 0.0
    changes = len(history) - 1
    total = 0.0
    weights = 0.0
    for i in range(1, len(history)):
        weight = 0.8 + 0.4 * (i - 1) / max(1, changes - 1)
        weights += weight
        if history[i] != history[i - 1]:
            total += weight
    return total / weights if weights else 0.0


def _held(record: AlertRecord, now: datetime, spec: ForSpec) -> bool:
    if spec.evaluations and record.pending_evaluations < spec.evaluations:
        return False
    if spec.periods and record.pending_periods < spec.periods:
        return False
    waited = record.active_since is not None and \
        now - record.active_since >= timedelta(seconds=spec.seconds)
    return not spec.seconds or waited


def step(record: AlertRecord, seen: Observation, now: datetime, policy: Policy
         ) -> tuple[AlertRecord, list[Transition]]:
    """Return the record after this evaluation and the transitions it made."""
    prev = record.state
    history = record.history
    if policy.flapping is not None:
        history = (history + ("1" if seen.active else "0"))[-policy.flapping.window:]
    flapping = record.flapping
    if policy.flapping is not None and len(history) >= policy.flapping.window // 2:
        share = flap_share(history)
        if not flapping and share > policy.flapping.high:
            flapping = True
        elif flapping and share < policy.flapping.low:
            flapping = False
    r = _set(_clone(record), history=history, flapping=flapping, last_evaluated=now)
    if seen.active:
        new_period = seen.period is not None and seen.period != record.last_period
        r = _set(r, value=seen.value, explanation=seen.explanation,
                    annotations=seen.annotations, last_period=seen.period,
                    keep_firing_until=None)
        if prev in (AlertState.INACTIVE, AlertState.RESOLVED):
            r = _set(r, state=AlertState.PENDING, active_since=now, pending_evaluations=1,
                        pending_periods=1, fired_at=None, resolved_at=None)
        elif prev is AlertState.PENDING:
            r = _set(r, pending_evaluations=r.pending_evaluations + 1,
                        pending_periods=r.pending_periods + (1 if new_period else 0))
        if r.state is AlertState.PENDING and _held(r, now, policy.for_):
            r = _set(r, state=AlertState.FIRING, fired_at=now)
    else:
        if prev is AlertState.FIRING:
            if policy.keep_firing_for > 0:
                until = r.keep_firing_until or now + timedelta(seconds=policy.keep_firing_for)
                r = _set(r, keep_firing_until=until) if now < until else \
                    _resolve(r, seen, now)
            else:
                r = _resolve(r, seen, now)
        elif prev is AlertState.PENDING:
            r = _set(r, state=AlertState.INACTIVE, active_since=None, pending_evaluations=0,
                        pending_periods=0, value=seen.value, explanation=seen.explanation)
    transitions: list[Transition] = []
    if r.state is not prev:
        notify_now = r.state in (AlertState.FIRING, AlertState.RESOLVED) and not r.flapping
        transitions.append(_transition(r, prev, now, notify_now))
    if r.state in (AlertState.FIRING, AlertState.RESOLVED) and not r.flapping:
        if r.notified_state is not r.state and not (transitions and transitions[-1].notify):
            # Flapping stopped: tell people where things settled.
            transitions.append(_transition(r, r.notified_state, now, True))
        r = _set(r, notified_state=r.state)
    return r, transitions


def _resolve(r: AlertRecord, seen: Observation, now: datetime) -> AlertRecord:
    # The resolved record says what resolved it: the value, explanation and annotations
    # of this observation (rendered with the value and target that apply now), never the
    # firing ones beside a resolving explanation.
    return _set(r, state=AlertState.RESOLVED, resolved_at=now, keep_firing_until=None,
                   value=seen.value, explanation=seen.explanation or r.explanation,
                   annotations=seen.annotations or r.annotations,
                   pending_evaluations=0, pending_periods=0)


def _transition(r: AlertRecord, prev: AlertState, now: datetime, notify: bool) -> Transition:
    return Transition(r.id, r.rule, dict(r.labels), prev, r.state, now, r.value, r.explanation,
                      dict(r.annotations), notify, r.group)
