"""What every HTTP handler shares: the daemon, the observed engine, the clock, and auth.

Also the series look-ups the API and the pages both need: filter the snapshot's series
by indicator, label matchers and status, and find one series by its fingerprint.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from fastapi import Request
from prometheus_client import CollectorRegistry

from monitor.clock import Clock
from monitor.http.observed import Observed
from monitor.matchers import known_label_names
from monitor.model import Frequency, Status, fingerprint
from monitor.rules.snapshot import IndicatorFrame, Snapshot
from monitor.settings import Settings

STATUS_BY_CODE = {s.code: s for s in Status}

# What every protected endpoint (the API's changes, /-/reload, the silence forms, and every
# read while server.protect_reads is on) says when it refuses: the same words whatever the
# endpoint, and what to do.
_HOW_TO_ENABLE = ("no API token is configured; set server.api_token (or "
                  "server.api_token_file) in the config, reload, and send it as "
                  "'Authorization: Bearer <token>'")
WRITES_DISABLED = f"changes are disabled: {_HOW_TO_ENABLE}"
READS_DISABLED = f"reads are protected (server.protect_reads is on) but {_HOW_TO_ENABLE}"
BEARER_REQUIRED = ("a valid bearer token is required: send 'Authorization: Bearer "
                   "<server.api_token>'")


class Daemon(Protocol):
    """What the HTTP layer needs from the running daemon."""

    registry: CollectorRegistry
    settings: Settings  # read at request time, so a reload applies at once

    def readiness(self) -> tuple[bool, str]:
        """Return (ready, reason)."""

    def request_reload(self) -> tuple[bool, str]:
        """Reload config and rules now; return (ok, message)."""

    def api_token(self) -> str | None:
        """Return the bearer token mutating endpoints need (None: mutations refused)."""


def token_ok(request: Request, expected: str | None) -> bool:
    """Return True when the request carries ``Authorization: Bearer <expected>``.

    The comparison is constant-time; no configured token means no request passes.
    """
    if not expected:
        return False
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), expected.encode())


@dataclass
class HttpContext:
    """The objects every handler reads."""

    daemon: Daemon
    observed: Observed
    clock: Clock

    def evaluation_date(self) -> date:
        """The day milestones are judged on: the latest evaluation's (a daemon replaying a
        past month judges its plan as of then), else today."""
        at = self.observed.snapshot().at
        return at.date() if at is not None else self.clock.now().date()

    def read_refusal(self, request: Request) -> str | None:
        """Return why a read is refused (:data:`READS_DISABLED`, :data:`BEARER_REQUIRED`), or
        None when reads are open (``server.protect_reads`` off) or the token is right."""
        if not self.daemon.settings.server.protect_reads:
            return None
        expected = self.daemon.api_token()
        if not expected:
            return READS_DISABLED
        return None if token_ok(request, expected) else BEARER_REQUIRED

    def writes_allowed(self, request: Request) -> bool:
        """Return True when the request carries the configured bearer token."""
        return token_ok(request, self.daemon.api_token())

    def write_refusal(self, request: Request, given: str | None = None) -> str | None:
        """Return why a change is refused (:data:`WRITES_DISABLED`, :data:`BEARER_REQUIRED`),
        or None when the request carries the token — in its Authorization header, or
        ``given`` (the token field of a page's form)."""
        expected = self.daemon.api_token()
        if not expected:
            return WRITES_DISABLED
        if token_ok(request, expected) or (
                given is not None and hmac.compare_digest(given.encode(), expected.encode())):
            return None
        return BEARER_REQUIRED


def snapshot_label_names(snap: Snapshot) -> set[str]:
    """Return :func:`monitor.matchers.known_label_names` of the published alerts and
    series."""
    return known_label_names((a.labels for a in snap.alerts),
                             (labels for frame in snap.frames.values()
                              for labels in frame.labels))


@dataclass(frozen=True)
class SeriesRef:
    """One series of a snapshot: the frame it lives in and its index there."""

    frame: IndicatorFrame
    index: int

    @property
    def labels(self) -> dict[str, str]:
        return self.frame.labels[self.index]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def status(self) -> Status:
        return STATUS_BY_CODE.get(int(self.frame.status[self.index]), Status.NO_DATA)

    @property
    def period(self) -> int:
        return int(self.frame.period[self.index])

    @property
    def period_label(self) -> str | None:
        return period_label(self.frame.info.frequency, self.period)

    @property
    def value(self) -> float | None:
        return finite(self.frame.value[self.index])

    @property
    def target(self) -> float | None:
        return finite(self.frame.target[self.index])

    @property
    def provisional(self) -> bool:
        flags = self.frame.provisional
        return bool(flags[self.index]) if flags is not None else False

    @property
    def spc_icon(self) -> str | None:
        icons = self.frame.spc
        return str(icons[self.index]) if icons is not None else None

    def changes(self) -> dict[str, float | None]:
        return {window: finite(ratios[self.index])
                for window, ratios in self.frame.changes.items()}


def finite(value: float) -> float | None:
    """Return ``value`` as a float, or None when it is NaN or infinite (JSON has neither)."""
    number = float(value)
    return number if math.isfinite(number) else None


def period_label(frequency: str, period: int) -> str | None:
    """Return ``2008-07`` for a period ordinal, None for -1 (no data) or a bad frequency."""
    if period < 0:
        return None
    try:
        return Frequency(frequency).label(period)
    except ValueError:
        return None


def select_series(snap: Snapshot, *, indicators: Iterable[str] = (),
                  match: Callable[[Mapping[str, str]], bool] | None = None,
                  statuses: Iterable[Status] = ()) -> Iterator[SeriesRef]:
    """Yield the snapshot's series, in frame order, that pass every given filter.

    ``indicators`` and ``statuses`` keep series whose indicator or status is among them
    (empty: no filter); ``match`` is a label predicate from ``compile_matchers``.
    """
    wanted = set(indicators)
    codes = {s.code for s in statuses}
    for frame_id, frame in snap.frames.items():
        if wanted and frame_id not in wanted:
            continue
        status = frame.status.tolist()
        for i, labels in enumerate(frame.labels):
            if codes and status[i] not in codes:
                continue
            if match is not None and not match(labels):
                continue
            yield SeriesRef(frame, i)


def find_series(snap: Snapshot, indicator: str, series_fingerprint: str) -> SeriesRef | None:
    """Return the series of ``indicator`` whose label fingerprint is ``series_fingerprint``."""
    frame = snap.frames.get(indicator)
    if frame is None:
        return None
    for i, labels in enumerate(frame.labels):
        if fingerprint(labels) == series_fingerprint:
            return SeriesRef(frame, i)
    return None
