"""The source plugin contract: ``fetch`` does the I/O, ``parse`` is a pure function.

A poll is a pipeline of small stages (see ``poller.py``)::

    fetch(previous validators) -> Payload        I/O: HTTP, files, SQL
    parse(Payload)             -> Parsed         pure: observations + row problems
    finish(Parsed)                               pure: duplicates rejected, provisional rule
    store                                        one transaction

``fetch`` raises :class:`~monitor.errors.FetchError` when the data cannot be had and
returns a payload marked ``unchanged`` when the validators say nothing changed.
``parse`` raises :class:`~monitor.errors.PayloadError` when the payload as a whole cannot be
used (HTML instead of JSON, a truncated body, a header without a mapped column) and
returns a :class:`~monitor.model.RowProblem` for each row it rejects.

Every kind's config model builds on :class:`SourceBase` (name, schedule, what the
digest covers) and, for files, :class:`FileOrUrl`; both live here with the contract.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, field_validator, model_validator

from monitor.clock import Clock, SystemClock
from monitor.configtypes import Duration, Section
from monitor.errors import FetchError
from monitor.model import Milestone, Observation, RowProblem
from monitor.sources.http import HttpFetcher, HttpOptions
from monitor.store.batch import ObservationBatch
from monitor.store.sourcestate import Validators

SourceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]
IndicatorId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,200}$")]
LabelName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")]

DEFAULT_INTERVAL = 3600.0


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


ConfigT = TypeVar("ConfigT", bound=SourceBase)


@dataclass(frozen=True)
class Payload:
    """What one fetch returned: raw bytes, or already-structured data (SQL rows, crimes)."""

    origin: str  # the URL, file path or database the payload came from, for messages
    body: bytes = b""
    data: Any = None
    content_type: str = ""
    validators: Validators = field(default_factory=Validators)
    unchanged: bool = False


class Parsed:
    """What parsing a payload produced. ``rows`` counts the input rows that were read.

    The observations are kept as a list (kinds that read record by record) or as an
    :class:`ObservationBatch` (columns, the CSV wide layout); each form is derived from
    the other on first use. The poller and the store use :attr:`batch`.
    """

    def __init__(self, observations: list[Observation] | None = None,
                 problems: list[RowProblem] | None = None,
                 milestones: list[Milestone] | None = None, rows: int = 0, skipped: int = 0,
                 *, batch: ObservationBatch | None = None) -> None:
        self._observations = observations
        self._batch = batch
        self.problems: list[RowProblem] = problems if problems is not None else []
        self.milestones = milestones  # None: this source has no milestones
        self.rows = rows
        self.skipped = skipped  # rows left out on purpose (unmapped = "skip", null markers)

    @property
    def observations(self) -> list[Observation]:
        """Return the observations, one object each (built from the batch when needed)."""
        if self._observations is None:
            self._observations = self.batch.observations() if self._batch is not None else []
        return self._observations

    @property
    def batch(self) -> ObservationBatch:
        """Return the observations as columns (built from the list when needed)."""
        if self._batch is None:
            self._batch = ObservationBatch.of(self._observations or [])
        return self._batch

    @batch.setter
    def batch(self, batch: ObservationBatch) -> None:
        self._batch, self._observations = batch, None

    def __eq__(self, other: object) -> bool:
        """Equal when both read the same observations, problems, milestones and counts."""
        if not isinstance(other, Parsed):
            return NotImplemented
        return (self.observations, self.problems, self.milestones, self.rows, self.skipped) \
            == (other.observations, other.problems, other.milestones, other.rows, other.skipped)

    def __repr__(self) -> str:
        return (f"Parsed({self.count():,} observations, {len(self.problems):,} problems, "
                f"rows={self.rows:,}, skipped={self.skipped:,})")

    def count(self) -> int:
        """Return how many observations were read (without building either form)."""
        if self._batch is not None:
            return len(self._batch)
        return len(self._observations or [])


@dataclass(frozen=True)
class SourceDeps:
    """What a source needs from outside: the clock, sleeping and randomness (for jitter)."""

    clock: Clock = field(default_factory=SystemClock)
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)


def body_hash(digest: str, body: bytes) -> str:
    """Return the content hash recorded for ``body`` fetched under config ``digest``."""
    return hashlib.sha256(digest.encode() + b"\0" + body).hexdigest()


class Source(ABC, Generic[ConfigT]):
    """One configured data source of one kind. Subclasses set ``kind`` and ``config_type``."""

    kind: ClassVar[str]
    config_type: ClassVar[type[SourceBase]]

    def __init__(self, config: ConfigT, deps: SourceDeps | None = None) -> None:
        self.config = config
        self.deps = deps or SourceDeps()
        self.digest = config.digest()

    @property
    def name(self) -> str:
        return self.config.name

    @abstractmethod
    def fetch(self, previous: Validators) -> Payload:
        """Return the current payload, or one marked ``unchanged`` per ``previous``.

        Raises FetchError (transport, HTTP status) or PayloadError (body unusable).
        """

    @abstractmethod
    def parse(self, payload: Payload) -> Parsed:
        """Return the observations (or milestones) in ``payload`` and the rows rejected.

        Pure: no I/O, no clock. Raises PayloadError when the payload as a whole is unusable.
        """

    def close(self) -> None:
        """Release what the source holds between polls (database pools); a no-op by default."""

    def load_file(self, path: Path) -> Payload:
        """Return a payload read from a local file, for ``monitor ingest`` backfills.

        Raises FetchError when the file cannot be read.
        """
        return read_file_payload(self.name, path)

    def http(self) -> HttpFetcher:
        """Return an HTTP fetcher configured from this source's HTTP options."""
        assert isinstance(self.config, HttpOptions)
        return HttpFetcher(self.config, source=self.name, sleep=self.deps.sleep,
                           rng=self.deps.rng, now=self.deps.clock.now)

    def fetch_file_or_url(self, previous: Validators, accept: str) -> Payload:
        """Fetch ``path`` or ``url`` of a file-shaped source, conditionally.

        Returns a payload marked unchanged on 304, or when the body hashes as last time.
        """
        config = self.config
        assert isinstance(config, FileOrUrl)
        previous = previous.for_config(self.digest)
        if config.path is not None:
            payload = read_file_payload(self.name, Path(config.path))
        else:
            assert config.url is not None
            with self.http() as http:
                response = http.get(config.url, validators=previous, accept=accept)
            if response.not_modified:
                return Payload(origin=config.url, validators=previous, unchanged=True)
            payload = Payload(origin=config.url, body=response.body,
                              content_type=response.content_type,
                              validators=replace(response.validators,
                                                 config_digest=self.digest))
        hashed = body_hash(self.digest, payload.body)
        validators = replace(payload.validators, content_hash=hashed, config_digest=self.digest)
        return replace(payload, validators=validators,
                       unchanged=bool(previous.content_hash) and previous.content_hash == hashed)


def read_file_payload(source: str, path: Path) -> Payload:
    """Return the bytes of a local file as a payload.

    Raises FetchError naming the source and the path when the file cannot be read.
    """
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise FetchError(f"source {source!r}: cannot read {path}: {exc.strerror}; check the "
                         "path (relative paths start at the daemon's working directory)",
                         retryable=False) from None
    return Payload(origin=str(path), body=body)
