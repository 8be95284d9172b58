"""Server-rendered pages: the live scorecard, indicator charts, alerts, rules, sources, silences.

Jinja2 templates in ``templates/`` with autoescaping, one stylesheet in ``static/``, SVG
drawn on the server (``charts.py``); no JavaScript and no front-end build step. Each
handler builds a small view model from the engine's snapshot and renders one template.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from monitor import links
from monitor.configtypes import format_duration, parse_duration
from monitor.http import charts
from monitor.http.api import ApiError, episode_out, label_matchers, latest_period, parse_time
from monitor.http.context import (
    HttpContext,
    SeriesRef,
    find_series,
    select_series,
    snapshot_label_names,
)
from monitor.http.observed import HistoryQuery, SilenceSpec
from monitor.matchers import (
    Matcher,
    MatcherError,
    compile_matchers,
    matches_all,
    parse_all,
    silence_warnings,
)
from monitor.model import Alert, AlertState, Frequency, Status, fingerprint
from monitor.rules.snapshot import IndicatorInfo, RuleHealth, SeriesDetail

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

STATUS_ORDER = (Status.RED, Status.AMBER, Status.GREEN, Status.BASELINE, Status.NOT_RATED,
                Status.NO_DATA)
STATUS_WORDS = {s: s.word.capitalize() for s in Status}  # "Not rated", "No data", …
STATUS_MARKS = {Status.RED: "✕", Status.AMBER: "!", Status.GREEN: "✓", Status.BASELINE: "○",
                Status.NOT_RATED: "–", Status.NO_DATA: "?"}
DIRECTION_WORDS = {"up": "higher is better", "down": "lower is better",
                   "neutral": "neither higher nor lower is better"}


def build_environment() -> Environment:
    """Return the Jinja2 environment of the pages: autoescaped, strict about undefined names."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(
        ["html"], default_for_string=True), undefined=StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    env.globals.update(status_words=STATUS_WORDS, status_marks=STATUS_MARKS,
                       direction_words=DIRECTION_WORDS, spc_icon=charts.spc_icon,
                       spc_words={k: v[2] for k, v in charts.SPC_ICONS.items()},
                       special_rules=charts.SPECIAL_RULES)
    env.filters.update(number=format_number, series_url=series_url,
                       labels_text=labels_text, selector=selector,
                       recurrence_text=recurrence_text, duration=duration_text,
                       silence_link=lambda labels: links.silence_url("", labels))
    return env


# --- formatting helpers (pure) ------------------------------------------------------------


def format_number(value: float | None) -> str:
    """Return a published number for a table cell: ``9,828``, ``30.8``, ``0.125``, ``—``.

    Only the layout: the value is shown as published, never rescaled; headline figures
    come with their own text (``value_text``, ``target_text``) from the engine.
    """
    if value is None or not math.isfinite(value):
        return "—"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if abs(value) >= 1 else f"{value:.3g}"


def labels_text(labels: Mapping[str, str]) -> str:
    """Return the label values joined for display (``Camden · Burglary``), or ``—``."""
    return " · ".join(labels.values()) or "—"


def recurrence_text(recurrence: Mapping[str, Any] | None) -> str:
    """Return ``saturday:sunday 18:00-24:00 Europe/London`` for a recurrence (``""``: none)."""
    if not recurrence:
        return ""
    parts = [",".join(str(v) for v in recurrence.get(key) or [])
             for key in ("weekdays", "days_of_month", "months", "years")]
    times = recurrence.get("times") or []
    parts.append(",".join(f"{t.get('start_time', '')}-{t.get('end_time', '')}"
                          for t in times if isinstance(t, Mapping)))
    parts.append(str(recurrence.get("location") or "UTC"))
    return " ".join(part for part in parts if part)


def selector(labels: Mapping[str, str]) -> str:
    """Return the label set as a selector: ``{borough="Camden"}``."""
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return "{" + inner + "}"


def series_url(indicator: str, fp: str) -> str:
    return f"/indicators/{quote(indicator, safe='')}/series/{fp}"


def duration_text(seconds: float) -> str:
    """Return an interval as a rule file writes it: ``30s``, ``5m``, ``1h30m``, ``1d``."""
    total = round(seconds)
    if total <= 0:
        return "0s"
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts)


