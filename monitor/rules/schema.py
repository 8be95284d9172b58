"""The rule-file format: indicators, derived indicators, peer groups and alerting rules.

A rule file is YAML with up to three top-level keys::

    indicators:   [ {id, name, reference, unit, direction, frequency, targets, …} ]
    peer_groups:  [ {id, label, members} ]
    groups:       [ {name, interval, rules: [ {alert, indicator, when, for, …} ]} ]

Conditions (``when``) are a mapping with exactly one key naming the kind — ``level``,
``change``, ``trend``, ``spc``, ``significance``, ``forecast``, ``peers``, ``milestones``,
``data`` — or a composite ``all`` / ``any`` / ``not``. ``docs/rules.md`` documents each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from monitor.alerts.policy import Flapping, ForSpec
from monitor.configtypes import Duration, parse_duration

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)]
FY_KEY = re.compile(r"^(\d{4})(?:/(\d{2}))?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class RankWindow:
    """The periods a rank in a peer group is taken over.

    Written in a rule file as ``last 3 months`` (the latest N months), ``rolling_year``
    (the 12 months to the latest month), ``financial_year`` (the last complete financial
    year), ``calendar_year`` (the last complete calendar year) or, for the ``peers``
    condition only, ``headline`` (the indicator's own headline window). A level is ranked
    on its value over the window; a change on the window against the same months a year
    earlier.
    """

    kind: Literal["headline", "last_months", "rolling_year", "financial_year",
                  "calendar_year"]
    months: int = 0  # for last_months

    KINDS = ("rolling_year", "financial_year", "calendar_year", "headline")

    @classmethod
    def parse(cls, value: Any) -> RankWindow:
        """Return the window written as ``value``. Raises ValueError naming the forms."""
        if isinstance(value, RankWindow):
            return value
        text = str(value).strip()
        if text in cls.KINDS:
            return cls(text)  # type: ignore[arg-type]
        match = re.fullmatch(r"last\s+(\d+)\s+months?", text)
        if match and 1 <= int(match.group(1)) <= 60:
            return cls("last_months", int(match.group(1)))
        raise ValueError(f"unknown rank window {text!r}{suggest(text, list(cls.KINDS))}; write "
                         "last N months (1-60), rolling_year, financial_year or calendar_year")

    def __str__(self) -> str:
        if self.kind == "last_months":
            return f"last {self.months} month{'s' if self.months != 1 else ''}"
        return self.kind


RankOver = Annotated[RankWindow, BeforeValidator(RankWindow.parse), PlainSerializer(str)]


class Target(Strict):
    """A target for one financial year.

    ``kind``: ``level`` (the headline value should reach ``value``), ``change_pct`` /
    ``change_pp`` / ``change_count`` (the change of the headline window against the
    previous one should reach ``value``), or ``none`` (a baseline year: report, never judge).
    """

    kind: Literal["level", "change_pct", "change_pp", "change_count", "none"] = "level"
    value: float | None = None
    amber: float | None = None  # tolerance in the headline's unit; overrides the indicator's
    text: str | None = None  # how the scorecard prints it, e.g. "Reduce gap to 3.8pp"
    note: str = ""  # why the year's target is what it is; the comment adds it

    @model_validator(mode="after")
    def _value_unless_none(self) -> Target:
        if self.kind != "none" and self.value is None:
            raise ValueError(f"a {self.kind} target needs a value")
        return self


class Derived(Strict):
    """How a derived indicator is computed from others, matching series on ``on`` labels.

    Exactly one of: ``sum`` (list of indicators), ``difference`` ([a, b]: a − b),
    ``ratio`` ({numerator, denominator}: a proportion, shown ×100 for percent units),
    ``total`` (one indicator's series added up, grouped by the ``by`` labels: London-wide
    from boroughs; numerators and denominators add separately, so a rate stays a rate).
    """

    sum: list[Name] | None = None
    difference: list[Name] | None = None
    ratio: dict[Literal["numerator", "denominator"], Name] | None = None
    total: Name | None = None  # the sum of one indicator's series, grouped by `by`
    by: list[str] = Field(default_factory=list)  # for total: labels kept (none: one total)
    on: list[str] | None = None  # labels to match on; default: the labels inputs share

    @model_validator(mode="after")
    def _one_operation(self) -> Derived:
        given = [k for k in ("sum", "difference", "ratio", "total")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of sum, difference, ratio or total")
        if self.difference is not None and len(self.difference) != 2:
            raise ValueError("difference takes exactly two indicators: [a, b] for a − b")
        if self.ratio is not None and set(self.ratio) != {"numerator", "denominator"}:
            raise ValueError("ratio needs both numerator and denominator")
        if self.sum is not None and len(self.sum) < 2:
            raise ValueError("sum needs at least two indicators")
        return self

    @property
    def inputs(self) -> list[str]:
        if self.sum is not None:
            return list(self.sum)
        if self.difference is not None:
            return list(self.difference)
        if self.total is not None:
            return [self.total]
        assert self.ratio is not None
        return [self.ratio["numerator"], self.ratio["denominator"]]


class SpcOptions(Strict):
    baseline_from: str | None = None  # first period of a frozen baseline, e.g. 2006-04
    baseline_to: str | None = None  # last period of a frozen baseline
    rebase: list[str] = Field(default_factory=list)  # periods where a new baseline starts
    run_length: int = Field(default=7, ge=5, le=12)
    trend_length: int = Field(default=7, ge=5, le=12)
    # The comment says the period values vary considerably when the process limits lie at
    # least this share of the mean either side of it (0.4: ±40%); None never says it.
    considerable_variation: float | None = Field(default=None, gt=0)


class Rank(Strict):
    """The ranks an indicator's scorecard comment gives in its peer group.

    ``over``: the window of the indicator's own rank (see :class:`RankWindow`); none, no
    rank of its own. ``parts``: indicators whose ranks the row carries too, each over its
    own ``rank.over`` (a combined row ranked by its parts, as SPI 6.1 and 6.4).
    """

    over: RankOver | None = None
    parts: list[Name] = Field(default_factory=list)


class Indicator(Strict):
    """One performance indicator: what it measures and what good looks like."""

    id: Name
    name: str
    reference: str = ""
    group: str = ""  # scorecard heading, e.g. "Tackle serious acquisitive crime"
    description: str = ""
    unit: Literal["percent", "pp", "count", "rate_per_1000", "ratio", "currency", "number"] \
        = "count"
    direction: Literal["up", "down", "neutral"] = "neutral"
    frequency: Literal["monthly", "quarterly", "weekly", "annual"] = "monthly"
    aggregation: Literal["sum", "mean", "last", "rate"] = "sum"
    window: int = Field(default=12, ge=1, le=120)  # periods in the headline window
    window_text: str | None = None  # e.g. "April-July 2008" style override
    headline: Literal["level", "change_pct", "change_pp", "change_count"] | None = None
    year_to_date: bool = False  # headline window is the financial year to date
    fy_start_month: int = Field(default=4, ge=1, le=12)
    targets: dict[str, Target] = Field(default_factory=dict)  # "2008/09" -> Target
    amber: float = 0.0  # tolerance in the headline's unit before red
    parent: Name | None = None
    peer_group: Name | None = None
    derived: Derived | None = None
    lag: int = Field(default=1, ge=0, le=24)  # periods of publication lag before stale
    provisional_periods: int = Field(default=0, ge=0)
    spc: SpcOptions = Field(default_factory=SpcOptions)
    labels: dict[str, str] = Field(default_factory=dict)  # static labels on its alerts
    precision: int = Field(default=1, ge=0, le=6)
    scorecard: bool | None = None  # show on the scorecard (default: has a reference or target)
    rank: Rank = Field(default_factory=Rank)  # ranks in the peer group the comment gives
    note: str = ""  # what the figure reflects (a definition note); the comment adds it
    companions: list[Name] = Field(default_factory=list)  # changes given alongside its own
    compare_with: Literal["financial_year"] | None = None  # the last complete FY, in words

    @model_validator(mode="after")
    def _rank_needs_a_group(self) -> Indicator:
        over = self.rank.over
        if over is not None and not self.peer_group:
            raise ValueError("rank.over needs a peer_group to rank the indicator in")
        if over is not None and over.kind == "last_months" and self.frequency != "monthly":
            raise ValueError(f'rank.over "{over}" needs a monthly indicator; use '
                             "rolling_year, financial_year or calendar_year")
        return self

    @field_validator("targets")
    @classmethod
    def _fy_keys(cls, value: dict[str, Target]) -> dict[str, Target]:
        for key in value:
            if not FY_KEY.match(str(key)):
                raise ValueError(f"target year {key!r} must be a financial year like 2008/09")
        return value

    def target_for(self, fy: int) -> Target | None:
        """Return the target of financial year ``fy`` (its starting calendar year)."""
        return self.targets_by_year.get(fy)

    @cached_property
    def targets_by_year(self) -> dict[int, Target]:
        """Each target by its financial year's starting calendar year, made once: the
        scorecard asks for a target several times a row."""
        out: dict[int, Target] = {}
        for key, target in self.targets.items():
            match = FY_KEY.match(key)
            if match:
                out.setdefault(int(match.group(1)), target)
        return out

    @property
    def headline_kind(self) -> str:
        if self.headline is not None:
            return self.headline
        for target in self.targets.values():
            if target.kind in ("change_pct", "change_pp", "change_count"):
                return target.kind
        return "level"


class PeerGroup(Strict):
    """A Most Similar Family: the series of an indicator whose ``label`` is in ``members``."""

    id: Name
    label: str = "force"
    members: list[str]
    subject: str | None = None  # the member the scorecard speaks for, e.g. the MPS
    name: str = "peer group"  # what comments call it: "ranked 2nd of 8 in its <name>"


# --- conditions ----------------------------------------------------------------------


class Level(Strict):
    indicator: Name | None = None
    above: float | None = None
    below: float | None = None
    clear_above: float | None = None  # hysteresis: stays active until the value is below
    clear_below: float | None = None
    worse_than_target: bool = False
    status: list[Literal["red", "amber", "green", "baseline", "not_rated", "no_data"]] | None \
        = None

    @model_validator(mode="after")
    def _something(self) -> Level:
        if self.above is None and self.below is None and not self.worse_than_target \
                and not self.status:
            raise ValueError("level needs above, below, worse_than_target or status")
        return self


class Change(Strict):
    indicator: Name | None = None
    window: int | None = Field(default=None, ge=1, le=120)  # default: the indicator's
    compare: Literal["previous", "last_year", "year_to_date"] = "previous"
    measure: Literal["pct", "pp", "count"] = "pct"
    above: float | None = None
    below: float | None = None
    worse: bool = False  # any change in the bad direction
    better: bool = False

    @model_validator(mode="after")
    def _something(self) -> Change:
        if self.above is None and self.below is None and not self.worse and not self.better:
            raise ValueError("change needs above, below, worse or better")
        return self


class Trend(Strict):
    indicator: Name | None = None
    test: Literal["consecutive", "mann_kendall", "seasonal_mann_kendall", "slope"] = \
        "mann_kendall"
    direction: Literal["rising", "falling", "worsening", "improving", "any"] = "worsening"
    periods: int = Field(default=36, ge=3, le=240)
    run: int = Field(default=6, ge=2, le=60)  # for consecutive
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_slope: float = 0.0  # for slope: absolute slope per period


SpcRule = Literal[1, 2, 3, 4]
ALL_SPC_RULES: tuple[SpcRule, ...] = (1, 2, 3, 4)


class Spc(Strict):
    indicator: Name | None = None
    signal: Literal["concern", "improvement", "any"] = "concern"
    rules: list[SpcRule] = Field(default_factory=lambda: list(ALL_SPC_RULES))
    last: int = Field(default=1, ge=1, le=24)  # a signal within the last N points
    assurance: Literal["fail", "hit_and_miss", "pass"] | None = None


class Significance(Strict):
    indicator: Name | None = None
    test: Literal["poisson", "wilson"] = "poisson"
    window: int | None = Field(default=None, ge=1, le=120)
    compare: Literal["previous", "last_year"] = "previous"
    alpha: float = Field(default=0.05, gt=0, lt=1)
    direction: Literal["worse", "better", "any"] = "worse"


class Forecast(Strict):
    indicator: Name | None = None
    misses_target: bool = True
    by: float = 0.0  # only when the projected miss exceeds this, in the headline's unit


class Peers(Strict):
    indicator: Name | None = None
    rank: Literal["last", "bottom_half"] | int | None = None  # int: ranked at or below
    from_mean: float | None = None  # worse than the group mean by this much
    over: RankOver = RankWindow("headline")  # the window ranked (see RankWindow)


class Milestones(Strict):
    source: str | None = None
    state: Literal["overdue", "due_soon", "done_late"] = "overdue"
    within: Duration = 30 * 86400.0  # for due_soon


class Data(Strict):
    indicator: Name | None = None
    stale: bool = False
    revised_by: float | None = None  # % change of a past value
    provisional: bool = False

    @model_validator(mode="after")
    def _something(self) -> Data:
        if not self.stale and self.revised_by is None and not self.provisional:
            raise ValueError("data needs stale, revised_by or provisional")
        return self


LEAVES: dict[str, type[Strict]] = {
    "level": Level, "change": Change, "trend": Trend, "spc": Spc,
    "significance": Significance, "forecast": Forecast, "peers": Peers,
    "milestones": Milestones, "data": Data,
}


class Condition(BaseModel):
    """A condition: one leaf kind, or ``all`` / ``any`` / ``not`` of conditions."""

    model_config = ConfigDict(frozen=True)

    kind: str
    leaf: Strict | None = None
    children: tuple[Condition, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, Condition):
            return data
        if not isinstance(data, dict) or len(data) != 1:
            kinds = ", ".join([*LEAVES, "all", "any", "not"])
            raise ValueError(f"a condition is a mapping with exactly one key: one of {kinds}")
        ((kind, body),) = data.items()
        if kind in ("all", "any"):
            if not isinstance(body, list) or not body:
                raise ValueError(f"{kind} takes a non-empty list of conditions")
            return {"kind": kind, "children": body}
        if kind == "not":
            return {"kind": "not", "children": [body]}
        if kind not in LEAVES:
            raise ValueError(f"unknown condition {kind!r}"
                             f"{suggest(kind, [*LEAVES, 'all', 'any', 'not'])}")
        return {"kind": kind, "leaf": LEAVES[kind].model_validate(body or {})}

    def leaves(self) -> list[Strict]:
        if self.leaf is not None:
            return [self.leaf]
        return [leaf for child in self.children for leaf in child.leaves()]


def parse_for(value: Any) -> ForSpec:
    """``"30m"`` → seconds; ``"3 evaluations"``; ``"2 periods"``/``"2 months"``; a number
    is seconds. Raises ValueError naming the accepted forms."""
    if value is None or value == 0:
        return ForSpec()
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*(evaluations?|periods?|months?|quarters?|weeks?|years?)"
                             r"\s*", value)
        if match:
            count = int(match.group(1))
            if match.group(2).startswith("evaluation"):
                return ForSpec(evaluations=count)
            return ForSpec(periods=count)
    try:
        return ForSpec(seconds=parse_duration(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a wait; write a duration (30m), "
                         "'3 evaluations' or '2 periods'") from None


class Rule(Strict):
    """An alerting rule: one alert per series of ``indicator`` for which ``when`` holds."""

    alert: Name
    indicator: Name | None = None  # whose series the alerts are per; milestone rules omit it
    when: Condition
    for_: Annotated[ForSpec, Field(alias="for")] = Field(default_factory=ForSpec)
    keep_firing_for: Duration = 0.0
    severity: Literal["critical", "warning", "info"] = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    no_data: Literal["ok", "alerting", "keep_state"] = "ok"
    on_error: Literal["keep_state", "alerting", "ok"] = "keep_state"
    flapping: Flapping | None = None
    on: list[str] | None = None  # labels that align other indicators' series to these
    match: dict[str, str] = Field(default_factory=dict)  # only series with these labels

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("for_", mode="before")
    @classmethod
    def _for(cls, value: Any) -> Any:
        return value if isinstance(value, ForSpec) else parse_for(value)


class Group(Strict):
    name: str = Field(min_length=1, max_length=200)
    interval: Duration | None = None
    rules: list[Rule] = Field(default_factory=list)


class RuleFile(Strict):
    indicators: list[Indicator] = Field(default_factory=list)
    peer_groups: list[PeerGroup] = Field(default_factory=list)
    groups: list[Group | None] = Field(default_factory=list)  # None: reported invalid


def suggest(word: str, choices: list[str]) -> str:
    """Return ``' (did you mean "x"?)'`` for the closest choice, or ``''``."""
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
