"""The JSON API under ``/api/v1``; its OpenAPI description is served at ``/api/openapi.json``.

Reads are open unless ``server.protect_reads`` is set; mutations (creating and expiring
silences) always need ``Authorization: Bearer <server.api_token>``. Bad input is a 400
or 422 naming the parameter, never a 500.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator, model_validator

from monitor import links
from monitor.configtypes import parse_duration
from monitor.http.context import (
    HttpContext,
    SeriesRef,
    find_series,
    finite,
    select_series,
    snapshot_label_names,
)
from monitor.http.observed import HistoryQuery, Silence, SilenceSpec, Suppressed
from monitor.matchers import (
    Matcher,
    MatcherError,
    compile_matchers,
    matches_all,
    parse_all,
    silence_warnings,
)
from monitor.model import Alert, AlertEvent, AlertState, Episode, Status, utc
from monitor.rules.snapshot import (
    IndicatorFrame,
    IndicatorInfo,
    RuleHealth,
    SeriesDetail,
    Snapshot,
)

STATUS_CODES_TEXT = ", ".join(f"{s.code} {s.word}" for s in sorted(Status, key=lambda s: s.code))


class ApiError(Exception):
    """An API request that cannot be served: the status, what went wrong, and the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.message}
        if self.field:
            body["field"] = self.field
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


# --- response models ---------------------------------------------------------------------


class ErrorOut(BaseModel):
    error: str = Field(description="What went wrong and what to do.")
    field: str | None = Field(None, description="The parameter or body field at fault.")


class IndicatorOut(BaseModel):
    id: str
    name: str
    reference: str = Field(description='External reference code, e.g. "SPI 1.1".')
    unit: str
    direction: Literal["up", "down", "neutral"] | str
    frequency: str
    aggregation: str
    window: int = Field(description="Periods in the headline window (12: a rolling year).")
    group: str = Field(description="Scorecard heading the indicator sits under.")
    description: str
    parent: str | None
    children: list[str]
    series_count: int
    status_counts: dict[str, int] = Field(description="Series per RAG status.")


class SeriesOut(BaseModel):
    indicator: str
    labels: dict[str, str]
    fingerprint: str = Field(description="Stable id of the label set; used in series URLs.")
    period: str | None = Field(description="Latest period with data, e.g. 2008-07.")
    value: float | None = Field(description="Headline value for the latest period.")
    target: float | None
    status: Status
    status_code: int = Field(description=STATUS_CODES_TEXT)
    changes: dict[str, float | None] = Field(
        description="Change over each comparison window, as a ratio (-0.078 = -7.8%).")
    provisional: bool
    spc_icon: str | None = Field(
        description="SPC variation at the latest period (as the series detail's spc_icon); "
                    "null when the engine does not publish it with the snapshot.")


class Times(BaseModel):
    """The two times of what a response shows, never one for the other."""

    data_as_of: datetime | None = Field(
        description="The instant the data is judged as of: the end of rules.as_of's month, "
                    "or the evaluation time (null: not evaluated yet).")
    data_to: str | None = Field(
        description="The latest period any series has data for, as comments write it "
                    "(Jul-08): what the figures are about.")
    evaluated_at: datetime | None = Field(
        description="When the daemon evaluated, on its clock (null: not yet).")


def times(snap: Snapshot) -> dict[str, Any]:
    """Return the :class:`Times` fields of ``snap``."""
    return {"data_as_of": snap.at, "data_to": snap.data_to() or None,
            "evaluated_at": snap.evaluated_at}


class IndicatorList(Times):
    indicators: list[IndicatorOut]


class SeriesPage(Times):
    total: int = Field(description="Series matching the filters, before paging.")
    offset: int
    limit: int
    series: list[SeriesOut]


class IndicatorSeries(IndicatorOut, Times):
    total: int
    offset: int
    limit: int
    series: list[SeriesOut]


