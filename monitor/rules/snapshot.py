"""What the engine exposes after each evaluation: the contract the HTTP layer reads.

Columnar per indicator, so ``/metrics`` can export 100,000 series without building a
Python object per series; per-series detail (every period's value, target, SPC limits,
signal and variation, the comment) is computed on demand for the pages and the API. The
read side shows these as published and computes nothing of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from functools import cached_property
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from monitor.model import Alert, Frequency, Status, label_rows

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class IndicatorInfo:
    """An indicator as defined in the rule files."""

    id: str
    name: str
    reference: str  # e.g. "SPI 1.1"
    unit: str  # percent, pp, count, rate_per_1000, ratio, currency, …
    direction: str  # up | down | neutral
    frequency: str  # monthly | quarterly | weekly | annual
    aggregation: str  # sum | mean | last
    window: int  # periods in the headline window (12 for a rolling year)
    parent: str | None = None
    children: tuple[str, ...] = ()
    group: str = ""  # heading in the scorecard, e.g. "Tackle serious acquisitive crime"
    description: str = ""


@dataclass
class IndicatorFrame:
    """The latest state of every series of one indicator, one array element per series."""

    info: IndicatorInfo
    labels: list[dict[str, str]]
    period: IntArray  # latest period ordinal with data, -1 when none
    value: FloatArray  # headline value (window aggregate or rate), NaN when unknown
    target: FloatArray  # target for the latest period's financial year, NaN when none
    status: IntArray  # Status.code per series
    changes: dict[str, FloatArray] = field(default_factory=dict)  # window name -> ratio
    provisional: npt.NDArray[np.bool_] | None = None
    # SPC variation of the headline period per series (scorecard.spc_icons: the vocabulary
    # and value of SeriesDetail.spc_icon); None when the engine does not publish it.
    spc: npt.NDArray[np.str_] | None = None
    _rows: tuple[list[str], dict[tuple[str, ...], int]] | None = field(
        default=None, init=False, repr=False, compare=False)

    def rows(self) -> tuple[list[str], dict[tuple[str, ...], int]]:
        """Return the label names and each row's values of them → the row, as
        ``Matrix.row_of`` finds a series (``model.label_rows``; made on first use)."""
        if self._rows is None:
            self._rows = label_rows(self.labels)
        return self._rows


SPARKLINE = 24  # periods the scorecard's sparkline shows


@dataclass(frozen=True)
class SeriesPoint:
    """One period of a series, as the evaluation read and judged it.

    ``value`` is the period's own value in the headline's unit — a rate already scaled
    (per cent, per 1,000), a difference of two rates, a count — and is what the XmR
    chart is drawn from; ``target`` is the target on that scale (a rolling-year count
    target divided over its periods). ``level`` is the headline window's value ending at
    this period (the rolling year, the year to date) and ``level_target`` its target:
    what the sparkline draws, so the last ``level`` is the headline value of a level
    indicator.

    SPC, from the XmR chart the rules computed: ``mean``, ``lower`` and ``upper`` are the
    limits of the segment the point lies in (they step at a re-base), ``special`` the
    rule that flagged it (0 none, 1 outside the limits, 2 trend, 3 two of three near a
    limit, 4 shift) and ``variation`` its category (``common_cause``,
    ``improvement_high``, ``concern_low``, … — the vocabulary of ``spc_icon``).
    """

    period: str  # "2008-07"
    period_text: str  # "Jul-08"
    value: float | None
    target: float | None = None
    level: float | None = None
    level_target: float | None = None
    provisional: bool = False
    revisions: int = 0  # earlier values the store kept for this period (0: never revised)
    mean: float | None = None
    lower: float | None = None
    upper: float | None = None
    special: int = 0
    variation: str = "common_cause"


@dataclass(frozen=True)
class RankFact:
    """One rank a scorecard row states: whose, where it stands, over which window.

    ``indicator`` is the row's own indicator or one of the parts whose ranks a combined
    row carries; ``over`` is the window as the rule file names it (``last 3 months``,
    ``rolling_year``, ``financial_year``, ``calendar_year``) and ``window`` as the comment
    says it (``May–July 2008``, ``the year to July 2008``, ``2007/08``, ``2007``), from
    ``first_period`` to ``last_period``.
    """

    indicator: str
    reference: str  # "SPI 6.1"; the indicator's name when it has none
    rank: int  # 1 = best
    size: int  # members ranked
    position: str  # "2nd", "last"
    over: str
    window: str
    first_period: str  # "2008-05"
    last_period: str  # "2008-07"
    value: float | None  # the value ranked, in the headline's kind
    group_mean: float | None


@dataclass(frozen=True)
class CommentPart:
    """One sentence of a scorecard comment and what it states: ``status`` (against the
    target), ``target_note``, ``note`` (what the figure reflects), ``parts``,
    ``companions``, ``comparison`` (with the last complete financial year),
    ``provisional``, ``variation`` (SPC limits wide for the mean) or ``rank``."""

    kind: str
    text: str


@dataclass(frozen=True)
class SeriesDetail:
    """Everything the scorecard row, the series page and the API show for one series.

    ``target_text`` is the Target column: the target of the scorecard's financial year
    (``target_year``); ``status`` judges the target of the year the data is about
    (``judged_year``), so a series whose data ends in March 2008 is judged against
    2007/08 while the column shows 2008/09, as the seed does. ``comment`` is
    ``comment_parts`` joined.

    ``points`` are every period the evaluation read for the series, from its first value
    to the headline period, oldest first; the read side draws and lists them as they are
    (see :class:`SeriesPoint`). ``mean``, ``upper`` and ``lower`` are the SPC limits of
    the latest segment, and ``spc_icon`` is the headline period's variation (the last
    point's; ``common_cause`` when the series has no value there).
    """

    indicator: IndicatorInfo
    labels: dict[str, str]
    period_label: str  # "Jul-08"
    window_label: str  # "12 months to Jul-08"
    value: float | None
    value_text: str  # "77.0%", "-7.8%", "30.8"
    target: float | None
    target_text: str  # "78.9%", "-4%", "Baseline year"
    status: Status
    comment: str  # the generated analyst's comment
    spc_icon: str  # common_cause | improvement_high | concern_low | …
    mean: float | None = None  # SPC centre line of the latest segment
    upper: float | None = None  # its process limits
    lower: float | None = None
    target_year: str = ""  # the financial year of the Target column: the scorecard's
    judged_year: str = ""  # the financial year whose target the status judges (the data's)
    judged_target_text: str = ""  # that year's target, as the Target column would print it
    ranks: tuple[RankFact, ...] = ()  # in the order the comment states them
    comment_parts: tuple[CommentPart, ...] = ()  # the comment, sentence by sentence
    # SPC assurance: will the process meet the latest period's target? ``pass`` (the
    # target is beyond the limits on the good side), ``fail`` (on the bad side),
    # ``hit_and_miss`` (within them), ``none`` (no target, no limits or neutral).
    assurance: str = "none"
    # ``points`` are made when first read, by ``points_of`` (most readers of a scorecard
    # row never read them); ``last_point`` is the headline period's, made at once.
    points_of: Callable[[], tuple[SeriesPoint, ...]] = field(default=tuple, repr=False,
                                                             compare=False)
    last_point: SeriesPoint | None = field(default=None, repr=False, compare=False)

    @cached_property
    def points(self) -> tuple[SeriesPoint, ...]:
        """Every period from the series' first value to the headline period."""
        return self.points_of()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeriesDetail):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name)
                   for f in fields(self) if f.compare) and self.points == other.points

    __hash__ = None  # type: ignore[assignment]  # labels are a dict: never hashable

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to the workbook's process) with its points made, not their maker."""
        return {**self.__dict__, "points": self.points, "points_of": tuple}

    @property
    def sparkline(self) -> tuple[SeriesPoint, ...]:
        """The latest ``SPARKLINE`` points: what the scorecard's sparkline draws."""
        return self.points[-SPARKLINE:]

    @property
    def provisional(self) -> bool:
        """True when the latest point is provisional."""
        return self.last_point is not None and self.last_point.provisional


