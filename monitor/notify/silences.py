"""Silences: mute alerts matching label matchers for a while, optionally on a schedule.

A silence has matchers, a window (``starts_at`` … ``ends_at``), an author and a
comment, as in Alertmanager. A *recurring* silence also has a recurrence — one
time-interval spec such as "Saturday and Sunday, all day, Europe/London" — and mutes
only while the recurrence contains the instant (Alertmanager has no such thing).
Expiring a silence records ``expired_at`` and keeps it for audit.

A *KPI* silence (``until_period``, e.g. ``2008-07``) mutes only alerts about data up to
that period: "until the Aug-08 figure lands". An alert about a newer period is not
muted, and the notifier expires the silence when it sees one (:func:`outdated`); its
``ends_at`` is only a backstop. None of Alertmanager, Grafana or ElastAlert has it: for
monthly data a clock-time silence is the wrong unit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import ValidationError

from monitor.matchers import Matcher
from monitor.model import utc
from monitor.notify.timeintervals import TimeIntervalSpec, spec_from_dict

PENDING = "pending"
ACTIVE = "active"
EXPIRED = "expired"


@dataclass(frozen=True)
class SilenceSpec:
    """A silence to create."""

    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    recurrence: TimeIntervalSpec | None = None
    until_period: str | None = None


@dataclass(frozen=True)
class Silence:
    """A stored silence. :meth:`state` is ``pending``, ``active`` or ``expired``."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    recurrence: TimeIntervalSpec | None = None
    created_at: datetime | None = None
    expired_at: datetime | None = None
    until_period: str | None = None

    @property
    def updated_at(self) -> datetime | None:
        return self.expired_at or self.created_at

    def effective_end(self) -> datetime:
        """Return when the silence stops: its end, or when it was expired if earlier."""
        if self.expired_at is not None and self.expired_at < self.ends_at:
            return self.expired_at
        return self.ends_at

    def state(self, now: datetime) -> str:
        """Return ``expired`` (ended or expired), ``pending`` (not started) or ``active``."""
        if now >= self.effective_end():
            return EXPIRED
        if now < self.starts_at:
            return PENDING
        return ACTIVE

    def mutes_now(self, now: datetime) -> bool:
        """Return True when the silence is active and, if recurring, inside its recurrence."""
        if self.state(now) != ACTIVE:
            return False
        return self.recurrence is None or self.recurrence.contains(now)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def covers(self, period: str | None) -> bool:
        """Return False when an alert about ``period`` is about newer data than a KPI
        silence lasts for (True for every other silence, and for alerts with no period)."""
        return not (self.until_period and period and period > self.until_period)

    def mutes(self, labels: Mapping[str, str], now: datetime, period: str | None = None
              ) -> bool:
        """Return True when this silence mutes an alert with ``labels`` (about data period
        ``period``, ``2008-07``) at ``now``."""
        return self.mutes_now(now) and self.matches(labels) and self.covers(period)

    def describe(self) -> str:
        """Return ``{borough="Camden"} by alice: comment`` for traces and lists."""
        matchers = "{" + ",".join(str(m) for m in self.matchers) + "}"
        until = f" until data after {self.until_period}" if self.until_period else ""
        return f"{matchers}{until} by {self.created_by}: {self.comment}"


def validate(spec: SilenceSpec, now: datetime) -> None:
    """Check a silence before it is stored.

    Raises ValueError naming the field: no matchers, matchers that match every alert,
    an end not after the start or already past, a missing author or comment.
    """
    if not spec.matchers:
        raise ValueError("matchers: a silence needs at least one matcher, such as "
                         'borough="Camden"')
    if all(m.matches({}) for m in spec.matchers):
        raise ValueError("matchers: at least one matcher must not match an empty label "
                         "(these would silence every alert)")
    if utc(spec.ends_at) <= utc(spec.starts_at):
        raise ValueError("ends_at: the end must be after the start")
    if utc(spec.ends_at) <= now:
        raise ValueError("ends_at: the end is already in the past")
    if not spec.created_by.strip():
        raise ValueError("created_by: say who creates the silence")
    if not spec.comment.strip():
        raise ValueError("comment: say why the alerts are silenced")


