"""Domain types shared by every subsystem: periods, label sets, observations, alerts.

These are plain values with no I/O. The store persists them, sources produce them,
rules read them and the notifier sends them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

_T = TypeVar("_T")


class Frequency(StrEnum):
    """How often an indicator has a period. Periods are integer ordinals per frequency."""

    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    WEEKLY = "weekly"
    ANNUAL = "annual"

    @property
    def per_year(self) -> int:
        return {"monthly": 12, "quarterly": 4, "weekly": 52, "annual": 1}[self.value]

    def ordinal(self, day: date) -> int:
        """Return the ordinal of the period that contains ``day``."""
        if self is Frequency.MONTHLY:
            return day.year * 12 + day.month - 1
        if self is Frequency.QUARTERLY:
            return day.year * 4 + (day.month - 1) // 3
        if self is Frequency.ANNUAL:
            return day.year
        return (day.toordinal() - 1) // 7  # weeks from Monday 0001-01-01

    def start(self, ordinal: int) -> date:
        """Return the first day of the period ``ordinal``."""
        if self is Frequency.MONTHLY:
            return date(ordinal // 12, ordinal % 12 + 1, 1)
        if self is Frequency.QUARTERLY:
            return date(ordinal // 4, (ordinal % 4) * 3 + 1, 1)
        if self is Frequency.ANNUAL:
            return date(ordinal, 1, 1)
        return date.fromordinal(ordinal * 7 + 1)

    def label(self, ordinal: int) -> str:
        """Return the period as people write it: ``2008-07``, ``2008-Q3``, ``2008-W27``."""
        if self is Frequency.MONTHLY:
            return f"{ordinal // 12:04d}-{ordinal % 12 + 1:02d}"
        if self is Frequency.QUARTERLY:
            return f"{ordinal // 4:04d}-Q{ordinal % 4 + 1}"
        if self is Frequency.ANNUAL:
            return f"{ordinal:04d}"
        iso = self.start(ordinal).isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"

    def parse(self, text: str) -> int:
        """Return the ordinal for a period written as :meth:`label` writes it (or a date).

        Raises ValueError naming the expected form.
        """
        text = text.strip()
        try:
            if self is Frequency.MONTHLY:
                m = re.fullmatch(r"(\d{4})-?(\d{2})(?:-\d{2})?", text)
                if m and 1 <= int(m.group(2)) <= 12:
                    return int(m.group(1)) * 12 + int(m.group(2)) - 1
            elif self is Frequency.QUARTERLY:
                m = re.fullmatch(r"(\d{4})-?Q([1-4])", text, re.IGNORECASE)
                if m:
                    return int(m.group(1)) * 4 + int(m.group(2)) - 1
                return self.ordinal(date.fromisoformat(text))
            elif self is Frequency.ANNUAL:
                if re.fullmatch(r"\d{4}", text):
                    return int(text)
                return self.ordinal(date.fromisoformat(text))
            else:
                m = re.fullmatch(r"(\d{4})-?W(\d{2})", text, re.IGNORECASE)
                if m:
                    return self.ordinal(date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1))
                return self.ordinal(date.fromisoformat(text))
        except ValueError:
            pass
        examples = {"monthly": "2008-07", "quarterly": "2008-Q3", "weekly": "2008-W27",
                    "annual": "2008"}
        raise ValueError(f"{text!r} is not a {self.value} period; write it like "
                         f"{examples[self.value]}")


def month(text: str) -> int:
    """Return the monthly ordinal of ``YYYY-MM`` (shorthand used across the code and tests)."""
    return Frequency.MONTHLY.parse(text)


def financial_year(ordinal: int, start_month: int = 4) -> int:
    """Return the calendar year in which the financial year containing month ``ordinal`` starts."""
    year, m = divmod(ordinal, 12)
    return year if m + 1 >= start_month else year - 1


def financial_year_label(fy: int) -> str:
    """``2008`` -> ``2008/09``."""
    return f"{fy}/{(fy + 1) % 100:02d}"


Labels = tuple[tuple[str, str], ...]
"""A label set, sorted by name: the identity of one series or one alert."""


def labels_of(mapping: Mapping[str, Any]) -> Labels:
    """Return the sorted label tuple for a mapping of label names to values."""
    return tuple(sorted([(str(k), str(v)) for k, v in mapping.items()]))


def label_rows(labels: Sequence[Mapping[str, str]], names: Iterable[str] | None = None
               ) -> tuple[list[str], dict[tuple[str, ...], int]]:
    """Return the label names of ``labels`` (a series per row; ``names`` when known) and
    each row's values of them → the row: what finds the series an alert is about, whose
    labels carry more (its ``alertname``), by looking up those names' values alone."""
    keys = sorted(set().union(*labels) if names is None else names)
    return keys, {tuple(lab.get(k, "") for k in keys): i for i, lab in enumerate(labels)}


