"""The store's tables. Only modules in ``monitor/store/`` import this file.

Periods are integer ordinals in the indicator's frequency (see ``model.Frequency``);
times are aware UTC datetimes; label sets are JSON objects with sorted keys.
A schema change here needs an Alembic revision in ``migrations/versions/``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from monitor.store.observations import RARE_POSTGRES, RARE_SQLITE


def _ts(nullable: bool = True, index: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class IndicatorRow(SQLModel, table=True):
    __tablename__ = "indicator"

    id: str = Field(primary_key=True, max_length=200)
    name: str = Field(default="")
    reference: str = Field(default="")
    unit: str = Field(default="")
    direction: str = Field(default="neutral", max_length=10)
    frequency: str = Field(default="monthly", max_length=10)
    definition: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=_ts())


class SeriesRow(SQLModel, table=True):
    __tablename__ = "series"
    # ``part``: the series' position under the stored partition key (store/partkey.py);
    # a partition's read is a range of it within each indicator.
    __table_args__ = (UniqueConstraint("indicator_id", "fingerprint", name="uq_series_identity"),
                      Index("ix_series_part", "indicator_id", "part"))

    id: int | None = Field(default=None, primary_key=True)
    indicator_id: str = Field(foreign_key="indicator.id", index=True, max_length=200)
    fingerprint: str = Field(max_length=16)
    labels: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    source: str = Field(default="", max_length=200)
    created_at: datetime | None = Field(default=None, sa_column=_ts())
    part: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class ObservationRow(SQLModel, table=True):
    __tablename__ = "observation"
    # Clustered on (series_id, period) in SQLite: one B-tree instead of two doubles the
    # bulk-ingest rate and makes a series' history one contiguous range.
    # No foreign key to series: PostgreSQL checks one per inserted row, which costs three
    # quarters of a bulk ingest; only ObservationStore writes here, with ids it resolved
    # in the same transaction, and series are never deleted.
    # ix_observation_rare holds only the rows with a denominator, a provisional flag or a
    # revision (the few a read fetches apart from the values: ``sqlite_columns``), with
    # what the read takes of them: a read finds them without visiting every row.
    __table_args__ = (
        Index("ix_observation_rare", "series_id", "period", "denominator", "provisional",
              "revisions", sqlite_where=text(RARE_SQLITE),
              postgresql_where=text(RARE_POSTGRES)),
        {"sqlite_with_rowid": False})

    series_id: int = Field(primary_key=True)
    period: int = Field(primary_key=True)
    value: float
    denominator: float | None = None
    provisional: bool = False
    as_of: datetime = Field(sa_column=_ts(nullable=False))
    revisions: int = 0
    source: str = Field(default="", max_length=200)


class RevisionRow(SQLModel, table=True):
    """A past value that a later poll replaced: what was known, and when."""

    __tablename__ = "observation_revision"
    __table_args__ = (Index("ix_revision_series_period", "series_id", "period"),)

    id: int | None = Field(default=None, primary_key=True)
    series_id: int = Field(foreign_key="series.id")
    period: int
    old_value: float
    old_denominator: float | None = None
    old_provisional: bool = False
    old_as_of: datetime = Field(sa_column=_ts(nullable=False))
    new_value: float
    new_denominator: float | None = None
    revised_at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    source: str = Field(default="", max_length=200)


class SourceIndicatorRow(SQLModel, table=True):
    """A source that has stored observations of an indicator (added to at ingest)."""

    __tablename__ = "source_indicator"

    source: str = Field(primary_key=True, max_length=200)
    indicator_id: str = Field(primary_key=True, max_length=200)


class MilestoneRow(SQLModel, table=True):
    __tablename__ = "milestone"

    source: str = Field(primary_key=True, max_length=200)
    id: str = Field(primary_key=True, max_length=200)
    title: str = ""
    owner: str = ""
    due: str = Field(max_length=10)  # ISO date
    status: str = Field(default="not_started", max_length=20)
    completed: str | None = Field(default=None, max_length=10)
    labels: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class AlertRow(SQLModel, table=True):
    """The current state of one alert instance (a rule and one label set)."""

    __tablename__ = "alert"

    id: str = Field(primary_key=True, max_length=40)  # rule-qualified fingerprint
    rule: str = Field(max_length=200)
    group_name: str = Field(default="", max_length=200)  # the rule group owning the alert
    labels: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    annotations: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    state: str = Field(max_length=10)
    value: float | None = None
    explanation: str = Field(default="", sa_column=Column(Text, nullable=False))
    active_since: datetime | None = Field(default=None, sa_column=_ts())
    fired_at: datetime | None = Field(default=None, sa_column=_ts())
    resolved_at: datetime | None = Field(default=None, sa_column=_ts())
    keep_firing_until: datetime | None = Field(default=None, sa_column=_ts())
    last_evaluated: datetime | None = Field(default=None, sa_column=_ts())
    pending_evaluations: int = 0
    pending_periods: int = 0
    last_period: int | None = None
    history: str = Field(default="", max_length=64)  # recent results, newest last: 1 active
    flapping: bool = False
    notified_state: str = Field(default="inactive", max_length=10)
    updated_at: datetime | None = Field(default=None, sa_column=_ts())


class TransitionRow(SQLModel, table=True):
    """A state change recorded by the engine and claimed by the notifier."""

    __tablename__ = "alert_transition"
    __table_args__ = (Index("ix_transition_unclaimed", "claimed_by", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    alert_id: str = Field(max_length=40)
    rule: str = Field(max_length=200)
    group_name: str = Field(default="", max_length=200)  # the rule group owning the alert
    labels: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    annotations: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    from_state: str = Field(max_length=10)
    to_state: str = Field(max_length=10)
    value: float | None = None
    explanation: str = Field(default="", sa_column=Column(Text, nullable=False))
    at: datetime = Field(sa_column=_ts(nullable=False))
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_at: datetime | None = Field(default=None, sa_column=_ts())


class AlertEventRow(SQLModel, table=True):
    """The alert history: every transition of every alert, every notification sent for
    it and every message a silence or an inhibition muted. Kept ``notify.history_retention``."""

    __tablename__ = "alert_event"
    __table_args__ = (Index("ix_alert_event_alert_at", "alert_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    alert_id: str = Field(max_length=40)
    rule: str = Field(max_length=200, index=True)
    group_name: str = Field(default="", max_length=200)
    labels: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    kind: str = Field(max_length=12)  # transition | notified | muted
    from_state: str = Field(default="", max_length=10)
    to_state: str = Field(default="", max_length=10)
    value: float | None = None
    explanation: str = Field(default="", sa_column=Column(Text, nullable=False))
    period: str = Field(default="", max_length=20)  # the data period (2008-07)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    at: datetime = Field(sa_column=_ts(nullable=False, index=True))


class NotificationRow(SQLModel, table=True):
    """The outbox: one message for one receiver, committed before any attempt to send it."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    receiver: str = Field(max_length=200, index=True)
    integration: str = Field(default="", max_length=100)  # e.g. "slack:0": one outbox lane
    group_key: str = Field(max_length=500)
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=12)  # pending|delivered|dead|superseded
    attempts: int = 0
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    next_attempt_at: datetime = Field(sa_column=_ts(nullable=False))
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_until: datetime | None = Field(default=None, sa_column=_ts())
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False))
    delivered_at: datetime | None = Field(default=None, sa_column=_ts())
    earliest_fired_at: datetime | None = Field(default=None, sa_column=_ts())


