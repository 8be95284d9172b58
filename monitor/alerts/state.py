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

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

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


@dataclass(slots=True)
class Transition:
    """One change of an alert's state. Never changed once made (``dataclasses.replace``
    makes another), but not ``frozen``: a frozen dataclass's ``__init__`` sets each field
    through ``object.__setattr__``, 1.36 µs a transition against 0.31, and a first cycle
    at 1,000,000 series makes 1.6 million of them (twice on the distributed engine: in
    the worker's evaluation and in the daemon's merge)."""

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
    # The labels and annotations are the record's own dicts, never changed once made
    # (a revision's ``cause`` replaces a transition's annotations with a new dict): the
    # store encodes each dict once for the record, the transition and the history.
    return Transition(r.id, r.rule, r.labels, prev, r.state, now, r.value, r.explanation,
                      r.annotations, notify, r.group)


# --- the same machine over arrays ----------------------------------------------------
#
# The engine steps every alert of a rule at once: one row per alert, each field of
# AlertRecord that the machine moves held in a compact array. ``step`` above is the
# reference (one record, one step); ``step_many`` does exactly what it does, row by row
# (tests/alerts/test_state_arrays.py steps random sequences through both). Value,
# explanation and annotations stay out of the arrays: ``Stepped.seen`` says, per row,
# which of them the observation replaced, so they are built only for rows that changed.

STATE_CODES = (AlertState.INACTIVE, AlertState.PENDING, AlertState.FIRING, AlertState.RESOLVED)
CODE = {state: code for code, state in enumerate(STATE_CODES)}
INACTIVE, PENDING, FIRING, RESOLVED = range(4)
NO_TIME = np.iinfo(np.int64).min  # a datetime field that is None
NO_PERIOD = np.iinfo(np.int32).min  # last_period None
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

# What one step took from the observation, per row (``Stepped.seen``).
SEEN_NOTHING = 0  # not active and nothing to clear: value and texts unchanged
SEEN_ALL = 1  # active: value, explanation and annotations are the observation's
SEEN_RESOLVED = 2  # resolved: its value; its explanation and annotations unless empty
SEEN_CLEARED = 3  # pending back to inactive: its value and explanation


def micros(when: datetime | None) -> int:
    """Return ``when`` as microseconds since the epoch (exact); NO_TIME for None."""
    if when is None:
        return int(NO_TIME)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _US


def from_micros(value: int, like: datetime) -> datetime | None:
    """Return microseconds since the epoch as a datetime in ``like``'s zone."""
    if value == NO_TIME:
        return None
    out = _EPOCH + timedelta(microseconds=int(value))
    if like.tzinfo is None:
        return out.replace(tzinfo=None)
    return out if like.tzinfo is UTC else out.astimezone(like.tzinfo)