def fingerprint(labels: Labels | Mapping[str, Any]) -> str:
    """Return a stable 16-hex-digit fingerprint of a label set (order does not matter)."""
    pairs = labels_of(labels) if isinstance(labels, Mapping) else labels
    return _digest([_pair(name, value) for name, value in pairs])


def _pair(name: str, value: object) -> str:
    """One label's text in a fingerprint."""
    return f"{name}\xff{value}"


def _digest(pairs: list[str]) -> str:
    """The fingerprint of a label set's pairs' texts (``_pair``), sorted by name."""
    return hashlib.blake2b("\xfe".join(pairs).encode(), digest_size=8).hexdigest()


def alert_id(group: str, labels: Mapping[str, str]) -> str:
    """Return the id of the alert of rule group ``group`` for label set ``labels``.

    The identity of an alert is its group, its rule (``alertname``) and its series'
    labels, nothing else: never which source happened to be polled first. The group is
    hashed under the reserved name ``__group__`` (ids stored before the group became a
    field of its own stay the same).
    """
    return fingerprint({**labels, "__group__": group})


class AlertIds:
    """The labels and ids of a rule's alerts: each alert's labels are its series' labels
    with ``extra`` over them (the indicator's and the rule's), its id ``alert_id(group,
    labels)``. The names' order and the text of the constant labels are worked out once
    per set of series label names, not sorted and formatted again per alert."""

    def __init__(self, group: str, extra: Mapping[str, str]) -> None:
        self.group = group
        self.extra = dict(extra)
        self._plans: dict[tuple[str, ...], list[tuple[str, str | None]]] = {}

    def make(self, series: Mapping[str, str]) -> tuple[dict[str, str], str]:
        """Return the labels and the id of the alert about the series with ``series``."""
        labels = {**series, **self.extra}
        plan = self._plans.get(tuple(series))
        if plan is None:
            plan = self._plan(series)
        return labels, _digest([_pair(name, series[name]) if fixed is None else fixed
                                for name, fixed in plan])

    def _plan(self, series: Mapping[str, str]) -> list[tuple[str, str | None]]:
        """Each label name in ``fingerprint``'s order, with its text when it is the same
        for every alert (``extra``'s and the group's) and None when it is the series'."""
        fixed = {str(k): _pair(str(k), v) for k, v in self.extra.items()}
        fixed["__group__"] = _pair("__group__", self.group)
        names = sorted({str(k) for k in series} | set(fixed))
        plan = [(name, fixed.get(name)) for name in names]
        self._plans[tuple(series)] = plan
        return plan


class Direction(StrEnum):
    """Which way is good for an indicator."""

    UP = "up"
    DOWN = "down"
    NEUTRAL = "neutral"

    @property
    def sign(self) -> int:
        return {"up": 1, "down": -1, "neutral": 0}[self.value]


class Status(StrEnum):
    """The RAG status of an indicator against its target.

    The number (``code``) is exported to Grafana; the ``word`` is what every page,
    message, command and panel says — the words an analyst uses, one per status.
    """

    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    BASELINE = "baseline"  # a baseline year (target kind none): reported, never judged
    NOT_RATED = "not_rated"  # a value, but nothing to judge it by: no target, or neutral
    NO_DATA = "no_data"  # no value: no data, or a window with a missing period

    @property
    def code(self) -> int:
        return STATUS_CODES[self.value]

    @property
    def word(self) -> str:
        """``not rated``, ``no data``, ``baseline``, ``green``, ``amber``, ``red``."""
        return self.value.replace("_", " ")


STATUS_CODES = {"not_rated": -2, "no_data": -1, "baseline": 0, "green": 1, "amber": 2,
                "red": 3}