def evaluated_text(evaluated_at: datetime | None, now: datetime) -> str:
    """``evaluated 2m ago``: when the daemon evaluated, on its clock ("not evaluated yet")."""
    return "not evaluated yet" if evaluated_at is None else f"evaluated {ago(evaluated_at, now)}"


def ago(then: datetime | None, now: datetime) -> str:
    """Return ``12s ago``, ``5m ago``, ``3h ago``, ``2d ago``, ``in 4m`` or ``never``."""
    if then is None:
        return "never"
    seconds = (now - then).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds >= size or unit == "s":
            text = f"{int(seconds // size)}{unit}"
            return f"in {text}" if future else f"{text} ago"
    return "now"  # pragma: no cover - the loop always returns


# --- view models ----------------------------------------------------------------------------


@dataclass
class Row:
    """One scorecard row: one series, or the "more series" link closing an indicator."""

    info: IndicatorInfo
    first: bool
    span: int
    kind: str = "series"  # series | more
    fp: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    value_text: str = "—"
    period_text: str = ""
    target_text: str = "—"
    status: Status = Status.NO_DATA
    status_word: str = STATUS_WORDS[Status.NO_DATA]
    comment: str = ""
    spc: str = ""
    spark: Markup = field(default_factory=Markup)
    provisional: bool = False
    child: bool = False  # a part of the indicator above it ("of these: cocaine …")
    hidden: int = 0


@dataclass
class Group:
    title: str
    rows: list[Row]


def status_word(status: Status) -> str:
    """Return the word the RAG badge, the tiles and the filters show for ``status``."""
    return STATUS_WORDS[status]


def row_from_detail(detail: SeriesDetail) -> Row:
    """Return the scorecard row the engine's detail of one series describes."""
    info = detail.indicator
    spark = detail.sparkline
    return Row(info=info, first=True, span=1, fp=fingerprint(detail.labels),
               labels=dict(detail.labels), value_text=detail.value_text,
               period_text=detail.window_label or detail.period_label,
               target_text=detail.target_text, status=detail.status,
               status_word=status_word(detail.status),
               comment=detail.comment, spc=detail.spc_icon,
               spark=charts.sparkline([p.level for p in spark],
                                      [p.level_target for p in spark],
                                      status=detail.status.value,
                                      label=f"{info.name}: last {len(spark)} periods"),
               provisional=detail.provisional)


def row_for(ref: SeriesRef, detail: SeriesDetail | None) -> Row:
    """Return the row of a series: from its detail, or from the snapshot's frame alone
    (its numbers as published, without the engine's texts)."""
    if detail is not None:
        row = row_from_detail(detail)
        row.provisional = row.provisional or ref.provisional
        return row
    info = ref.frame.info
    status = ref.status
    return Row(info=info, first=True, span=1, fp=ref.fingerprint, labels=ref.labels,
               value_text=format_number(ref.value), period_text=ref.period_label or "",
               target_text=format_number(ref.target), status=status,
               status_word=status_word(status),
               provisional=ref.provisional)


def group_rows(rows: Sequence[Row]) -> list[Group]:
    """Return rows under their group headings, groups in first-appearance order.

    Consecutive rows of one indicator share its name cell (``first`` and ``span``); an
    indicator whose parent is shown above it becomes a sub-row.
    """
    shown = {row.info.id for row in rows}
    groups: dict[str, Group] = {}
    previous: Row | None = None
    for row in rows:
        if previous is not None and previous.info.id == row.info.id:
            row.first = False
            head = next(r for r in reversed(groups[previous.info.group or OTHER].rows)
                        if r.first)
            head.span += 1
        else:
            row.first, row.span = True, 1
        row.child = row.info.parent is not None and row.info.parent in shown
        title = row.info.group or OTHER
        groups.setdefault(title, Group(title, [])).rows.append(row)
        previous = row
    return list(groups.values())


OTHER = "Other indicators"


def all_series_rows(ctx: HttpContext, refs: Sequence[SeriesRef],
                    per_indicator: int) -> list[Row]:
    """Return rows for every series, at most ``per_indicator`` per indicator.

    An indicator with more series ends with a "more" row linking to its page.
    """
    by_indicator: dict[str, list[SeriesRef]] = {}
    for ref in refs:
        by_indicator.setdefault(ref.frame.info.id, []).append(ref)
    rows: list[Row] = []
    for members in by_indicator.values():
        info = members[0].frame.info
        shown = members[:per_indicator]
        rows.extend(row_for(ref, detail) for ref, detail in zip(
            shown, ctx.observed.details(info.id, [ref.labels for ref in shown]), strict=True))
        if len(members) > len(shown):
            rows.append(Row(info=info, first=False, span=1, kind="more",
                            hidden=len(members) - len(shown)))
    return rows