def new_silence(spec: SilenceSpec, now: datetime, silence_id: str | None = None) -> Silence:
    """Return a validated silence ready to store. Raises ValueError (see :func:`validate`)."""
    validate(spec, now)
    return Silence(
        id=silence_id or str(uuid.uuid4()), matchers=spec.matchers,
        starts_at=utc(spec.starts_at), ends_at=utc(spec.ends_at),
        created_by=spec.created_by.strip(), comment=spec.comment.strip(),
        recurrence=spec.recurrence, created_at=now, until_period=spec.until_period,
    )


def expire(silence: Silence, now: datetime) -> Silence:
    """Return the silence expired at ``now`` (an already expired one is unchanged)."""
    if silence.state(now) == EXPIRED:
        return silence
    return replace(silence, expired_at=now)


def muting(silences: Iterable[Silence], labels: Mapping[str, str], now: datetime,
           period: str | None = None) -> Silence | None:
    """Return the first silence that mutes ``labels`` at ``now``, or None."""
    for silence in silences:
        if silence.mutes(labels, now, period):
            return silence
    return None


def muting_all(silences: Iterable[Silence], labels: Mapping[str, str], now: datetime,
               period: str | None = None) -> list[Silence]:
    """Return every silence that mutes ``labels`` at ``now`` (Alertmanager's silencedBy)."""
    return [s for s in silences if s.mutes(labels, now, period)]


def outdated(silences: Iterable[Silence], alerts: Iterable[tuple[Mapping[str, str], str]],
             now: datetime) -> list[Silence]:
    """Return the KPI silences to end now: active ones matching an alert (labels, data
    period) about a newer period than they last for — the next period's data arrived."""
    seen = list(alerts)
    return [s for s in silences
            if s.until_period and s.state(now) != EXPIRED
            and any(period and not s.covers(period) and s.matches(labels)
                    for labels, period in seen)]


def extend(silence: Silence, ends_at: datetime, now: datetime) -> Silence:
    """Return the silence lasting until ``ends_at``. Raises ValueError when it has already
    ended or the new end is not later than now."""
    if silence.state(now) == EXPIRED:
        raise ValueError("ends_at: the silence has ended; create a new one")
    if utc(ends_at) <= now:
        raise ValueError("ends_at: the new end is already in the past")
    return replace(silence, ends_at=utc(ends_at))


def recurrence_from(data: Mapping[str, object] | None) -> TimeIntervalSpec | None:
    """Return the recurrence stored as JSON. Raises ValueError naming the problem."""
    if not data:
        return None
    try:
        return spec_from_dict(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"recurrence.{where}: {first['msg']}") from None


def recurrence_dict(silence: Silence) -> dict[str, object] | None:
    """Return the recurrence in Alertmanager's ``time_intervals`` shape (None: not
    recurring), as the API shows it and the store keeps it."""
    if silence.recurrence is None:
        return None
    data: dict[str, object] = silence.recurrence.model_dump(exclude_defaults=True)
    data["location"] = silence.recurrence.location
    return data


def recurrence_summary(silence: Silence) -> str:
    """Return ``saturday:sunday 00:00-24:00 Europe/London`` (empty when not recurring)."""
    spec = silence.recurrence
    if spec is None:
        return ""
    parts: list[str] = []
    if spec.weekdays:
        parts.append(",".join(spec.weekdays))
    if spec.days_of_month:
        parts.append("days " + ",".join(spec.days_of_month))
    if spec.months:
        parts.append(",".join(spec.months))
    if spec.times:
        parts.append(",".join(f"{t.start_time}-{t.end_time}" for t in spec.times))
    parts.append(spec.location)
    return " ".join(parts)


def active_only(silences: Sequence[Silence], now: datetime) -> list[Silence]:
    """Return the silences that are not expired at ``now`` (pending ones included)."""
    return [s for s in silences if s.state(now) != EXPIRED]