@dataclass
class AlertArrays:
    """The moving fields of n alert records, one row each. Times are microseconds since
    the epoch (NO_TIME: None); flap history is a bit string, newest in bit 0."""

    state: np.ndarray  # int8 codes of STATE_CODES
    active_since: np.ndarray  # int64
    fired_at: np.ndarray
    resolved_at: np.ndarray
    keep_firing_until: np.ndarray
    last_evaluated: np.ndarray
    pending_evaluations: np.ndarray  # int32
    pending_periods: np.ndarray  # int32
    last_period: np.ndarray  # int32, NO_PERIOD: None
    history: np.ndarray  # uint64 bits
    history_len: np.ndarray  # int8
    flapping: np.ndarray  # bool
    notified_state: np.ndarray  # int8

    @classmethod
    def empty(cls, n: int) -> AlertArrays:
        """n rows of fresh records (inactive, nothing recorded)."""
        def times() -> np.ndarray:
            return np.full(n, NO_TIME, dtype=np.int64)

        return cls(np.zeros(n, dtype=np.int8), times(), times(), times(), times(), times(),
                   np.zeros(n, dtype=np.int32),
                   np.zeros(n, dtype=np.int32), np.full(n, NO_PERIOD, dtype=np.int32),
                   np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=np.int8),
                   np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int8))

    @classmethod
    def of(cls, records: Sequence[AlertRecord]) -> AlertArrays:
        """The moving fields of ``records``, one row each (as ``set_row`` puts them):
        field by field, each distinct instant converted once."""
        made: dict[datetime | None, int] = {None: int(NO_TIME)}

        def times(name: str) -> np.ndarray:
            out = []
            for r in records:
                when = getattr(r, name)
                us = made.get(when)
                if us is None:
                    us = made[when] = micros(when)
                out.append(us)
            return np.array(out, dtype=np.int64).reshape(len(records))

        def column(values: list[Any], dtype: Any) -> np.ndarray:
            return np.array(values, dtype=dtype).reshape(len(records))

        return cls(
            column([CODE[r.state] for r in records], np.int8), times("active_since"),
            times("fired_at"), times("resolved_at"), times("keep_firing_until"),
            times("last_evaluated"),
            column([r.pending_evaluations for r in records], np.int32),
            column([r.pending_periods for r in records], np.int32),
            column([NO_PERIOD if r.last_period is None else r.last_period for r in records],
                   np.int32),
            column([int(r.history, 2) if r.history else 0 for r in records], np.uint64),
            column([len(r.history) for r in records], np.int8),
            column([r.flapping for r in records], bool),
            column([CODE[r.notified_state] for r in records], np.int8))

    @classmethod
    def concat(cls, parts: Sequence[AlertArrays]) -> AlertArrays:
        """The rows of ``parts``, end to end."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty(0)
        return cls(*[np.concatenate([getattr(p, f.name) for p in parts])
                     for f in fields(cls)])

    def __len__(self) -> int:
        return len(self.state)

    def set_row(self, i: int, r: AlertRecord) -> None:
        """Copy the moving fields of ``r`` into row ``i``."""
        self.state[i] = CODE[r.state]
        self.active_since[i] = micros(r.active_since)
        self.fired_at[i] = micros(r.fired_at)
        self.resolved_at[i] = micros(r.resolved_at)
        self.keep_firing_until[i] = micros(r.keep_firing_until)
        self.last_evaluated[i] = micros(r.last_evaluated)
        self.pending_evaluations[i] = r.pending_evaluations
        self.pending_periods[i] = r.pending_periods
        self.last_period[i] = NO_PERIOD if r.last_period is None else r.last_period
        self.history[i] = int(r.history, 2) if r.history else 0
        self.history_len[i] = len(r.history)
        self.flapping[i] = r.flapping
        self.notified_state[i] = CODE[r.notified_state]

    def take(self, rows: np.ndarray) -> AlertArrays:
        return AlertArrays(*[getattr(self, f.name)[rows] for f in fields(self)])

    def put(self, rows: np.ndarray, other: AlertArrays) -> None:
        for f in fields(self):
            getattr(self, f.name)[rows] = getattr(other, f.name)

    def columns(self) -> AlertColumns:
        """The rows as Python lists, to make many records without a numpy scalar each."""
        return AlertColumns(*[getattr(self, f.name).tolist() for f in fields(self)])

    def differs(self, other: AlertArrays) -> np.ndarray:
        """Rows where any moving field differs between the two."""
        out = np.zeros(len(self), dtype=bool)
        for f in fields(self):
            out |= getattr(self, f.name) != getattr(other, f.name)
        return out

    def record(self, i: int, old: AlertRecord, like: datetime | Times, *,
               value: float | None, explanation: str, annotations: dict[str, str]
               ) -> AlertRecord:
        """Return ``old`` with row ``i``'s moving fields and the given value and texts
        (times in ``like``'s zone; a ``Times`` converts many rows' times at once)."""
        times = like if isinstance(like, Times) else Times(like)
        n = int(self.history_len[i])
        return AlertRecord(
            old.id, old.rule, old.labels, STATE_CODES[self.state[i]], annotations, value,
            explanation, times.get(int(self.active_since[i])),
            times.get(int(self.fired_at[i])), times.get(int(self.resolved_at[i])),
            times.get(int(self.keep_firing_until[i])),
            times.get(int(self.last_evaluated[i])), int(self.pending_evaluations[i]),
            int(self.pending_periods[i]),
            None if self.last_period[i] == NO_PERIOD else int(self.last_period[i]),
            format(int(self.history[i]), f"0{n}b") if n else "", bool(self.flapping[i]),
            STATE_CODES[self.notified_state[i]], old.group)


@dataclass
class AlertColumns:
    """``AlertArrays.columns``: the same fields as lists."""

    state: list[int]
    active_since: list[int]
    fired_at: list[int]
    resolved_at: list[int]
    keep_firing_until: list[int]
    last_evaluated: list[int]
    pending_evaluations: list[int]
    pending_periods: list[int]
    last_period: list[int]
    history: list[int]
    history_len: list[int]
    flapping: list[bool]
    notified_state: list[int]

    def record(self, i: int, old: AlertRecord, times: Times, *, value: float | None,
               explanation: str, annotations: dict[str, str]) -> AlertRecord:
        """As ``AlertArrays.record``."""
        return self.make(i, old.id, old.rule, old.labels, old.group, times, value,
                         explanation, annotations)

    def make(self, i: int, key: str, rule: str, labels: dict[str, str], group: str,
             times: Times, value: float | None, explanation: str,
             annotations: dict[str, str]) -> AlertRecord:
        """Return the record of alert ``key`` (of ``rule`` in ``group``, with ``labels``)
        with row ``i``'s moving fields and the given value and texts."""
        n = self.history_len[i]
        period = self.last_period[i]
        return AlertRecord(
            key, rule, labels, STATE_CODES[self.state[i]], annotations, value,
            explanation, times.get(self.active_since[i]), times.get(self.fired_at[i]),
            times.get(self.resolved_at[i]), times.get(self.keep_firing_until[i]),
            times.get(self.last_evaluated[i]), self.pending_evaluations[i],
            self.pending_periods[i], None if period == NO_PERIOD else period,
            format(self.history[i], f"0{n}b") if n else "", self.flapping[i],
            STATE_CODES[self.notified_state[i]], group)