@dataclass(frozen=True)
class AlertRow:
    """One row of the alerts page: the alert, its value as its rule wrote it, and where to
    read more — its series' chart at the alert's period, its rule, a silence for it."""

    alert: Alert
    value_text: str
    series_link: str
    rule_link: str
    silence_link: str


def alert_row(alert: Alert) -> AlertRow:
    """Return the row of ``alert``: the value in its unit as the engine published it
    (``value_text``: ``0.6%``), else the plain number."""
    indicator = alert.labels.get("indicator", "")
    return AlertRow(
        alert,
        alert.annotations.get("value_text") or format_number(alert.value),
        links.series_url("", indicator, alert.series, alert.period or None)
        if indicator and alert.series else "",
        links.rule_url("", alert.rule),
        links.silence_url("", alert.labels))


# --- the router -----------------------------------------------------------------------------

MatchParam = Annotated[list[str], Query()]
StatusParam = Annotated[list[Status], Query()]


def build_router(ctx: HttpContext, env: Environment | None = None) -> APIRouter:
    """Return the router serving the HTML pages from ``ctx``."""
    env = env or build_environment()
    pages = APIRouter(include_in_schema=False)

    def render(request: Request, template: str, status_code: int = 200,
               **values: Any) -> HTMLResponse:
        now = ctx.clock.now()
        html = env.get_template(template).render(
            request_path=request.url.path, now=now, ago=lambda t: ago(t, now), **values)
        return HTMLResponse(html, status_code=status_code)

    def denied(request: Request) -> HTMLResponse | None:
        refusal = ctx.read_refusal(request)
        if refusal is None:
            return None
        response = render(request, "error.html", 401, title="Sign-in required",
                          message=f"{refusal}. A browser reaches these pages through a "
                                  "reverse proxy that adds the Authorization header.")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    def parse_filter(match: Sequence[str]) -> tuple[Callable[[Mapping[str, str]], bool] | None,
                                                    str]:
        texts = [m for m in match if m.strip()]
        if not texts:
            return None, ""
        try:
            return compile_matchers(parse_all(texts)), ""
        except MatcherError as exc:
            return None, str(exc)

    @pages.get("/", response_class=RedirectResponse)
    def root() -> RedirectResponse:
        return RedirectResponse("/scorecard", status_code=307)

    @pages.get("/scorecard", response_class=HTMLResponse)
    def scorecard(request: Request, match: MatchParam = [],  # noqa: B006
                  status: StatusParam = [],  # noqa: B006
                  view: Annotated[Literal["scorecard", "all"], Query()] = "scorecard",
                  per_indicator: Annotated[int, Query(ge=1, le=500)] = 10) -> Response:
        if (response := denied(request)) is not None:
            return response
        snap = ctx.observed.snapshot()
        keep, error = parse_filter(match)
        reported = list(ctx.observed.scorecard()) if view == "scorecard" else []
        if reported:
            candidates = [row_from_detail(d) for d in reported
                          if keep is None or keep(d.labels)]
            counts = Counter(row.status for row in candidates)
            rows = [row for row in candidates if not status or row.status in status]
        else:
            view = "all"
            refs = list(select_series(snap, match=keep))
            counts = Counter(ref.status for ref in refs)
            rows = all_series_rows(ctx, [r for r in refs if not status or r.status in status],
                                   per_indicator)
        groups = group_rows(rows)
        series_rows = [r for r in rows if r.kind == "series"]
        label_sets = {tuple(sorted(r.labels.items())) for r in series_rows}
        common = dict(next(iter(label_sets))) if len(label_sets) == 1 else {}
        show_series = not common and any(r.span > 1 for r in rows if r.first)
        choices = label_choices(snap.frames.values())
        options = {f'{name}="{value}"' for name, values in choices.items() for value in values}
        free_match = ", ".join(m for m in match if m.strip() and m not in options)
        today = ctx.evaluation_date()
        milestone_counts: Counter[str] = Counter()
        milestone_sources: dict[str, Counter[str]] = {}
        for item in ctx.observed.milestones():
            state = item.milestone.state(today)
            milestone_counts[state] += 1
            milestone_sources.setdefault(item.source, Counter())[state] += 1
        base = {"match": match, "view": view if view == "all" else "",
                "per_indicator": per_indicator if per_indicator != 10 else ""}
        return render(request, "scorecard.html", title="Scorecard", snapshot_at=snap.at,
                      data_to=snap.data_to(), evaluated_at=snap.evaluated_at,
                      groups=groups, counts=counts, status_order=STATUS_ORDER,
                      selected_status=set(status), match=[m for m in match if m.strip()],
                      error=error, choices=choices, free_match=free_match, view=view,
                      firing=sum(1 for a in snap.alerts if a.state is AlertState.FIRING),
                      milestones=milestone_counts, milestone_sources=milestone_sources,
                      show_series=show_series, common=common,
                      indicators=len({r.info.id for r in series_rows}),
                      series_count=len(series_rows),
                      spc_shown=spc_legend(r.spc for r in series_rows if r.spc),
                      view_link=lambda v: _query({**base, "view": v if v == "all" else ""}),
                      status_link=lambda s: _query({**base, "status": s.value}))

    @pages.get("/report", response_class=HTMLResponse)
    def report(request: Request,
               at: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None
               ) -> Response:
        """The monthly performance pack of ``at`` (default: the month the daemon evaluates
        as of), the HTML the PDF is made from."""
        if (response := denied(request)) is not None:
            return response
        snap_at = ctx.observed.snapshot().at
        month = at or (f"{snap_at:%Y-%m}" if snap_at is not None else None)
        try:
            period = Frequency.MONTHLY.parse(month or "")
        except ValueError:
            return render(request, "error.html", 400, title="Which month?",
                          message="Name the month of the pack: /report?at=YYYY-MM "
                                  "(for example /report?at=2008-07).")
        document = ctx.observed.pack_html(period)
        if document is None:
            return render(request, "error.html", 503, title="No pack yet",
                          message="The daemon has not loaded its rules yet; try again "
                                  "in a moment.")
        return HTMLResponse(document)

    @pages.get("/indicators/{indicator}", response_class=HTMLResponse)
    def indicator(request: Request, indicator: str, match: MatchParam = [],  # noqa: B006
                  status: StatusParam = [],  # noqa: B006
                  limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                  offset: Annotated[int, Query(ge=0)] = 0) -> Response:
        if (response := denied(request)) is not None:
            return response
        snap = ctx.observed.snapshot()
        frame = snap.frames.get(indicator)
        if frame is None:
            return render(request, "error.html", 404, title="No such indicator",
                          message=f"There is no indicator {indicator!r}.")
        if len(frame.labels) == 1 and not match and not status:
            ref = SeriesRef(frame, 0)
            return RedirectResponse(series_url(indicator, ref.fingerprint), status_code=307)
        keep, error = parse_filter(match)
        refs = list(select_series(snap, indicators=[indicator], match=keep, statuses=status))
        page = refs[offset:offset + limit]
        rows = [row_for(ref, detail) for ref, detail in zip(
            page, ctx.observed.details(indicator, [ref.labels for ref in page]), strict=True)]
        base = {"match": match, "status": [s.value for s in status], "limit": limit}
        return render(request, "indicator.html", title=frame.info.name, info=frame.info,
                      rows=rows, total=len(refs), offset=offset, limit=limit, error=error,
                      match=[m for m in match if m.strip()],
                      prev_link=_query({**base, "offset": max(0, offset - limit)})
                      if offset else "",
                      next_link=_query({**base, "offset": offset + limit})
                      if offset + limit < len(refs) else "")

    @pages.get("/indicators/{indicator}/series/{fingerprint}", response_class=HTMLResponse)
    def series(request: Request, indicator: str, fingerprint: str,
               at: Annotated[str | None, Query(max_length=16)] = None) -> Response:
        if (response := denied(request)) is not None:
            return response
        snap = ctx.observed.snapshot()
        ref = find_series(snap, indicator, fingerprint)
        if ref is None:
            return render(request, "error.html", 404, title="No such series",
                          message=f"Indicator {indicator!r} has no series {fingerprint}.")
        detail = ctx.observed.detail(indicator, ref.labels)
        points = charts.chart_points(detail) if detail else []
        at = (at or "").strip() or None
        marked = next((p for p in points if p.key == at), None)
        own = (Matcher("indicator", indicator),
               *(Matcher(k, v) for k, v in sorted(ref.labels.items())))
        timeline = [episode_out(ep) for ep in ctx.observed.history(HistoryQuery(matchers=own))]
        return render(request, "series.html", title=ref.frame.info.name, info=ref.frame.info,
                      episodes=timeline,
                      ref=ref, row=row_for(ref, detail), detail=detail,
                      chart=charts.chart(detail, at=at) if detail else Markup(""),
                      points=points, at=at, marked=marked,
                      variations=sorted({p.variation for p in points if p.variation}),
                      any_provisional=any(p.provisional for p in points),
                      history=list(detail.points)[::-1] if detail else [],
                      alerts=[a for a in snap.alerts if a.labels.get("indicator") == indicator
                              and all(a.labels.get(k) == v for k, v in ref.labels.items())])

    @pages.get("/alerts", response_class=HTMLResponse)
    def alerts(request: Request,
               state: Annotated[list[AlertState], Query()] = [],  # noqa: B006
               match: MatchParam = []) -> Response:  # noqa: B006
        if (response := denied(request)) is not None:
            return response
        snap = ctx.observed.snapshot()
        keep, error = parse_filter(match)
        wanted = set(state) or {AlertState.FIRING, AlertState.PENDING}
        matching = [a for a in snap.alerts if keep is None or keep(a.labels)]
        found = [a for a in matching if a.state in wanted]
        order = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2,
                 AlertState.INACTIVE: 3}
        found.sort(key=lambda a: (order[a.state], a.rule, sorted(a.labels.items())))
        counts = Counter(a.state for a in matching)  # the header counts what the filter keeps
        return render(request, "alerts.html", title="Alerts",
                      rows=[alert_row(a) for a in found], muted=ctx.observed.suppressed(),
                      alert_names={a.fingerprint: a.rule for a in snap.alerts},
                      firing=counts[AlertState.FIRING], pending=counts[AlertState.PENDING],
                      total=len(snap.alerts), filtered=keep is not None,
                      wanted=wanted, match=[m for m in match if m.strip()], error=error,
                      states=list(AlertState))

    @pages.get("/alerts/history", response_class=HTMLResponse)
    def alert_history(request: Request, rule: str = "", match: MatchParam = [],  # noqa: B006
                      since: str = "", until: str = "") -> Response:
        if (response := denied(request)) is not None:
            return response
        matchers: tuple[Matcher, ...] = ()
        error = ""
        try:
            matchers = label_matchers([m for m in match if m.strip()])
        except ApiError as exc:
            error = exc.message
        try:
            start, end = parse_time(since, "since"), parse_time(until, "until")
        except ApiError as exc:
            start = end = None
            error = exc.message
        found = ctx.observed.history(HistoryQuery(rules=(rule,) if rule else (),
                                                  matchers=matchers, since=start, until=end))
        episodes = [episode_out(ep) for ep in found]
        names = sorted({r.name for r in ctx.observed.snapshot().rules} | {e.rule for e in found})
        retention = format_duration(ctx.daemon.settings.notify.history_retention)
        return render(request, "alert_history.html", title="Alert history", episodes=episodes,
                      rule=rule, rule_names=names, match=[m for m in match if m.strip()],
                      since=since, until=until, error=error, retention=retention)

    def silence_form(request: Request, status_code: int = 200, *, matchers: Sequence[str],
                     fields: Mapping[str, str] | None = None, **values: Any) -> HTMLResponse:
        """Render the silence form for ``matchers`` with what they would mute now."""
        snap = ctx.observed.snapshot()
        live = [a for a in snap.alerts if a.state in (AlertState.FIRING, AlertState.PENDING)]
        preview: list[Alert] = []
        warnings: list[str] = []
        error = values.pop("error", "")
        texts = [m.strip() for m in matchers if m.strip()]
        if texts:
            try:
                parsed = parse_all(texts)
                preview = [a for a in live if matches_all(parsed, a.labels)]
                warnings = silence_warnings(parsed, [a.labels for a in live],
                                            snapshot_label_names(snap))
            except MatcherError as exc:
                error = error or f"matchers: {exc}"
        defaults = {"duration": "2h", "until": "duration", "created_by": "", "comment": "",
                    "created": None}
        return render(request, "silence_form.html", status_code, title="New silence",
                      matchers=texts, preview=preview, warnings=warnings, error=error,
                      muted=ctx.observed.suppressed(),
                      alert_names={a.fingerprint: a.rule for a in snap.alerts},
                      next_after=_period_word(latest_period(preview)),
                      **{**defaults, **(fields or {}), **values})

    @pages.get("/silences/new", response_class=HTMLResponse)
    def new_silence(request: Request, matcher: MatchParam = [],  # noqa: B006
                    matchers: str = "") -> Response:
        if (response := denied(request)) is not None:
            return response
        return silence_form(request, matchers=[*matcher, *matchers.splitlines()])

    @pages.post("/silences/new", response_class=HTMLResponse)
    async def create_silence(request: Request) -> Response:
        if (response := denied(request)) is not None:
            return response
        form = await _form(request)
        texts = [line for line in form.get("matchers", "").splitlines() if line.strip()]
        values = {k: form.get(k, "") for k in ("duration", "until", "created_by", "comment")}
        if form.get("action") != "create":
            return silence_form(request, matchers=texts, fields=values)
        refusal = ctx.write_refusal(request, form.get("token", ""))
        if refusal is not None:
            return silence_form(request, 401, matchers=texts, error=refusal, fields=values)
        try:
            spec = _silence_spec(ctx, texts, values)
            created = ctx.observed.create_silence(spec)
        except (ValueError, MatcherError) as exc:
            return silence_form(request, 400, matchers=texts, error=str(exc), fields=values)
        return silence_form(request, matchers=texts, created=created, fields=values)

    @pages.post("/silences/{silence_id}/{action}", response_class=HTMLResponse)
    async def change_silence(request: Request, silence_id: str,
                             action: Literal["expire", "extend"]) -> Response:
        if (response := denied(request)) is not None:
            return response
        form = await _form(request)
        refusal = ctx.write_refusal(request, form.get("token", ""))
        if refusal is not None:
            return silences_page(request, 401, notice=refusal, notice_error=True)
        try:
            if action == "expire":
                changed = ctx.observed.expire_silence(silence_id)
            else:
                ends = ctx.clock.now() + timedelta(
                    seconds=parse_duration(form.get("duration", "") or "1d"))
                changed = ctx.observed.extend_silence(silence_id, ends)
        except ValueError as exc:
            return silences_page(request, 400, notice=str(exc), notice_error=True)
        if changed is None:
            return silences_page(request, 404, notice=f"No silence {silence_id}.",
                                 notice_error=True)
        done = "expired" if action == "expire" else \
            f"extended to {changed.ends_at:%Y-%m-%d %H:%M} UTC"
        query = urlencode({"notice": f"Silence {silence_id} {done}."})
        return RedirectResponse(f"/silences?{query}#silence-{silence_id}", status_code=303)

    @pages.get("/rules", response_class=HTMLResponse)
    def rules(request: Request) -> Response:
        if (response := denied(request)) is not None:
            return response
        snap = ctx.observed.snapshot()
        by_group: dict[str, list[RuleHealth]] = {}
        for rule in snap.rules:
            by_group.setdefault(rule.group, []).append(rule)
        anchored: set[str] = set()
        anchors = {}  # the first rule of a name gets the /rules#rule-<name> anchor
        for rule in snap.rules:
            if rule.name not in anchored:
                anchored.add(rule.name)
                anchors[(rule.group, rule.name)] = f"rule-{rule.name}"
        return render(request, "rules.html", title="Rules", rules=snap.rules,
                      groups=[(g, by_group.get(g.name, [])) for g in snap.groups],
                      anchors=anchors, reload=ctx.observed.rule_reload(),
                      default_interval=ctx.daemon.settings.rules.evaluation_interval,
                      bad=sum(1 for r in snap.rules if r.health == "err"),
                      overrun=snap.overrun)

    @pages.get("/sources", response_class=HTMLResponse)
    def sources(request: Request) -> Response:
        if (response := denied(request)) is not None:
            return response
        found = list(ctx.observed.sources())
        return render(request, "sources.html", title="Sources", sources=found,
                      bad=sum(1 for s in found if s.health == "bad"))

    def silences_page(request: Request, status_code: int = 200, notice: str = "",
                      notice_error: bool = False) -> HTMLResponse:
        found = sorted(ctx.observed.silences(), key=lambda s: s.starts_at, reverse=True)
        by_state = {state: [s for s in found if s.state == state]
                    for state in ("active", "pending", "expired")}
        return render(request, "silences.html", status_code, title="Silences",
                      by_state=by_state, base_url=str(request.base_url).rstrip("/"),
                      notice=notice, notice_error=notice_error)

    @pages.get("/silences", response_class=HTMLResponse)
    def silences(request: Request, notice: str = "") -> Response:
        if (response := denied(request)) is not None:
            return response
        return silences_page(request, notice=notice[:300])

    @pages.get("/milestones", response_class=HTMLResponse)
    def milestones(request: Request) -> Response:
        if (response := denied(request)) is not None:
            return response
        today = ctx.evaluation_date()
        items = sorted(ctx.observed.milestones(), key=lambda m: (m.milestone.due, m.milestone.id))
        rows = [(m, m.milestone.state(today)) for m in items]
        return render(request, "milestones.html", title="Milestones", rows=rows, today=today,
                      counts=Counter(state for _, state in rows))

    return pages


