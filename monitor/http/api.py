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

from monitor.configtypes import parse_duration
from monitor.http.context import HttpContext, SeriesRef, find_series, finite, select_series
from monitor.http.observed import Silence, SilenceSpec
from monitor.matchers import Matcher, MatcherError, compile_matchers, parse_all
from monitor.model import Alert, AlertState, Status, utc
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

    @model_validator(mode="after")
    def _one_end(self) -> SilenceIn:
        if (self.ends_at is None) == (self.duration is None):
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


class SilenceList(BaseModel):
    silences: list[SilenceOut]


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


def alert_out(alert: Alert) -> AlertOut:
    return AlertOut(rule=alert.rule, labels=dict(alert.labels),
                    annotations=dict(alert.annotations), state=alert.state,
                    value=_clean(alert.value), active_since=alert.active_since,
                    fired_at=alert.fired_at, resolved_at=alert.resolved_at,
                    last_evaluated=alert.last_evaluated,
                    period=alert.annotations.get("period"), explanation=alert.explanation,
                    fingerprint=alert.fingerprint)


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
                      recurrence=dict(silence.recurrence) if silence.recurrence else None)


def label_filter(match: Sequence[str]) -> Callable[[Mapping[str, str]], bool] | None:
    """Return the predicate of the ``match`` parameters (None: no filter).

    Raises ApiError 400 naming ``match`` when one does not parse.
    """
    if not match:
        return None
    try:
        return compile_matchers(parse_all(match))
    except MatcherError as exc:
        raise ApiError(400, str(exc), "match") from None


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
        if not ctx.reads_allowed(request):
            raise ApiError(401, "a valid bearer token is required to read "
                                "(server.protect_reads is on)")

    def require_write(request: Request) -> None:
        if not ctx.daemon.api_token():
            raise ApiError(401, "changes through the API are disabled: set server.api_token "
                                "in the config and send it as a bearer token")
        if not ctx.writes_allowed(request):
            raise ApiError(401, "a valid bearer token is required (Authorization: Bearer …)")

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
               rule: Annotated[list[str], Query(description="Rule names.")] = []  # noqa: B006
               ) -> AlertList:
        """Alerts with their explanations, filtered by state, rule and label matchers."""
        keep = label_filter(match)
        snap = ctx.observed.snapshot()
        states, rules = set(state), set(rule)
        found = [a for a in snap.alerts
                 if (not states or a.state in states) and (not rules or a.rule in rules)
                 and (keep is None or keep(a.labels))]
        return AlertList(**times(snap), alerts=[alert_out(a) for a in found])

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

    @api.post("/silences", response_model=SilenceOut, status_code=201, tags=["silences"],
              dependencies=[Depends(require_write)])
    def create_silence(body: SilenceIn) -> SilenceOut:
        """Create a silence (bearer token required). It mutes every alert its matchers match."""
        now = ctx.clock.now()
        starts = utc(body.starts_at) if body.starts_at else now
        ends = utc(body.ends_at) if body.ends_at else \
            starts + timedelta(seconds=parse_duration(body.duration))
        if ends <= starts:
            raise ApiError(400, "ends_at must be after starts_at", "ends_at")
        if ends <= now:
            raise ApiError(400, "the silence would already be over: ends_at is in the past",
                           "ends_at")
        try:  # a Matcher checks its operator and compiles its regular expression
            matchers = tuple(Matcher(m.name, m.value, m.op) for m in body.matchers)
        except MatcherError as exc:
            raise ApiError(400, str(exc), "matchers") from None
        try:
            created = ctx.observed.create_silence(SilenceSpec(
                matchers=matchers, starts_at=starts, ends_at=ends,
                created_by=body.created_by, comment=body.comment,
                recurrence=body.recurrence or None))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return silence_out(created)

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
