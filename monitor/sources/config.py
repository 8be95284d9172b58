"""Configuration schema of data sources (``[[sources]]`` in the config file).

Owned by the sources subsystem; ``settings.py`` composes it into the whole config.
``SourceConfig`` is a union discriminated by ``kind``: one model per source kind, built
from three mixins — the schedule every source has (:class:`SourceBase`), HTTP options for
sources fetched over the network (:class:`HttpOptions`) and the mapping of rows to
indicator series (:class:`MappingOptions`). ``docs/sources.md`` documents every key.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.configtypes import Duration, Section
from monitor.model import Frequency

SourceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]
IndicatorId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,200}$")]
LabelName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")]

DEFAULT_INTERVAL = 3600.0
MIB = 1024 * 1024


class SourceBase(Section):
    """Settings every source kind has: a name and a schedule."""

    name: SourceName
    kind: str
    interval: Duration | None = None
    cron: str | None = None
    jitter: Duration = 0.0
    enabled: bool = True
    static_labels: dict[LabelName, str] = Field(default_factory=dict)
    provisional_last: int = Field(default=0, ge=0, le=120)
    max_reject_ratio: float = Field(default=0.5, ge=0.0, le=1.0)
    empty_payloads: int = Field(default=3, ge=0)  # in a row before each counts as failed

    @field_validator("cron")
    @classmethod
    def _cron_fields(cls, value: str | None) -> str | None:
        if value is not None:
            cron_trigger(value)
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> SourceBase:
        if self.interval is not None and self.cron is not None:
            raise ValueError("give either interval or cron, not both")
        if self.interval is not None and self.interval <= 0:
            raise ValueError("interval must be longer than 0s")
        return self

    @property
    def every(self) -> float:
        """Seconds between polls for interval schedules (the default when neither is set)."""
        return self.interval if self.interval is not None else DEFAULT_INTERVAL

    def digest(self) -> str:
        """Return a hash of everything that changes how a payload becomes observations.

        Validators and body hashes taken under another digest are ignored, so editing the
        mapping re-reads unchanged data. Schedules and secrets are left out.
        """
        data = self.model_dump(mode="json", exclude={"interval", "cron", "jitter",
                                                      "enabled", "max_reject_ratio",
                                                      "empty_payloads"})
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()
                              ).hexdigest()[:32]


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_trigger(expr: str, jitter: float = 0.0) -> CronTrigger:
    """Return the UTC trigger of a five-field cron expression (weekday 0 and 7 = Sunday).

    Raises ValueError with the expected form when ``expr`` is not one.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"{expr!r} is not a cron expression; write five fields, "
                         "minute hour day month weekday, like \"0 6 * * *\"")
    minute, hour, day, month, weekday = fields
    # APScheduler numbers weekdays from Monday = 0; cron from Sunday = 0.
    weekday = re.sub(r"\d+", lambda m: _WEEKDAYS[int(m.group())] if int(m.group()) < 8
                     else m.group(), weekday)
    try:
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=weekday, timezone="UTC", jitter=round(jitter) or None)
    except ValueError as exc:
        raise ValueError(f"{expr!r} is not a valid cron expression: {exc}") from None


class BearerAuth(Section):
    """``Authorization: Bearer <token>``."""

    type: Literal["bearer"]
    token: SecretStr


class BasicAuth(Section):
    """HTTP basic authentication."""

    type: Literal["basic"]
    username: str
    password: SecretStr


class HeaderAuth(Section):
    """A secret sent in a header of your choice, e.g. ``X-API-Key``."""

    type: Literal["header"]
    header: str = Field(pattern=r"^[A-Za-z0-9-]{1,100}$")
    value: SecretStr


Auth = Annotated[BearerAuth | BasicAuth | HeaderAuth, Field(discriminator="type")]


class HttpOptions(Section):
    """How a source is fetched over HTTP(S)."""

    timeout: Duration = 30.0
    retries: int = Field(default=3, ge=0, le=10)
    backoff: Duration = 1.0
    max_backoff: Duration = 60.0
    max_retry_after: Duration = 300.0
    max_bytes: int = Field(default=100 * MIB, ge=1024)
    verify_tls: bool = True
    ca_bundle: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    auth: Auth | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    user_agent: str = "kpi-monitor"


class MappingOptions(Section):
    """How rows (CSV lines, JSON records, SQL rows) become observations of indicators.

    ``*_column`` names are CSV header names, SQL result columns, or dotted field paths
    into JSON records (``attributes.period``; ``items.0.value`` indexes a list).
    """

    indicator: IndicatorId | None = None
    indicator_column: str | None = None
    indicators: dict[str, IndicatorId] = Field(default_factory=dict)
    unmapped: Literal["skip", "reject"] = "reject"
    labels: dict[LabelName, str] = Field(default_factory=dict)
    frequency: Frequency = Frequency.MONTHLY
    period_column: str = "period"
    period_format: str | None = None
    value_column: str = "value"
    denominator_column: str | None = None
    provisional_column: str | None = None
    allow_negative: bool = False
    null_values: list[str] = Field(default_factory=list)
    thousands_separator: str = ""
    # Rows giving the same series and period: "reject" all of them (the default: neither
    # can be trusted), or "sum" them (several categories mapped to one indicator).
    duplicates: Literal["reject", "sum"] = "reject"

    @field_validator("period_format")
    @classmethod
    def _strptime_format(cls, value: str | None) -> str | None:
        if value is not None and "%" not in value:
            raise ValueError(f"{value!r} is not a strptime format; write it like %Y%m, "
                             "%Y-%m or %d/%m/%Y")
        return value

    @model_validator(mode="after")
    def _one_indicator(self) -> MappingOptions:
        if (self.indicator is None) == (self.indicator_column is None):
            raise ValueError("give exactly one of indicator (a fixed id) or indicator_column "
                             "(a column whose values name the indicator)")
        if self.indicators and self.indicator_column is None:
            raise ValueError("indicators maps the values of indicator_column; set "
                             "indicator_column too")
        return self