def make_records(arrays: AlertArrays, times: Times, ids: Sequence[str],
                 rules: Sequence[str], labels: Sequence[dict[str, str]],
                 groups: Sequence[str], values: Sequence[float | None],
                 explanations: Sequence[str], annotations: Sequence[dict[str, str]]
                 ) -> list[AlertRecord]:
    """Return one record per row of ``arrays``, each with that row's moving fields and
    the given identity, value and texts: what ``AlertColumns.make`` makes row by row,
    the fields converted a column at a time (each distinct instant, state and history
    once), so a row costs its record alone (a partition's 185,000 changed alerts at 1M
    series: 0.55-0.78 CPU-s row by row)."""
    n = len(arrays)

    def instants(column: np.ndarray) -> list[datetime | None]:
        distinct, where = np.unique(column, return_inverse=True)
        made = np.empty(len(distinct), dtype=object)
        made[:] = [times.get(v) for v in distinct.tolist()]
        return made[where.reshape(n)].tolist()  # type: ignore[no-any-return]

    def coded(column: np.ndarray) -> list[AlertState]:
        return _STATES[column.astype(np.intp)].tolist()  # type: ignore[no-any-return]

    period = arrays.last_period.astype(object)
    period[arrays.last_period == NO_PERIOD] = None
    bits, length = arrays.history.tolist(), arrays.history_len.tolist()
    history = [format(b, f"0{k}b") if k else "" for b, k in zip(bits, length, strict=True)] \
        if any(length) else [""] * n
    return list(map(
        AlertRecord, ids, rules, labels, coded(arrays.state), annotations, values,
        explanations, instants(arrays.active_since), instants(arrays.fired_at),
        instants(arrays.resolved_at), instants(arrays.keep_firing_until),
        instants(arrays.last_evaluated), arrays.pending_evaluations.tolist(),
        arrays.pending_periods.tolist(), period.tolist(), history, arrays.flapping.tolist(),
        coded(arrays.notified_state), groups))