class NotifyAlertRow(SQLModel, table=True):
    """The notifier's view of one alert: its latest firing or resolved transition."""

    __tablename__ = "notify_alert"

    alert_id: str = Field(primary_key=True, max_length=40)
    rule: str = Field(max_length=200)
    labels: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    annotations: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=10)  # firing|resolved
    value: float | None = None
    explanation: str = Field(default="", sa_column=Column(Text, nullable=False))
    starts_at: datetime = Field(sa_column=_ts(nullable=False))
    ends_at: datetime | None = Field(default=None, sa_column=_ts())
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class NotificationLogRow(SQLModel, table=True):
    """What was last sent for a group to a receiver: the dedup and repeat memory."""

    __tablename__ = "notification_log"

    receiver: str = Field(primary_key=True, max_length=200)
    group_key: str = Field(primary_key=True, max_length=500)
    firing: str = Field(default="", sa_column=Column(Text, nullable=False))
    resolved: str = Field(default="", sa_column=Column(Text, nullable=False))
    sent_at: datetime = Field(sa_column=_ts(nullable=False))
    message_id: str = Field(default="", max_length=300)


class SilenceRow(SQLModel, table=True):
    __tablename__ = "silence"

    id: str = Field(primary_key=True, max_length=40)
    matchers: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    starts_at: datetime = Field(sa_column=_ts(nullable=False))
    ends_at: datetime = Field(sa_column=_ts(nullable=False))
    created_by: str = Field(default="", max_length=200)
    comment: str = Field(default="", sa_column=Column(Text, nullable=False))
    recurrence: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    expired_at: datetime | None = Field(default=None, sa_column=_ts())
    # A KPI silence: mutes only alerts about data up to this period (2008-07); it ends
    # when a newer period's figure for a matched series arrives.
    until_period: str | None = Field(default=None, max_length=20)