class ChartPoint(BaseModel):
    period: str = Field(description="The period, e.g. 2008-07.")
    value: float | None = Field(
        description="The period's own value in the headline's unit (a rate already scaled): "
                    "what the XmR chart is drawn from.")
    target: float | None = Field(description="The target on the same per-period scale.")
    level: float | None = Field(
        description="The headline window's value ending at this period (the rolling year): "
                    "what the scorecard's sparkline draws.")
    level_target: float | None = Field(description="The target of that window value.")
    mean: float | None = Field(description="SPC centre line of the point's segment.")
    lower: float | None = Field(description="Lower process limit of the point's segment.")
    upper: float | None = Field(description="Upper process limit of the point's segment.")
    special_cause: int = Field(
        description="SPC rule that flagged the point: 0 none, 1 outside the limits, "
                    "2 trend, 3 two of three near a limit, 4 shift.")
    variation: str = Field(
        description="The point's SPC variation: common_cause, improvement_high, "
                    "improvement_low, concern_high, concern_low, neither_high or neither_low.")
    provisional: bool
    revisions: int = Field(description="Earlier values this period had (0: never revised).")


class SeriesDetailOut(BaseModel):
    indicator: IndicatorOut
    labels: dict[str, str]
    fingerprint: str
    period_label: str
    window_label: str
    value: float | None
    value_text: str
    target: float | None
    target_text: str = Field(description="The Target column: the target of target_year.")
    target_year: str = Field(description="The scorecard's financial year, e.g. 2008/09.")
    judged_year: str = Field(description="The financial year whose target the status "
                                         "judges: the year of the latest data.")
    judged_target_text: str = Field(description="That year's target.")
    status: Status
    status_code: int = Field(description=STATUS_CODES_TEXT)
    comment: str = Field(description="The generated analyst's comment.")
    comment_parts: list[CommentPartOut] = Field(
        description="The comment sentence by sentence, each with what it states.")
    ranks: list[RankOut] = Field(description="The ranks in the peer group the comment states, "
                                             "each with its window.")
    spc_icon: str = Field(description="The latest point's SPC variation: common_cause, "
                                      "improvement_high, improvement_low, concern_high, "
                                      "concern_low, neither_high or neither_low.")
    mean: float | None = Field(description="SPC centre line of the latest segment.")
    upper: float | None = Field(description="Upper process limit of the latest segment.")
    lower: float | None = Field(description="Lower process limit of the latest segment.")
    points: list[ChartPoint]


class CommentPartOut(BaseModel):
    kind: str = Field(description="status, target_note, note, parts, companions, comparison, "
                                  "provisional, variation or rank.")
    text: str


class RankOut(BaseModel):
    indicator: str = Field(description="Whose rank: the series' indicator or a part's.")
    reference: str
    rank: int = Field(description="1 is the best.")
    size: int = Field(description="Members ranked.")
    position: str = Field(description='"2nd", "last".')
    over: str = Field(description="The window as the rule file names it: last 3 months, "
                                  "rolling_year, financial_year, calendar_year.")
    window: str = Field(description='The window as the comment says it: "May–July 2008".')
    first_period: str
    last_period: str
    value: float | None
    group_mean: float | None


class HistoryPointOut(BaseModel):
    period: str
    value: float | None = Field(description="The period's value in the headline's unit, as "
                                            "the evaluation read it (a rate already scaled).")
    provisional: bool
    revisions: int = Field(description="Earlier values this period had (0: never revised).")


class HistoryOut(BaseModel):
    indicator: str
    labels: dict[str, str]
    fingerprint: str
    points: list[HistoryPointOut]


class AlertStatusOut(BaseModel):
    """Whether the notifier would tell anyone, as Alertmanager's API says it."""

    state: Literal["active", "suppressed"] = Field(
        description="suppressed: a silence or an inhibition mutes it.")
    silencedBy: list[str] = Field(description="Ids of the silences muting it.")
    inhibitedBy: list[str] = Field(
        description="Fingerprints of the firing alerts inhibiting it.")


class AlertOut(BaseModel):
    rule: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: AlertState
    value: float | None
    active_since: datetime | None
    fired_at: datetime | None
    resolved_at: datetime | None
    last_evaluated: datetime | None
    period: str | None = Field(description="The period the value is about (Jul-08); "
                                           "active_since and the rest are the daemon's clock.")
    explanation: str = Field(description="The numbers that made the alert fire, in words.")
    fingerprint: str
    status: AlertStatusOut
    series_url: str | None = Field(description="The series chart the alert is about, its "
                                               "data period highlighted (null: no series).")
    silence_url: str = Field(description="The silence form pre-filled with its labels.")


class AlertList(Times):
    alerts: list[AlertOut]


class RuleOut(BaseModel):
    name: str
    group: str
    file: str
    health: Literal["ok", "err", "unknown"] | str
    last_error: str
    last_evaluation: datetime | None
    duration_seconds: float = Field(description="How long the last evaluation took.")
    evaluations: int
    failures: int
    alerts_firing: int
    alerts_pending: int