def spc_legend(shown: Iterable[str]) -> list[str]:
    """Return the SPC icons a page shows, each once, in the legend's order (the known
    categories first, then any the engine published that the icons draw as "?")."""
    found = set(shown)
    return [k for k in charts.SPC_ICONS if k in found] + sorted(found - set(charts.SPC_ICONS))


def label_choices(frames: Any, limit: int = 60) -> dict[str, list[str]]:
    """Return, per label name with at most ``limit`` values overall, its sorted values.

    These become the scorecard's filter menus; names with more values are left to the
    free-text matcher.
    """
    values: dict[str, set[str]] = {}
    for frame in frames:
        for labels in frame.labels:
            for name, value in labels.items():
                bucket = values.setdefault(name, set())
                if len(bucket) <= limit:
                    bucket.add(value)
    return {name: sorted(vals) for name, vals in sorted(values.items())
            if 1 < len(vals) <= limit}


async def _form(request: Request) -> dict[str, str]:
    """Return an HTML form's fields (``application/x-www-form-urlencoded``), last value
    of each name."""
    body = (await request.body())[:100_000].decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _silence_spec(ctx: HttpContext, texts: Sequence[str], values: Mapping[str, str]
                  ) -> SilenceSpec:
    """Return the silence the form describes. Raises ValueError or MatcherError saying
    which field is wrong."""
    if not texts:
        raise ValueError("matchers: give at least one, such as alertname=\"BurglaryRising\"")
    matchers: list[Matcher] = parse_all(texts)
    now = ctx.clock.now()
    until_period = None
    if values.get("until") == "next_period":
        live = [a for a in ctx.observed.snapshot().alerts
                if a.state in (AlertState.FIRING, AlertState.PENDING)
                and matches_all(matchers, a.labels)]
        until_period = latest_period(live)
        if until_period is None:
            raise ValueError("until the next period's data: no current alert with a data "
                             "period matches these matchers; give a duration instead")
        ends = now + timedelta(days=400)
    else:
        try:
            ends = now + timedelta(seconds=parse_duration(values.get("duration") or "2h"))
        except ValueError as exc:
            raise ValueError(f"duration: {exc}") from None
    return SilenceSpec(matchers=tuple(matchers), starts_at=now, ends_at=ends,
                       created_by=values.get("created_by", ""),
                       comment=values.get("comment", ""), until_period=until_period)


def _period_word(period: str | None) -> str:
    """``2008-07`` -> ``Jul-08`` (monthly periods; others as given; empty for None)."""
    if not period:
        return ""
    try:
        when = datetime.strptime(period, "%Y-%m")
    except ValueError:
        return period
    return when.strftime("%b-%y")


def _query(params: Mapping[str, Any]) -> str:
    """Return ``?a=1&b=2`` for the non-empty parameters (lists repeat the name)."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        items = value if isinstance(value, list | tuple) else [value]
        pairs.extend((key, str(v)) for v in items if str(v).strip())
    return "?" + urlencode(pairs) if pairs else "?"