class SourcePollRow(SQLModel, table=True):
    __tablename__ = "source_poll"
    __table_args__ = (Index("ix_source_poll_source_started", "source", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=200)
    started_at: datetime = Field(sa_column=_ts(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_ts())
    outcome: str = Field(max_length=20)  # success|unchanged|failed|partial
    observations: int = 0
    inserted: int = 0
    revisions: int = 0
    rejected: int = 0
    error: str = Field(default="", sa_column=Column(Text, nullable=False))


class SourceStateRow(SQLModel, table=True):
    """What a source remembers between polls: validators for conditional requests, health."""

    __tablename__ = "source_state"

    source: str = Field(primary_key=True, max_length=200)
    etag: str = Field(default="", max_length=500)
    last_modified: str = Field(default="", max_length=100)
    content_hash: str = Field(default="", max_length=64)
    cursor: str = Field(default="", max_length=200)
    config_digest: str = Field(default="", max_length=64)  # validators hold for this config
    last_success_at: datetime | None = Field(default=None, sa_column=_ts())
    last_attempt_at: datetime | None = Field(default=None, sa_column=_ts())
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False))
    consecutive_failures: int = 0


class MetaRow(SQLModel, table=True):
    """Key/value facts about the store itself (owner process, digest cursor, …)."""

    __tablename__ = "monitor_meta"

    key: str = Field(primary_key=True, max_length=100)
    value: str = Field(default="", sa_column=Column(Text, nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=_ts())


class ReplicaRow(SQLModel, table=True):
    """One daemon process of a PostgreSQL cluster and its heartbeat (cluster membership)."""

    __tablename__ = "replica"

    id: str = Field(primary_key=True, max_length=100)  # daemon.instance
    incarnation: str = Field(max_length=32)  # one process run: tells a namesake apart
    host: str = Field(default="", max_length=200)
    pid: int = 0
    version: str = Field(default="", max_length=40)
    started_at: datetime = Field(sa_column=_ts(nullable=False))
    heartbeat_at: datetime = Field(sa_column=_ts(nullable=False, index=True))


class ShardLeaseRow(SQLModel, table=True):
    """One shard of the work (rule groups and sources hash into shards) and its lease."""

    __tablename__ = "shard_lease"

    shard: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    owner: str | None = Field(default=None, max_length=100)
    epoch: int = 0  # bumped whenever the shard changes hands: a fencing token
    expires_at: datetime | None = Field(default=None, sa_column=_ts())
    acquired_at: datetime | None = Field(default=None, sa_column=_ts())
