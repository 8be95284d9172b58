"""What a partition's task sends back: its alerts' changes as columns, not Python objects.

A cycle over 1M series can change hundreds of thousands of alerts. Sent as
``AlertRecord`` and ``Transition`` objects, each with its own datetimes and a second
copy of the labels and annotations in the transition, they cost more to pickle, send
and unpickle than the evaluation that made them. :class:`Changes` carries them instead
as:

- the records' moving fields as the state machine's own arrays (``AlertArrays``:
  state codes, times as microseconds, counts, flap bits), the value as a float column;
- their identities and texts (id, rule, group, labels, explanation, annotations) as
  lists, the only per-alert Python objects left; a record whose id the daemon holds a
  record of comes without its labels (an alert's labels are a function of its id:
  ``monitor.model.alert_id`` hashes them), and takes that record's (most records a new
  month changes are alerts that were there the month before);
- each transition as four numbers: which changed record it is (a transition is always
  the record it moved, at that moment), the state it left, whether it notifies, when.

The daemon makes each partition's records and transitions as its result arrives
(:meth:`Changes.made`), while the other partitions still evaluate, and after the last
puts them all in the rules' order (:func:`merge`: the same as concatenating the columns,
:func:`concat`, and making them once, :meth:`Changes.build`). The round trip is exact:
``build(encode(changed, transitions))`` equals the input (tests check it); a transition
that is not its record (none is made today) travels as itself, and the daemon then
sorts the transitions by rule.
Nothing here does I/O.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime

import numpy as np

from monitor.alerts.state import (
    CODE,
    AlertArrays,
    AlertRecord,
    Times,
    Transition,
    make_records,
    micros,
    transition,
)


@dataclass
class Changes:
    """One partition's changed alert records and transitions, column by column."""

    ids: list[str]
    rules: list[str]
    groups: list[str]
    labels: list[dict[str, str] | None]  # None: those of the held record of that id
    explanations: list[str]
    annotations: list[dict[str, str]]
    values: np.ndarray  # float64; NaN where ``has_value`` is False
    has_value: np.ndarray  # bool: the record has a value (None otherwise)
    arrays: AlertArrays  # the moving fields, one row per record
    order: np.ndarray  # int32: the record's rule's position in the cycle's rules
    moved: np.ndarray  # int32: per transition, the record it is
    moved_from: np.ndarray  # int8: per transition, the state code it left
    notify: np.ndarray  # bool
    at: np.ndarray  # int64 microseconds
    odd: list[tuple[int, Transition]] = field(default_factory=list)  # (position, itself)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def transitions(self) -> int:
        return len(self.moved) + len(self.odd)

    def build(self, like: datetime, held: Mapping[str, AlertRecord] | None = None
              ) -> tuple[list[AlertRecord], list[Transition]]:
        """Return the records and the transitions, times in ``like``'s zone, in the
        columns' order (transitions: the order they were encoded in); ``held`` as for
        ``made``."""
        records, made = self.made(like, held)
        for position, odd in self.odd:
            made.insert(position, odd)
        return records, made

    def made(self, like: datetime, held: Mapping[str, AlertRecord] | None = None
             ) -> tuple[list[AlertRecord], list[Transition]]:
        """Return the records and the transitions sent as numbers (not ``odd``), times
        in ``like``'s zone, in the columns' order. ``held``: the records the sender was
        told this side holds (``encode``), whose labels those sent without take."""
        times = Times(like)
        values = self.values.astype(object)
        values[~self.has_value] = None
        if held is None and None in self.labels:  # (a scan for None: no dict compared)
            raise ValueError("records sent without their labels, and none held")
        mine = held or {}
        labels = [found if found is not None else mine[key].labels
                  for key, found in zip(self.ids, self.labels, strict=True)]
        records = make_records(self.arrays, times, self.ids, self.rules, labels,
                               self.groups, values.tolist(), self.explanations,
                               self.annotations)
        made: list[Transition] = []
        for k, moved_from, notify, at in zip(self.moved.tolist(), self.moved_from.tolist(),
                                             self.notify.tolist(), self.at.tolist(),
                                             strict=True):
            when = times.get(at)
            assert when is not None
            made.append(transition(records[k], moved_from, when, notify))
        return records, made