_STATES = np.array(STATE_CODES, dtype=object)


class Times:
    """Microseconds back to datetimes in ``like``'s zone, each instant made once (the
    rows of one evaluation share a few instants: now, and the evaluations before)."""

    def __init__(self, like: datetime) -> None:
        self.like = like
        self._made: dict[int, datetime | None] = {int(NO_TIME): None, micros(like): like}

    def get(self, value: int) -> datetime | None:
        made = self._made.get(value, _MISSING)
        if made is _MISSING:
            made = self._made[value] = from_micros(value, self.like)
        return made  # type: ignore[return-value]


_MISSING = object()


@dataclass
class Stepped:
    """The result of ``step_many``: the new rows, what each took from its observation
    (SEEN_*), and its transition if any (``moved``: from ``moved_from``, ``notify``)."""

    arrays: AlertArrays
    seen: np.ndarray  # int8
    moved: np.ndarray  # bool
    moved_from: np.ndarray  # int8 state codes
    notify: np.ndarray  # bool


def _flap_weights(length: int) -> list[float]:
    changes = length - 1
    return [0.8 + 0.4 * (i - 1) / max(1, changes - 1) for i in range(1, length)]


def flap_shares(history: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``flap_share`` of every row's bit history, summed in the same order (so equal)."""
    out = np.zeros(len(history))
    for n in np.unique(length).tolist():
        if n < 2:
            continue
        rows = np.flatnonzero(length == n)
        bits = history[rows]
        total = np.zeros(len(rows))
        weights = 0.0
        for i, weight in enumerate(_flap_weights(n), start=1):
            weights += weight
            # character i of the string is bit n-1-i; it changed if it differs from i-1
            now = (bits >> np.uint64(n - 1 - i)) & np.uint64(1)
            before = (bits >> np.uint64(n - i)) & np.uint64(1)
            total = total + np.where(now != before, weight, 0.0)
        out[rows] = total / weights if weights else 0.0
    return out


def step_many(old: AlertArrays, active: np.ndarray, period: np.ndarray, now: datetime,
              policy: Policy) -> Stepped:
    """Step every row once, as ``step`` steps one record: ``active`` per row, ``period``
    the latest data period per row (NO_PERIOD: none)."""
    n = len(old)
    new = AlertArrays(*[getattr(old, f.name).copy() for f in fields(old)])
    now_us = micros(now)
    prev = old.state
    if policy.flapping is not None:
        window = policy.flapping.window
        mask = np.uint64((1 << window) - 1)
        new.history = ((old.history << np.uint64(1)) | active.astype(np.uint64)) & mask
        new.history_len = np.minimum(old.history_len.astype(np.int16) + 1, window
                                     ).astype(np.int8)
        judged = new.history_len >= window // 2
        share = flap_shares(new.history, new.history_len)
        begins = judged & ~old.flapping & (share > policy.flapping.high)
        ends = judged & old.flapping & (share < policy.flapping.low)
        new.flapping = (old.flapping | begins) & ~ends
    new.last_evaluated[:] = now_us
    seen = np.zeros(n, dtype=np.int8)

    # active
    new_period = (period != NO_PERIOD) & (period != old.last_period)
    seen[active] = SEEN_ALL
    new.last_period = np.where(active, period, new.last_period).astype(np.int32)
    new.keep_firing_until[active] = NO_TIME
    start = active & ((prev == INACTIVE) | (prev == RESOLVED))
    new.state[start] = PENDING
    new.active_since[start] = now_us
    new.pending_evaluations[start] = 1
    new.pending_periods[start] = 1
    new.fired_at[start] = NO_TIME
    new.resolved_at[start] = NO_TIME
    more = active & (prev == PENDING)
    new.pending_evaluations[more] += 1
    new.pending_periods[more & new_period] += 1
    spec = policy.for_
    held = active & (new.state == PENDING)
    if spec.evaluations:
        held &= new.pending_evaluations >= spec.evaluations
    if spec.periods:
        held &= new.pending_periods >= spec.periods
    if spec.seconds:
        wait = timedelta(seconds=spec.seconds) // _US
        held &= (new.active_since != NO_TIME) & (now_us - new.active_since >= wait)
    new.state[held] = FIRING
    new.fired_at[held] = now_us

    # not active
    firing = ~active & (prev == FIRING)
    resolve = firing
    if policy.keep_firing_for > 0:
        until = np.where(new.keep_firing_until != NO_TIME, new.keep_firing_until,
                         now_us + timedelta(seconds=policy.keep_firing_for) // _US)
        keep = firing & (now_us < until)
        new.keep_firing_until[keep] = until[keep]
        resolve = firing & ~keep
    new.state[resolve] = RESOLVED
    new.resolved_at[resolve] = now_us
    new.keep_firing_until[resolve] = NO_TIME
    new.pending_evaluations[resolve] = 0
    new.pending_periods[resolve] = 0
    seen[resolve] = SEEN_RESOLVED
    clear = ~active & (prev == PENDING)
    new.state[clear] = INACTIVE
    new.active_since[clear] = NO_TIME
    new.pending_evaluations[clear] = 0
    new.pending_periods[clear] = 0
    seen[clear] = SEEN_CLEARED

    # transitions: a state change, or (flapping over) where things settled
    moved = new.state != prev
    told = ((new.state == FIRING) | (new.state == RESOLVED)) & ~new.flapping
    notify = moved & told
    settled = told & ~moved & (old.notified_state != new.state)
    moved_from = np.where(settled, old.notified_state, prev).astype(np.int8)
    new.notified_state = np.where(told, new.state, old.notified_state).astype(np.int8)
    return Stepped(new, seen, moved | settled, moved_from, notify | settled)


def texts(seen_code: int, old: AlertRecord, value: float | None, explanation: str,
          annotations: dict[str, str]) -> tuple[float | None, str, dict[str, str]]:
    """Return the value, explanation and annotations of a row after a step that took
    ``seen_code`` from an observation of ``value``, ``explanation``, ``annotations``."""
    if seen_code == SEEN_ALL:
        return value, explanation, annotations
    if seen_code == SEEN_RESOLVED:
        # The resolved record says what resolved it: the value, explanation and
        # annotations of this observation, never the firing ones beside a resolving
        # explanation.
        return value, explanation or old.explanation, annotations or old.annotations
    if seen_code == SEEN_CLEARED:
        return value, explanation, old.annotations
    return old.value, old.explanation, old.annotations


def transition(r: AlertRecord, moved_from: int, now: datetime, notify: bool) -> Transition:
    return _transition(r, STATE_CODES[moved_from], now, notify)


def step_record(record: AlertRecord, seen: Observation, now: datetime, policy: Policy
                ) -> tuple[AlertRecord, list[Transition]]:
    """``step`` for one record, done by ``step_many``: what the engine's rare paths (a
    vanished series, a failing rule, source health) use, so every alert moves the same
    way."""
    stepped = step_many(AlertArrays.of([record]), np.array([seen.active]),
                        np.array([NO_PERIOD if seen.period is None else seen.period],
                                 dtype=np.int32), now, policy)
    value, explanation, annotations = texts(int(stepped.seen[0]), record, seen.value,
                                            seen.explanation, seen.annotations)
    new = stepped.arrays.record(0, record, now, value=value, explanation=explanation,
                                annotations=annotations)
    if not stepped.moved[0]:
        return new, []
    return new, [transition(new, int(stepped.moved_from[0]), now, bool(stepped.notify[0]))]