class RuleList(BaseModel):
    rules: list[RuleOut]


class SourceOut(BaseModel):
    name: str
    kind: str
    health: Literal["ok", "bad", "unknown"] | str
    last_error: str
    last_attempt: datetime | None
    last_success: datetime | None
    consecutive_failures: int
    observations: int = Field(description="Observations (for a milestones source: milestones) "
                                          "the store holds from the source.")
    rejected: int = Field(description="Rows rejected by the last poll that read data.")
    next_poll: datetime | None = Field(description="When the source is polled next (null: "
                                                   "not scheduled here).")
    enabled: bool


class SourceList(BaseModel):
    sources: list[SourceOut]


class MatcherModel(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
    value: str = Field(max_length=10_000)
    op: Literal["=", "!=", "=~", "!~"] = "="


class SilenceIn(BaseModel):
    """A silence to create: give ``ends_at`` or a ``duration`` such as ``2h``."""

    matchers: list[MatcherModel] = Field(min_length=1, max_length=100)
    starts_at: datetime | None = Field(None, description="Default: now.")
    ends_at: datetime | None = None
    duration: str | None = Field(None, description="Instead of ends_at: 30m, 2h, 1d…")
    created_by: str = Field(min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=5000)
    recurrence: dict[str, Any] | None = Field(
        None, description="Make it recurring: mute only inside this time interval, in "
                          "Alertmanager's time_intervals shape, e.g. {\"weekdays\": "
                          "[\"saturday:sunday\"], \"location\": \"Europe/London\"}.")

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    until_next_period: bool = Field(
        False, description="Mute until the next period's data arrives (the Aug-08 figure "
                           "after alerts about Jul-08); ends_at/duration is then optional, "
                           "a backstop defaulting to 400 days.")

    @model_validator(mode="after")
    def _one_end(self) -> SilenceIn:
        if self.ends_at is not None and self.duration is not None:
            raise ValueError("give exactly one of ends_at and duration")
        if self.ends_at is None and self.duration is None and not self.until_next_period:
            raise ValueError("give exactly one of ends_at and duration")
        return self


class SilenceOut(BaseModel):
    id: str
    matchers: list[MatcherModel]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    state: Literal["pending", "active", "expired"] | str
    updated_at: datetime | None
    recurrence: dict[str, Any] | None
    until_period: str | None = Field(
        description="A KPI silence: it mutes alerts about data up to this period and ends "
                    "when a newer period's figure for a matched series arrives.")


class SilenceList(BaseModel):
    silences: list[SilenceOut]


class SilenceCreated(SilenceOut):
    warnings: list[str] = Field(description="What is probably wrong: a label no rule "
                                            "produces, matchers matching no current alert.")


class SilenceExtend(BaseModel):
    """The new end of a silence: ``ends_at`` or a ``duration`` from now."""

    ends_at: datetime | None = None
    duration: str | None = Field(None, description="From now: 30m, 2h, 1d…")

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _one_end(self) -> SilenceExtend:
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("give exactly one of ends_at and duration")
        return self


class PreviewOut(BaseModel):
    """What a silence with these matchers would mute now."""

    alerts: list[AlertOut] = Field(description="The current (firing and pending) alerts "
                                               "the matchers match.")
    warnings: list[str]


class EventOut(BaseModel):
    kind: Literal["transition", "notified", "muted"] | str = Field(
        description="transition (from_state → to_state), notified (detail.receiver) or "
                    "muted (detail.silenced_by / detail.inhibited_by).")
    at: datetime
    from_state: str
    to_state: str
    value: float | None
    explanation: str
    period: str = Field(description="The data period the alert was about (2008-07).")
    detail: dict[str, Any]


class EpisodeOut(BaseModel):
    alert_id: str = Field(description="The alert's fingerprint.")
    rule: str
    labels: dict[str, str]
    state: str = Field(description="The state its last transition left it in.")
    started_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    notifications: int = Field(description="Messages sent about it.")
    muted: int = Field(description="Messages a silence or an inhibition kept back.")
    series_url: str | None
    events: list[EventOut] = Field(description="Oldest first.")


class HistoryList(BaseModel):
    since: datetime | None
    until: datetime | None
    episodes: list[EpisodeOut] = Field(description="Newest first.")


class MilestoneOut(BaseModel):
    source: str
    id: str
    title: str
    owner: str
    due: date
    status: str = Field(description="As recorded: not_started, in_progress or done.")
    completed: date | None
    state: Literal["open", "overdue", "done", "done_late"] | str = Field(
        description="Derived today: open, overdue, done or done_late.")
    labels: dict[str, str]


class MilestoneList(BaseModel):
    as_of: date
    milestones: list[MilestoneOut]


# --- conversions -------------------------------------------------------------------------


def indicator_out(info: IndicatorInfo, frame: IndicatorFrame | None) -> IndicatorOut:
    """Return the API form of an indicator, with its series count and statuses."""
    counts: dict[str, int] = {}
    if frame is not None:
        tally = Counter(int(code) for code in frame.status.tolist())
        counts = {s.value: tally[s.code] for s in Status if tally[s.code]}
    return IndicatorOut(
        id=info.id, name=info.name, reference=info.reference, unit=info.unit,
        direction=info.direction, frequency=info.frequency, aggregation=info.aggregation,
        window=info.window, group=info.group, description=info.description,
        parent=info.parent, children=list(info.children),
        series_count=len(frame.labels) if frame is not None else 0, status_counts=counts)


def series_out(ref: SeriesRef) -> SeriesOut:
    status = ref.status
    return SeriesOut(indicator=ref.frame.info.id, labels=ref.labels,
                     fingerprint=ref.fingerprint, period=ref.period_label, value=ref.value,
                     target=ref.target, status=status, status_code=status.code,
                     changes=ref.changes(), provisional=ref.provisional,
                     spc_icon=ref.spc_icon)


def detail_out(detail: SeriesDetail, fp: str) -> SeriesDetailOut:
    """Return the API form of a series' detail: headline, comment, SPC and chart points."""
    points = [ChartPoint(period=p.period, value=_clean(p.value), target=_clean(p.target),
                         level=_clean(p.level), level_target=_clean(p.level_target),
                         mean=_clean(p.mean), lower=_clean(p.lower), upper=_clean(p.upper),
                         special_cause=p.special, variation=p.variation,
                         provisional=p.provisional, revisions=p.revisions)
              for p in detail.points]
    return SeriesDetailOut(
        indicator=indicator_out(detail.indicator, None), labels=dict(detail.labels),
        fingerprint=fp, period_label=detail.period_label, window_label=detail.window_label,
        value=_clean(detail.value), value_text=detail.value_text,
        target=_clean(detail.target), target_text=detail.target_text, status=detail.status,
        target_year=detail.target_year, judged_year=detail.judged_year,
        judged_target_text=detail.judged_target_text,
        status_code=detail.status.code, comment=detail.comment,
        comment_parts=[CommentPartOut(kind=p.kind, text=p.text) for p in detail.comment_parts],
        ranks=[RankOut(**{**asdict(r), "value": _clean(r.value),
                          "group_mean": _clean(r.group_mean)}) for r in detail.ranks],
        spc_icon=detail.spc_icon,
        mean=_clean(detail.mean), upper=_clean(detail.upper), lower=_clean(detail.lower),
        points=points)


def _clean(value: float | None) -> float | None:
    return None if value is None else finite(value)


def alert_series_url(labels: Mapping[str, str], annotations: Mapping[str, str],
                     base: str = "") -> str | None:
    """Return the series page an alert is about, its period highlighted (None: no series)."""
    indicator, series = labels.get("indicator"), annotations.get("series")
    if not indicator or not series:
        return None
    return links.series_url(base, indicator, series, annotations.get("period_id") or None)


def alert_out(alert: Alert, muted: Suppressed | None = None) -> AlertOut:
    muted = muted or Suppressed()
    suppressed = bool(muted.silenced_by or muted.inhibited_by)
    return AlertOut(rule=alert.rule, labels=dict(alert.labels),
                    annotations=dict(alert.annotations), state=alert.state,
                    value=_clean(alert.value), active_since=alert.active_since,
                    fired_at=alert.fired_at, resolved_at=alert.resolved_at,
                    last_evaluated=alert.last_evaluated,
                    period=alert.annotations.get("period"), explanation=alert.explanation,
                    fingerprint=alert.fingerprint,
                    status=AlertStatusOut(state="suppressed" if suppressed else "active",
                                          silencedBy=list(muted.silenced_by),
                                          inhibitedBy=list(muted.inhibited_by)),
                    series_url=alert_series_url(alert.labels, alert.annotations),
                    silence_url=links.silence_url("", alert.labels))


def event_out(e: AlertEvent) -> EventOut:
    return EventOut(kind=e.kind, at=e.at, from_state=e.from_state, to_state=e.to_state,
                    value=_clean(e.value), explanation=e.explanation, period=e.period,
                    detail=dict(e.detail))


def episode_out(ep: Episode) -> EpisodeOut:
    last = ep.events[-1]
    series = next((e.detail.get("series") for e in ep.events if e.detail.get("series")), None)
    url = links.series_url("", ep.labels["indicator"], str(series), last.period or None) \
        if series and "indicator" in ep.labels else None
    return EpisodeOut(alert_id=ep.alert_id, rule=ep.rule, labels=dict(ep.labels),
                      state=ep.state, started_at=ep.started_at, fired_at=ep.fired_at,
                      resolved_at=ep.resolved_at, notifications=ep.notifications,
                      muted=ep.muted, series_url=url,
                      events=[event_out(e) for e in ep.events])


def parse_time(value: str | None, name: str) -> datetime | None:
    """Return an ISO 8601 time, or a period (``2008-07``: its first instant), as UTC.

    Raises ApiError 400 naming ``name`` when it is neither.
    """
    if not value:
        return None
    text = value.strip()
    try:
        if len(text) == 7 and text[4] == "-":
            return datetime.fromisoformat(text + "-01T00:00:00+00:00")
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ApiError(400, f"{name}: {value!r} is not a time; write 2008-07, 2008-07-31 "
                            "or 2008-07-31T12:00:00Z", name) from None


def rule_out(rule: RuleHealth) -> RuleOut:
    return RuleOut(name=rule.name, group=rule.group, file=rule.file, health=rule.health,
                   last_error=rule.last_error, last_evaluation=rule.last_evaluation,
                   duration_seconds=rule.duration_seconds, evaluations=rule.evaluations,
                   failures=rule.failures, alerts_firing=rule.alerts_firing,
                   alerts_pending=rule.alerts_pending)


def silence_out(silence: Silence) -> SilenceOut:
    return SilenceOut(id=silence.id,
                      matchers=[MatcherModel(name=m.name, value=m.value, op=m.op)
                                for m in silence.matchers],
                      starts_at=silence.starts_at, ends_at=silence.ends_at,
                      created_by=silence.created_by, comment=silence.comment,
                      state=silence.state, updated_at=silence.updated_at,
                      recurrence=dict(silence.recurrence) if silence.recurrence else None,
                      until_period=silence.until_period)


def label_filter(match: Sequence[str]) -> Callable[[Mapping[str, str]], bool] | None:
    """Return the predicate of the ``match`` parameters (None: no filter).

    Raises ApiError 400 naming ``match`` when one does not parse.
    """
    return compile_matchers(label_matchers(match)) if match else None


def label_matchers(match: Sequence[str]) -> tuple[Matcher, ...]:
    """Return the matchers of the ``match`` parameters (empty: no filter).

    Raises ApiError 400 naming ``match`` when one does not parse.
    """
    try:
        return tuple(parse_all(match)) if match else ()
    except MatcherError as exc:
        raise ApiError(400, str(exc), "match") from None


def latest_period(alerts: Sequence[Alert]) -> str | None:
    """Return the newest data period (``2008-07``) the alerts are about (None: none)."""
    periods = [a.annotations["period_id"] for a in alerts if a.annotations.get("period_id")]
    return max(periods) if periods else None


# --- the router ----------------------------------------------------------------------------

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a parameter is invalid (`field` names it)"},
    401: {"model": ErrorOut, "description": "missing or wrong bearer token"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such indicator or series"}}

Match = Annotated[list[str], Query(
    description='Label matchers, all of which must hold: borough="Camden", '
                'borough=~"Cam.*", borough!="Camden". Repeat the parameter to add more.')]
Limit = Annotated[int, Query(ge=1, le=10_000, description="Series per page.")]
Offset = Annotated[int, Query(ge=0, description="Series to skip.")]


def build_router(ctx: HttpContext) -> APIRouter:
    """Return the ``/api/v1`` router reading ``ctx``."""

    def require_read(request: Request) -> None:
        refusal = ctx.read_refusal(request)
        if refusal is not None:
            raise ApiError(401, refusal)

    def require_write(request: Request) -> None:
        refusal = ctx.write_refusal(request)
        if refusal is not None:
            raise ApiError(401, refusal)

    reads = [Depends(require_read)]
    api = APIRouter(prefix="/api/v1", responses=ERRORS)

    @api.get("/indicators", response_model=IndicatorList, tags=["indicators"],
             dependencies=reads)
    def indicators() -> IndicatorList:
        """Every indicator in scorecard order, with its series count and RAG statuses."""
        snap = ctx.observed.snapshot()
        return IndicatorList(**times(snap), indicators=[indicator_out(frame.info, frame)
                                                     for frame in snap.frames.values()])

    @api.get("/series", response_model=SeriesPage, tags=["indicators"], dependencies=reads)
    def series(match: Match = [],  # noqa: B006 - FastAPI reads the default, never mutates it
               indicator: Annotated[list[str], Query(description="Indicator ids.")] = [],  # noqa: B006
               status: Annotated[list[Status], Query(description="RAG statuses.")] = [],  # noqa: B006
               limit: Limit = 1000, offset: Offset = 0) -> SeriesPage:
        """Every series' latest value, target and status, filtered and paged."""
        snap = ctx.observed.snapshot()
        refs = list(select_series(snap, indicators=indicator, match=label_filter(match),
                                  statuses=status))
        return SeriesPage(**times(snap), total=len(refs), offset=offset, limit=limit,
                          series=[series_out(r) for r in refs[offset:offset + limit]])

    @api.get("/indicators/{indicator}", response_model=IndicatorSeries, tags=["indicators"],
             dependencies=reads, responses=NOT_FOUND)
    def indicator_series(indicator: str, match: Match = [],  # noqa: B006
                         status: Annotated[list[Status], Query()] = [],  # noqa: B006
                         limit: Limit = 1000, offset: Offset = 0) -> IndicatorSeries:
        """One indicator with its series' latest values, targets and statuses."""
        snap = ctx.observed.snapshot()
        frame = snap.frames.get(indicator)
        if frame is None:
            raise ApiError(404, f"no indicator {indicator!r}; GET /api/v1/indicators lists "
                                "them", "indicator")
        refs = list(select_series(snap, indicators=[indicator], match=label_filter(match),
                                  statuses=status))
        head = indicator_out(frame.info, frame)
        return IndicatorSeries(**head.model_dump(), **times(snap), total=len(refs), offset=offset,
                               limit=limit,
                               series=[series_out(r) for r in refs[offset:offset + limit]])

    def lookup(indicator: str, fp: str) -> SeriesRef:
        snap = ctx.observed.snapshot()
        if indicator not in snap.frames:
            raise ApiError(404, f"no indicator {indicator!r}", "indicator")
        ref = find_series(snap, indicator, fp)
        if ref is None:
            raise ApiError(404, f"indicator {indicator!r} has no series with fingerprint "
                                f"{fp!r}; GET /api/v1/indicators/{indicator} lists them",
                           "fingerprint")
        return ref

    @api.get("/indicators/{indicator}/series/{fingerprint}", response_model=SeriesDetailOut,
             tags=["indicators"], dependencies=reads, responses=NOT_FOUND)
    def series_detail(indicator: str, fingerprint: str) -> SeriesDetailOut:
        """One series: headline, target, status, generated comment, SPC limits and chart."""
        ref = lookup(indicator, fingerprint)
        detail = ctx.observed.detail(indicator, ref.labels)
        if detail is None:
            raise ApiError(404, f"no detail for series {fingerprint} of {indicator!r} yet",
                           "fingerprint")
        return detail_out(detail, fingerprint)

    @api.get("/indicators/{indicator}/series/{fingerprint}/history", response_model=HistoryOut,
             tags=["indicators"], dependencies=reads, responses=NOT_FOUND)
    def series_history(indicator: str, fingerprint: str) -> HistoryOut:
        """Every period the evaluation read for one series, oldest first: its value in the
        headline's unit, provisional flag and revisions."""
        ref = lookup(indicator, fingerprint)
        detail = ctx.observed.detail(indicator, ref.labels)
        points = [HistoryPointOut(period=p.period, value=_clean(p.value),
                                  provisional=p.provisional, revisions=p.revisions)
                  for p in (detail.points if detail is not None else ())]
        return HistoryOut(indicator=indicator, labels=ref.labels, fingerprint=fingerprint,
                          points=points)

    @api.get("/alerts", response_model=AlertList, tags=["alerts"], dependencies=reads)
    def alerts(state: Annotated[list[AlertState], Query(
                   description="Alert states to list (default: every state held).")] = [],  # noqa: B006
               match: Match = [],  # noqa: B006
               rule: Annotated[list[str], Query(description="Rule names.")] = [],  # noqa: B006
               suppressed: Annotated[bool | None, Query(
                   description="true: only alerts a silence or an inhibition mutes; false: "
                               "only the others.")] = None
               ) -> AlertList:
        """Alerts with their explanations, filtered by state, rule and label matchers."""
        keep = label_filter(match)
        snap = ctx.observed.snapshot()
        states, rules = set(state), set(rule)
        muted = ctx.observed.suppressed()
        found = [a for a in snap.alerts
                 if (not states or a.state in states) and (not rules or a.rule in rules)
                 and (keep is None or keep(a.labels))
                 and (suppressed is None or (a.fingerprint in muted) == suppressed)]
        return AlertList(**times(snap), alerts=[alert_out(a, muted.get(a.fingerprint))
                                                for a in found])

    @api.get("/alerts/history", response_model=HistoryList, tags=["alerts"],
             dependencies=reads)
    def alert_history(
            rule: Annotated[list[str], Query(description="Rule names.")] = [],  # noqa: B006
            match: Match = [],  # noqa: B006
            since: Annotated[str | None, Query(
                description="From (inclusive): 2008-07, 2008-07-31 or an ISO 8601 time.")]
            = None,
            until: Annotated[str | None, Query(description="To (exclusive), as since.")] = None,
            limit: Annotated[int, Query(ge=1, le=100_000,
                                        description="Events read at most.")] = 10_000
            ) -> HistoryList:
        """Every alert episode with events in the range, newest first: when it went
        pending, fired and resolved (value and explanation at each), the notifications
        sent and the messages silences or inhibitions muted. Kept for
        notify.history_retention."""
        matchers = label_matchers(match)
        start, end = parse_time(since, "since"), parse_time(until, "until")
        found = ctx.observed.history(HistoryQuery(rules=tuple(rule), matchers=matchers,
                                                  since=start, until=end, limit=limit))
        return HistoryList(since=start, until=end,
                           episodes=[episode_out(ep) for ep in found])

    @api.get("/rules", response_model=RuleList, tags=["rules"], dependencies=reads)
    def rules(health: Annotated[list[str], Query(
                  description="ok, err or unknown.")] = []) -> RuleList:  # noqa: B006
        """Every rule with its health, last error and last evaluation's duration."""
        wanted = set(health)
        return RuleList(rules=[rule_out(r) for r in ctx.observed.snapshot().rules
                               if not wanted or r.health in wanted])

    @api.get("/sources", response_model=SourceList, tags=["sources"], dependencies=reads)
    def sources() -> SourceList:
        """Every data source with its health, last error, stored observations, rows rejected
        by the last poll that read data, and next poll."""
        return SourceList(sources=[SourceOut(**asdict(s)) for s in ctx.observed.sources()])

    @api.get("/milestones", response_model=MilestoneList, tags=["milestones"],
             dependencies=reads)
    def milestones(source: Annotated[list[str], Query()] = [],  # noqa: B006
                   state: Annotated[list[str], Query(
                       description="open, overdue, done or done_late.")] = []  # noqa: B006
                   ) -> MilestoneList:
        """Plan milestones with the state they are in today."""
        today = ctx.evaluation_date()
        out = []
        for item in ctx.observed.milestones():
            m = item.milestone
            derived = m.state(today)
            if (source and item.source not in source) or (state and derived not in state):
                continue
            out.append(MilestoneOut(source=item.source, id=m.id, title=m.title, owner=m.owner,
                                    due=m.due, status=m.status, completed=m.completed,
                                    state=derived, labels=dict(m.labels)))
        return MilestoneList(as_of=today, milestones=out)

    @api.get("/silences", response_model=SilenceList, tags=["silences"], dependencies=reads)
    def silences(state: Annotated[list[Literal["pending", "active", "expired"]], Query()]
                 = []) -> SilenceList:  # noqa: B006
        """Silences, newest first; filter by state."""
        wanted = set(state)
        found = [s for s in ctx.observed.silences() if not wanted or s.state in wanted]
        found.sort(key=lambda s: s.starts_at, reverse=True)
        return SilenceList(silences=[silence_out(s) for s in found])

    def current(matchers: Sequence[Matcher]) -> tuple[list[Alert], list[str]]:
        """Return the firing and pending alerts ``matchers`` match, and the warnings."""
        snap = ctx.observed.snapshot()
        live = [a for a in snap.alerts if a.state in (AlertState.FIRING, AlertState.PENDING)]
        return ([a for a in live if matches_all(matchers, a.labels)],
                silence_warnings(matchers, [a.labels for a in live], snapshot_label_names(snap)))

    def to_matchers(models: Sequence[MatcherModel]) -> tuple[Matcher, ...]:
        try:  # a Matcher checks its operator and compiles its regular expression
            return tuple(Matcher(m.name, m.value, m.op) for m in models)
        except MatcherError as exc:
            raise ApiError(400, str(exc), "matchers") from None

    @api.get("/silences/preview", response_model=PreviewOut, tags=["silences"],
             dependencies=reads)
    def preview_silence(match: Annotated[list[str], Query(
            min_length=1, description='The silence\'s matchers: area="North", '
                                      'alertname=~"Burglary.*". Repeat for more.')]
            ) -> PreviewOut:
        """Which current alerts a silence with these matchers would mute, and what is
        probably wrong with them (a label no rule produces, no alert matched)."""
        try:
            matchers = parse_all(match)
        except MatcherError as exc:
            raise ApiError(400, str(exc), "match") from None
        found, warnings = current(matchers)
        muted = ctx.observed.suppressed()
        return PreviewOut(alerts=[alert_out(a, muted.get(a.fingerprint)) for a in found],
                          warnings=warnings)

    @api.post("/silences", response_model=SilenceCreated, status_code=201, tags=["silences"],
              dependencies=[Depends(require_write)])
    def create_silence(body: SilenceIn) -> SilenceCreated:
        """Create a silence (bearer token required). It mutes every alert its matchers
        match; ``warnings`` says when they match no current alert or name a label no rule
        produces. ``until_next_period`` mutes until a newer period's data arrives."""
        now = ctx.clock.now()
        starts = utc(body.starts_at) if body.starts_at else now
        ends = utc(body.ends_at) if body.ends_at else \
            starts + timedelta(seconds=parse_duration(body.duration)) if body.duration else \
            starts + timedelta(days=400)
        if ends <= starts:
            raise ApiError(400, "ends_at must be after starts_at", "ends_at")
        if ends <= now:
            raise ApiError(400, "the silence would already be over: ends_at is in the past",
                           "ends_at")
        matchers = to_matchers(body.matchers)
        found, warnings = current(matchers)
        until_period = None
        if body.until_next_period:
            until_period = latest_period(found)
            if until_period is None:
                raise ApiError(400, "until_next_period: no current alert with a data period "
                                    "matches these matchers, so there is no period to wait "
                                    "past; give ends_at or duration instead",
                               "until_next_period")
        try:
            created = ctx.observed.create_silence(SilenceSpec(
                matchers=matchers, starts_at=starts, ends_at=ends,
                created_by=body.created_by, comment=body.comment,
                recurrence=body.recurrence or None, until_period=until_period))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return SilenceCreated(**silence_out(created).model_dump(), warnings=warnings)

    @api.post("/silences/{silence_id}/extend", response_model=SilenceOut, tags=["silences"],
              dependencies=[Depends(require_write)],
              responses={404: {"model": ErrorOut, "description": "no such silence"}})
    def extend_silence(silence_id: str, body: SilenceExtend) -> SilenceOut:
        """Make a silence last longer (bearer token required)."""
        ends = utc(body.ends_at) if body.ends_at else \
            ctx.clock.now() + timedelta(seconds=parse_duration(body.duration))
        try:
            longer = ctx.observed.extend_silence(silence_id, ends)
        except ValueError as exc:
            raise ApiError(400, str(exc), "ends_at") from None
        if longer is None:
            raise ApiError(404, f"no silence {silence_id!r}; GET /api/v1/silences lists them",
                           "silence_id")
        return silence_out(longer)

    @api.delete("/silences/{silence_id}", response_model=SilenceOut, tags=["silences"],
                dependencies=[Depends(require_write)],
                responses={404: {"model": ErrorOut, "description": "no such silence"}})
    def expire_silence(silence_id: str) -> SilenceOut:
        """Expire a silence now (bearer token required); it stays listed as expired."""
        expired = ctx.observed.expire_silence(silence_id)
        if expired is None:
            raise ApiError(404, f"no silence {silence_id!r}; GET /api/v1/silences lists them",
                           "silence_id")
        return silence_out(expired)

    return api