@dataclass(frozen=True, slots=True)
class Observation:
    """One value of one series for one period, as a source produced it."""

    indicator: str
    labels: Labels
    period: int  # ordinal in the indicator's frequency
    value: float
    denominator: float | None = None
    provisional: bool = False


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One rejected input row: which source, which row, which field, and why."""

    source: str
    row: int | str
    field: str
    reason: str  # a short metric-safe code, e.g. "non_numeric", "missing_column"
    message: str

    def __str__(self) -> str:
        return f"source {self.source!r} row {self.row}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class Milestone:
    """A plan milestone, such as one of the counter-terrorism plan's."""

    id: str
    title: str
    owner: str
    due: date
    status: str  # not_started | in_progress | done
    completed: date | None = None
    labels: Labels = ()

    def state(self, today: date) -> str:
        """Return ``done``, ``done_late``, ``overdue``, or ``open``."""
        if self.status == "done":
            if self.completed is not None and self.completed > self.due:
                return "done_late"
            return "done"
        return "overdue" if today > self.due else "open"


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


# Each state's text, the one string object of each: what a bulk write or copy binds for
# hundreds of thousands of alerts (``.value`` goes through Enum's descriptor each time,
# and ``str()`` of a member makes a new string each time).
STATE_TEXT: dict[AlertState, str] = {state: state.value for state in AlertState}


@dataclass(slots=True)
class Alert:
    """One alert instance: a rule matched for one label set."""

    rule: str
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    state: AlertState = AlertState.INACTIVE
    value: float | None = None
    active_since: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    last_evaluated: datetime | None = None
    explanation: str = ""
    fingerprint: str = ""  # the alert's id (see alert_id)
    group: str = ""  # the rule group that owns it
    # The series the alert is about (its fingerprint, as the series page names it) and the
    # period its value is about (``2008-07``, as the series page's ``?at=`` takes it);
    # empty for an alert on no series (a source's health, milestones).
    series: str = ""
    period: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = alert_id(self.group, self.labels)


@dataclass(frozen=True)
class AlertEvent:
    """One entry of an alert's history.

    ``kind`` is ``transition`` (``from_state`` → ``to_state``, with the value and
    explanation at that moment), ``notified`` (``detail`` names the receiver) or
    ``muted`` (``detail`` lists ``silenced_by`` silence ids and ``inhibited_by`` alerts).
    ``period`` is the data period the alert was about (``2008-07``; empty: none).
    """

    alert_id: str
    rule: str
    labels: Mapping[str, str]
    kind: str
    at: datetime
    from_state: str = ""
    to_state: str = ""
    value: float | None = None
    explanation: str = ""
    period: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Episode:
    """One alert episode: from the transition that made it active (pending or firing)
    to its resolution (or now), with every event in between, oldest first."""

    alert_id: str
    rule: str
    labels: Mapping[str, str]
    started_at: datetime
    events: tuple[AlertEvent, ...]

    @property
    def state(self) -> str:
        """The state its last transition left it in."""
        moves = [e.to_state for e in self.events if e.kind == "transition"]
        return moves[-1] if moves else ""

    def first(self, to_state: str) -> datetime | None:
        """Return when the episode first moved to ``to_state`` (None: it never did)."""
        return next((e.at for e in self.events
                     if e.kind == "transition" and e.to_state == to_state), None)

    @property
    def fired_at(self) -> datetime | None:
        return self.first("firing")

    @property
    def resolved_at(self) -> datetime | None:
        return self.first("resolved")

    @property
    def notifications(self) -> int:
        return sum(1 for e in self.events if e.kind == "notified")

    @property
    def muted(self) -> int:
        return sum(1 for e in self.events if e.kind == "muted")


def episodes(events: Iterable[AlertEvent]) -> list[Episode]:
    """Return ``events`` (oldest first) cut into episodes, newest episode first.

    An episode starts at a transition out of ``inactive`` or ``resolved``; events of an
    alert before its first such transition (history cut by the retention or the time
    range) open an episode of their own.
    """
    open_: dict[str, list[AlertEvent]] = {}
    done: list[list[AlertEvent]] = []
    for event in events:
        starts = event.kind == "transition" and event.from_state in ("inactive", "resolved")
        current = open_.get(event.alert_id)
        if current is None or starts:
            if current:
                done.append(current)
            open_[event.alert_id] = current = []
        current.append(event)
    done.extend(e for e in open_.values() if e)
    out = [Episode(e[0].alert_id, e[0].rule, e[-1].labels, e[0].at, tuple(e)) for e in done]
    out.sort(key=lambda ep: (ep.started_at, ep.alert_id), reverse=True)
    return out


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime (naive values are taken as UTC)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iter_chunks(items: Iterable[_T], size: int) -> Iterable[list[_T]]:
    """Yield lists of at most ``size`` items."""
    chunk: list[_T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
