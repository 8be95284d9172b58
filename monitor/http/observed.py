"""What the HTTP layer reads from the running engine: the :class:`Observed` protocol.

The API, the pages and ``/metrics`` see the daemon only through this protocol, so they
depend on no subsystem's internals: the rules engine publishes a
:class:`~monitor.rules.snapshot.Snapshot` and each series'
:class:`~monitor.rules.snapshot.SeriesDetail`, the sources report their health, the
notifier keeps silences. The read side shows what is published and computes nothing of
its own (no RAG, scaling, SPC, ranks or comments). The daemon implements the protocol
(:class:`monitor.observing.DaemonView`).

The value types below are the shapes the protocol speaks in; they are plain data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from monitor.matchers import Matcher
from monitor.model import Episode, Milestone
from monitor.rules.snapshot import ReloadStatus, SeriesDetail, Snapshot


@dataclass(frozen=True)
class SourceHealth:
    """The health of one data source, as the sources page and API show it.

    ``health`` is ``ok`` (the last poll succeeded), ``bad`` (it failed; ``last_error``
    says why) or ``unknown`` (not polled yet). ``observations`` is what the store holds
    from the source (milestones for a milestones source), ``rejected`` the rows the last
    poll that read data rejected, ``next_poll`` when the poller runs it next (None: not
    scheduled in this process).
    """

    name: str
    kind: str
    health: str
    last_error: str = ""
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    consecutive_failures: int = 0
    observations: int = 0
    rejected: int = 0
    next_poll: datetime | None = None
    enabled: bool = True


@dataclass(frozen=True)
class SilenceSpec:
    """A silence to create: who, why, from when to when, and which alerts it mutes.

    ``recurrence``, when given, makes the silence recurring: it mutes only while this
    time-interval spec (Alertmanager's ``time_intervals`` shape: ``weekdays``, ``times``
    of ``{start_time, end_time}``, ``days_of_month``, ``months``, ``years``,
    ``location``) contains the instant.
    """

    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    recurrence: Mapping[str, Any] | None = None
    until_period: str | None = None  # a KPI silence: mutes alerts about data up to it


@dataclass(frozen=True)
class Silence:
    """A stored silence. ``state`` is ``pending`` (not started), ``active`` or ``expired``."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    state: str
    updated_at: datetime | None = None
    recurrence: Mapping[str, Any] | None = None
    until_period: str | None = None


@dataclass(frozen=True)
class Suppressed:
    """Why an alert is muted (Alertmanager's ``silencedBy``/``inhibitedBy``): the ids of
    the silences, and the ids (fingerprints) of the firing alerts inhibiting it."""

    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class HistoryQuery:
    """Which alert history to read: rules (empty: all), alert ids (empty: all), label
    matchers (all must accept), and the time range ``since`` ≤ at < ``until`` (None:
    open). ``limit`` counts the newest events that pass every filter."""

    rules: tuple[str, ...] = ()
    alert_ids: tuple[str, ...] = ()
    matchers: tuple[Matcher, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 10_000


@dataclass(frozen=True)
class SourcedMilestone:
    """A plan milestone with the source it was read from."""

    source: str
    milestone: Milestone


class Observed(Protocol):
    """What the HTTP layer needs from the engine, the sources and the notifier."""

    def snapshot(self) -> Snapshot:
        """Return the engine's latest published snapshot (empty before the first evaluation)."""

    def rule_reload(self) -> ReloadStatus:
        """Return the latest rule reload's outcome: after a failed one, its problems
        (``file:line:column: …``) while the last good rules keep running."""

    def scorecard(self) -> Sequence[SeriesDetail]:
        """Return the scorecard's rows: each reported indicator's subject series, in order.

        Which indicators are reported and which series speak for them (the peer group's
        subject, e.g. one force among its peers) is the engine's decision. An empty list
        makes the scorecard page show every series instead.
        """

    def detail(self, indicator: str, labels: Mapping[str, str]) -> SeriesDetail | None:
        """Return everything the scorecard row, the series page and the API show for one
        series, as the evaluation published it: its values per period with their scale,
        SPC per point, provisional flags and revisions.

        Returns None when the indicator or the series is unknown.
        """

    def details(self, indicator: str, labels: Sequence[Mapping[str, str]]
                ) -> Sequence[SeriesDetail | None]:
        """Return ``detail`` of each series ``labels`` names, in their order (a list
        page's rows, asked at once)."""

    def sources(self) -> Sequence[SourceHealth]:
        """Return the health of every configured source, in config order."""

    def milestones(self) -> Sequence[SourcedMilestone]:
        """Return every plan milestone the sources hold."""

    def silences(self) -> Sequence[Silence]:
        """Return every silence that is pending, active, or expired recently."""

    def create_silence(self, spec: SilenceSpec) -> Silence:
        """Store a new silence and return it.

        Raises ValueError with a message naming the field when the silence is invalid
        (no matchers, a bad regular expression, an end before the start).
        """

    def expire_silence(self, silence_id: str) -> Silence | None:
        """Expire a silence now; return it, or None when no silence has that id."""

    def pack_html(self, period: int) -> str | None:
        """Return the performance pack of the month ``period`` (a monthly ordinal) as its
        HTML document, evaluated as ``monitor report --at`` evaluates it; None when the
        daemon has no rules loaded."""
    def extend_silence(self, silence_id: str, ends_at: datetime) -> Silence | None:
        """Make a silence last until ``ends_at``; None when no silence has that id.

        Raises ValueError when the silence has ended or ``ends_at`` is past.
        """

    def suppressed(self) -> Mapping[str, Suppressed]:
        """Return, by alert fingerprint, the snapshot's alerts a silence or an inhibition
        mutes now — the notifier's own silence and inhibit stages — and what mutes them."""

    def history(self, query: HistoryQuery) -> Sequence[Episode]:
        """Return the alert episodes with events in the query's range, newest first."""


@dataclass
class EmptyObserved:
    """An engine that has published nothing yet: every list is empty.

    It is what the server shows before the daemon wires the real provider, and what a
    daemon without rules looks like.
    """

    published: Snapshot = field(default_factory=lambda: Snapshot(None, {}, [], []))

    def snapshot(self) -> Snapshot:
        return self.published

    def rule_reload(self) -> ReloadStatus:
        return ReloadStatus()

    def scorecard(self) -> Sequence[SeriesDetail]:
        return []

    def detail(self, indicator: str, labels: Mapping[str, str]) -> SeriesDetail | None:
        return None

    def details(self, indicator: str, labels: Sequence[Mapping[str, str]]
                ) -> Sequence[SeriesDetail | None]:
        return [None] * len(labels)

    def sources(self) -> Sequence[SourceHealth]:
        return []

    def milestones(self) -> Sequence[SourcedMilestone]:
        return []

    def silences(self) -> Sequence[Silence]:
        return []

    def create_silence(self, spec: SilenceSpec) -> Silence:
        raise ValueError("silences are not available: the notifier is not running")

    def expire_silence(self, silence_id: str) -> Silence | None:
        return None

    def pack_html(self, period: int) -> str | None:
        return None
    def extend_silence(self, silence_id: str, ends_at: datetime) -> Silence | None:
        return None

    def suppressed(self) -> Mapping[str, Suppressed]:
        return {}

    def history(self, query: HistoryQuery) -> Sequence[Episode]:
        return []