class FileOrUrl(Section):
    """Where a file-shaped payload comes from: a local path or an HTTP(S) URL."""

    path: str | None = None
    url: str | None = None

    @model_validator(mode="after")
    def _one_location(self) -> FileOrUrl:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of path (a local file) or url (http or https)")
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        return self


class CsvSource(SourceBase, FileOrUrl, HttpOptions, MappingOptions):
    """A CSV table: *long* (one row per period) or *wide* (one column per period)."""

    kind: Literal["csv"]
    layout: Literal["long", "wide"] = "long"
    period_columns: str = r"^\d{6}$"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"
    header_row: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _wide_has_no_denominator(self) -> CsvSource:
        if self.layout == "wide" and self.denominator_column:
            raise ValueError("a wide table has one value per cell; denominator_column works "
                             "with layout = \"long\" only")
        return self

    @field_validator("period_columns")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"period_columns {value!r} is not a regular expression: {exc}"
                             ) from None
        return value


class JsonSource(SourceBase, FileOrUrl, HttpOptions, MappingOptions):
    """A JSON document whose records are found at ``records`` (a dotted path)."""

    kind: Literal["json"]
    records: str = ""


class SqlSource(SourceBase, MappingOptions):
    """A query against any SQLAlchemy database URL, returning one row per observation."""

    kind: Literal["sql"]
    url: SecretStr
    query: str
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    timeout: Duration = 60.0


class PrometheusSource(SourceBase, HttpOptions):
    """An instant or range query against a Prometheus HTTP API."""

    kind: Literal["prometheus"]
    url: str
    query: str
    mode: Literal["instant", "range"] = "instant"
    lookback: Duration = 90 * 86400.0
    step: Duration = 86400.0
    aggregate: Literal["last", "sum", "mean", "max", "min"] = "last"
    indicator: IndicatorId | None = None
    indicator_label: str | None = None
    indicators: dict[str, IndicatorId] = Field(default_factory=dict)
    unmapped: Literal["skip", "reject"] = "reject"
    labels: dict[LabelName, str] = Field(default_factory=dict)
    frequency: Frequency = Frequency.MONTHLY
    allow_negative: bool = True

    @model_validator(mode="after")
    def _checks(self) -> PrometheusSource:
        if not re.match(r"^https?://", self.url):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        if (self.indicator is None) == (self.indicator_label is None):
            raise ValueError("give exactly one of indicator (a fixed id) or indicator_label "
                             "(a metric label whose value names the indicator)")
        return self


class PoliceUkSource(SourceBase, HttpOptions):
    """Street-level crime from data.police.uk, counted per month and category."""

    kind: Literal["police_uk"]
    base_url: str = "https://data.police.uk/api"
    force: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,100}$")
    poly: str | None = None
    categories: list[str] = Field(default_factory=lambda: ["all-crime"])
    indicator: IndicatorId = "street_crime"
    indicators: dict[str, IndicatorId] = Field(default_factory=dict)
    unmapped: Literal["skip", "reject"] = "skip"
    months: int = Field(default=12, ge=1, le=60)
    rate_limit: float = Field(default=15.0, gt=0.0, le=100.0)
    burst: int = Field(default=15, ge=1, le=100)
    max_depth: int = Field(default=6, ge=0, le=12)
    include_no_location: bool = True

    @model_validator(mode="after")
    def _area(self) -> PoliceUkSource:
        if (self.force is None) == (self.poly is None):
            raise ValueError("give exactly one of force (e.g. \"metropolitan\") or poly "
                             "(\"lat,lng:lat,lng:…\")")
        if self.poly is not None:
            from monitor.sources.police_uk import parse_poly

            parse_poly(self.poly)
        if not re.match(r"^https?://", self.base_url):
            raise ValueError(f"base_url {self.base_url!r} must start with http:// or https://")
        return self


class MilestonesSource(SourceBase, FileOrUrl, HttpOptions):
    """A plan of milestones (id, title, owner, due, status, completed) in CSV, YAML or JSON."""

    kind: Literal["milestones"]
    format: Literal["auto", "csv", "yaml", "json"] = "auto"
    key: str = "milestones"
    encoding: str = "utf-8-sig"


SourceConfig = Annotated[
    CsvSource | JsonSource | SqlSource | PrometheusSource | PoliceUkSource | MilestonesSource,
    Field(discriminator="kind"),
]
"""One ``[[sources]]`` table, validated by the model its ``kind`` names."""

KINDS: tuple[str, ...] = ("csv", "json", "sql", "prometheus", "police_uk", "milestones")


def check_unique_names(configs: list[Any]) -> list[str]:
    """Return one message per source name used more than once (empty when all are unique)."""
    seen: dict[str, int] = {}
    for config in configs:
        seen[config.name] = seen.get(config.name, 0) + 1
    return [f"source name {name!r} is used by {count} sources; names must be unique"
            for name, count in sorted(seen.items()) if count > 1]