def encode(changed: Sequence[AlertRecord], transitions: Sequence[Transition],
           order: Mapping[tuple[str, str], int], moving: AlertArrays | None = None,
           held: Mapping[str, AlertRecord] | None = None) -> Changes:
    """Return ``changed`` and ``transitions`` as columns; ``order`` gives each rule's
    (group, name) position in the cycle's rules (the order the daemon merges in).
    ``moving``: the records' moving fields when the caller holds them
    (``Evaluation.moving``), else made from the records. ``held``: records the receiver
    holds (as ``Changes.made`` is then told): a record of an id among them goes without
    its labels."""
    if moving is not None and len(moving) != len(changed):
        raise ValueError(f"{len(moving)} rows of moving fields for {len(changed)} records")
    last = {r.id: k for k, r in enumerate(changed)}  # a transition is its latest record
    moved: list[int] = []
    moved_from: list[int] = []
    notify: list[bool] = []
    at: list[int] = []
    odd: list[tuple[int, Transition]] = []
    for position, t in enumerate(transitions):
        k = last.get(t.alert_id)
        if k is not None and _is_record(t, changed[k]):
            moved.append(k)
            moved_from.append(CODE[t.from_state])
            notify.append(t.notify)
            at.append(micros(t.at))
        else:
            odd.append((position, t))
    n = len(changed)
    return Changes(
        [r.id for r in changed], [r.rule for r in changed], [r.group for r in changed],
        [r.labels for r in changed] if not held else
        [None if r.id in held else r.labels for r in changed],
        [r.explanation for r in changed],
        [r.annotations for r in changed],
        np.array([r.value if r.value is not None else np.nan for r in changed],
                 dtype=np.float64).reshape(n),
        np.array([r.value is not None for r in changed], dtype=bool).reshape(n),
        AlertArrays.of(changed) if moving is None else moving,
        np.array([order.get((r.group, r.rule), len(order)) for r in changed],
                 dtype=np.int32).reshape(n),
        np.array(moved, dtype=np.int32), np.array(moved_from, dtype=np.int8),
        np.array(notify, dtype=bool), np.array(at, dtype=np.int64), odd)


def _is_record(t: Transition, r: AlertRecord) -> bool:
    """True when transition ``t`` says what record ``r`` holds (so it can be rebuilt).
    A transition holds its record's own dicts (``state._transition``): they are the same
    objects, found so before comparing them key by key (``==`` on two dicts compares
    every item even when they are one object)."""
    return (t.rule == r.rule and t.group == r.group and t.to_state is r.state
            and (t.labels is r.labels or t.labels == r.labels)
            and (t.annotations is r.annotations or t.annotations == r.annotations)
            and t.explanation == r.explanation
            and (t.value == r.value or (t.value is None and r.value is None)))


def _orders(parts: Sequence[Changes]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return, over the partitions' columns end to end: each record's rule position,
    the records' order (the rules' order; stable: within a rule, partition by partition,
    each in its own order), each transition's record (positions end to end) and the
    transitions' order (their records' rules' order, likewise stable)."""
    offsets = np.cumsum([0] + [len(p) for p in parts])
    moved = np.concatenate([p.moved + offsets[i] for i, p in enumerate(parts)]
                           + [np.zeros(0, np.int32)]).astype(np.int32)
    order = np.concatenate([p.order for p in parts] + [np.zeros(0, np.int32)])
    sort = np.argsort(order, kind="stable")
    tsort = np.argsort(order[moved], kind="stable") if moved.size else moved
    return order, sort, moved, tsort


def merge(parts: Sequence[Changes],
          made: Sequence[tuple[list[AlertRecord], list[Transition]]]
          ) -> tuple[list[AlertRecord], list[Transition]]:
    """Return ``concat(parts).build(like)`` from each part's ``made(like)``, made as its
    partition's result arrived: the daemon builds a partition's records while the
    others still evaluate, and only puts them in order after the last."""
    _order, sort, _moved, tsort = _orders(parts)
    records = [r for part in made for r in part[0]]
    moves = [t for part in made for t in part[1]]
    return ([records[i] for i in sort.tolist()],
            [moves[i] for i in tsort.tolist()] + [t for p in parts for _, t in p.odd])


def concat(parts: Sequence[Changes]) -> Changes:
    """Return the partitions' changes as one, the records in the rules' order (stable:
    within a rule, partition by partition, each in its own order), the transitions in
    the order of their records' rules likewise."""
    order, sort, moved, tsort = _orders(parts)
    where = np.empty_like(sort)
    where[sort] = np.arange(sort.size)
    moved_new = where[moved] if moved.size else moved
    arrays = AlertArrays(*[np.concatenate([getattr(p.arrays, f.name) for p in parts])[sort]
                           if parts else getattr(AlertArrays.empty(0), f.name)
                           for f in fields(AlertArrays)])

    def listed(name: str) -> list[object]:
        flat = [item for p in parts for item in getattr(p, name)]
        return [flat[i] for i in sort.tolist()]

    def column(name: str, dtype: type) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts] + [np.zeros(0, dtype)])

    # None today; kept exact, after the others (the caller sorts when there are any).
    odd = [(sys.maxsize, t) for p in parts for _, t in p.odd]
    return Changes(
        listed("ids"), listed("rules"), listed("groups"), listed("labels"),  # type: ignore[arg-type]
        listed("explanations"), listed("annotations"),  # type: ignore[arg-type]
        column("values", np.float64)[sort], column("has_value", bool)[sort], arrays,
        order[sort], moved_new[tsort].astype(np.int32),
        column("moved_from", np.int8)[tsort], column("notify", bool)[tsort],
        column("at", np.int64)[tsort], odd)


def empty() -> Changes:
    """Return no changes."""
    return encode([], [], {})