@dataclass(frozen=True)
class RuleHealth:
    """The health of one rule, as the rules page and API show it."""

    name: str
    group: str
    file: str
    health: str  # ok | err | unknown
    last_error: str
    last_evaluation: datetime | None
    duration_seconds: float
    evaluations: int
    failures: int
    alerts_firing: int
    alerts_pending: int
    line: int = 0  # where the rule starts in ``file``
    definition: str = ""  # the rule as its file writes it (YAML)


@dataclass(frozen=True)
class GroupHealth:
    """One rule group, as the rules page shows it (Prometheus's ``/rules`` group header).

    ``interval`` is the group's own (None: every evaluation cycle); ``last_evaluation``
    the latest of its rules', ``duration_seconds`` their sum at that evaluation, and
    ``errors`` the rules whose last evaluation failed, each with its error.
    """

    name: str
    files: tuple[str, ...]
    interval: float | None
    last_evaluation: datetime | None
    duration_seconds: float
    rules: int
    errors: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ReloadStatus:
    """The outcome of the latest rule reload: ``ok``, or the ``problems`` (``file:line:
    column: …`` each) that kept the last good rules running, and when it was tried."""

    ok: bool = True
    problems: tuple[str, ...] = ()
    at: datetime | None = None


@dataclass(frozen=True)
class Overrun:
    """Evaluation cycles that take longer than ``rules.evaluation_interval``: the next
    cycle starts late (never two at once), so data is judged less often than configured.
    ``duration`` is the last cycle's, ``since`` when the first overrunning one ended."""

    duration: float
    interval: float
    since: datetime
    cycles: int
    series: int
    alerts: int


class Alerts(Sequence[Alert]):
    """The alerts of a snapshot, made on first use: an evaluation publishes its records,
    and only a reader (a page, the API, ``/metrics``) turns them into alerts."""

    def __init__(self, make: Callable[[], list[Alert]] | list[Alert]) -> None:
        self._make = make
        self._alerts: list[Alert] | None = make if isinstance(make, list) else None

    def _all(self) -> list[Alert]:
        if self._alerts is None:
            assert callable(self._make)
            self._alerts = self._make()
        return self._alerts

    @overload
    def __getitem__(self, index: int) -> Alert: ...

    @overload
    def __getitem__(self, index: slice) -> list[Alert]: ...

    def __getitem__(self, index: int | slice) -> Alert | list[Alert]:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[Alert]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Alerts):
            other = other._all()
        return self._all() == other

    __hash__ = None  # type: ignore[assignment]


@dataclass
class Snapshot:
    """The engine's state after an evaluation.

    Two times, never to be confused: ``at`` is the instant the data is judged as of (the
    end of ``rules.as_of``'s month, or the evaluation time) and :meth:`data_period` the
    latest period any series has data for — what the figures are about ("data to
    Jul-08"); ``evaluated_at`` is when the daemon evaluated, on its clock ("evaluated
    2 min ago").
    """

    at: datetime | None
    frames: dict[str, IndicatorFrame]
    alerts: Sequence[Alert]  # an Alerts (made on first use) or a list
    rules: list[RuleHealth]
    evaluated_at: datetime | None = None
    groups: list[GroupHealth] = field(default_factory=list)
    overrun: Overrun | None = None  # the cycles are slower than their interval

    def data_period(self) -> tuple[Frequency, int] | None:
        """Return the latest period with data over every series (its frequency and
        ordinal, the latest by start date); None before any data."""
        latest: tuple[date, Frequency, int] | None = None
        for frame in self.frames.values():
            if not len(frame.period):
                continue
            ordinal = int(frame.period.max())
            if ordinal < 0:
                continue
            freq = Frequency(frame.info.frequency)
            start = freq.start(ordinal)
            if latest is None or start > latest[0]:
                latest = (start, freq, ordinal)
        return None if latest is None else (latest[1], latest[2])

    def data_to(self) -> str:
        """``Jul-08`` (a month, as comments write it), ``2008-Q3``; ``""`` without data."""
        found = self.data_period()
        if found is None:
            return ""
        freq, ordinal = found
        if freq is Frequency.MONTHLY:
            return f"{freq.start(ordinal):%b-%y}"
        return freq.label(ordinal)

    def status_of(self, indicator: str, labels: dict[str, str]) -> Status:
        frame = self.frames.get(indicator)
        if frame is None:
            return Status.NO_DATA
        for i, candidate in enumerate(frame.labels):
            if candidate == labels:
                code = int(frame.status[i])
                return next(s for s in Status if s.code == code)
        return Status.NO_DATA
