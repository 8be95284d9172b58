"""The values the notifier moves around: an alert as notified, and one notification.

A :class:`Notification` is what the pipeline commits to the outbox (as JSON) and what
a channel renders at send time. Everything in it is plain data, so a notification
survives a restart and renders the same on any replica.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from monitor.model import AlertEvent, utc

FIRING = "firing"
RESOLVED = "resolved"


@lru_cache(maxsize=4096)
def _iso(value: datetime) -> str:
    return utc(value).isoformat()


@lru_cache(maxsize=4096)
def _parsed(value: str) -> datetime:
    return utc(datetime.fromisoformat(value))


# A message of 100,000 alerts holds a handful of distinct instants (the cycles that made
# them fire): each is formatted and parsed once (datetimes are immutable).
def _time(value: datetime | None) -> str | None:
    return _iso(value) if value is not None else None


def _parse_time(value: str | None) -> datetime | None:
    return _parsed(value) if value else None


@dataclass(slots=True)
class NotifyAlert:
    """One alert as the notifier sees it: its latest firing or resolved transition.
    Never changed once made; not ``frozen`` for the cost of a frozen ``__init__`` (as
    ``Transition``: one per changed alert, every cycle).

    ``value`` is the value at that transition: for a resolved alert, the value at
    resolution (not the last firing value).
    """

    alert_id: str
    rule: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: str  # firing | resolved
    value: float | None
    explanation: str
    starts_at: datetime
    ends_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def firing(self) -> bool:
        return self.status == FIRING

    @property
    def name(self) -> str:
        return self.labels.get("alertname", self.rule)

    def event(self, kind: str, at: datetime, detail: Mapping[str, Any]) -> AlertEvent:
        """Return this alert's history event of ``kind`` (notified, muted) at ``at``."""
        return AlertEvent(alert_id=self.alert_id, rule=self.rule, labels=self.labels,
                          kind=kind, at=at, value=self.value, explanation=self.explanation,
                          period=self.annotations.get("period_id", ""), detail=detail)

    def to_dict(self) -> dict[str, Any]:
        return self._fields(dict(self.labels), dict(self.annotations))

    def _fields(self, labels: Mapping[str, str], annotations: Mapping[str, str]
                ) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id, "rule": self.rule, "labels": labels,
            "annotations": annotations, "status": self.status,
            "value": self.value, "explanation": self.explanation,
            "starts_at": _time(self.starts_at), "ends_at": _time(self.ends_at),
            "updated_at": _time(self.updated_at),
        }

    def _encodable(self) -> dict[str, Any]:
        """Return :meth:`to_dict` for ``json``, sharing the labels and annotations
        when they are dicts already (as encoded, never changed): no copy per alert."""
        labels, notes = self.labels, self.annotations
        return self._fields(labels if type(labels) is dict else dict(labels),
                            notes if type(notes) is dict else dict(notes))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NotifyAlert:
        """Return the alert stored by :meth:`to_dict`. Raises KeyError/ValueError if malformed."""
        starts = _parse_time(data.get("starts_at"))
        return cls(
            alert_id=str(data["alert_id"]), rule=str(data.get("rule", "")),
            labels={str(k): str(v) for k, v in dict(data.get("labels", {})).items()},
            annotations={str(k): str(v) for k, v in dict(data.get("annotations", {})).items()},
            status=str(data.get("status", FIRING)),
            value=None if data.get("value") is None else float(data["value"]),
            explanation=str(data.get("explanation", "")),
            starts_at=starts if starts is not None else datetime.fromtimestamp(0, UTC),
            ends_at=_parse_time(data.get("ends_at")),
            updated_at=_parse_time(data.get("updated_at")),
        )


@dataclass(frozen=True)
class DigestItem:
    """One indicator series whose status changed since the previous digest."""

    indicator: str
    fingerprint: str
    previous: str | None  # None: not in the previous digest
    current: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"indicator": self.indicator, "fingerprint": self.fingerprint,
                "previous": self.previous, "current": self.current, "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DigestItem:
        return cls(str(data["indicator"]), str(data["fingerprint"]),
                   None if data.get("previous") is None else str(data["previous"]),
                   str(data["current"]), str(data.get("text", "")))


@dataclass(frozen=True)
class Digest:
    """A scorecard digest: its title, the window it covers and the changed items."""

    name: str
    title: str
    since: datetime | None
    items: tuple[DigestItem, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "since": _time(self.since),
                "items": [i.to_dict() for i in self.items]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Digest:
        return cls(str(data["name"]), str(data["title"]), _parse_time(data.get("since")),
                   tuple(DigestItem.from_dict(i) for i in data.get("items", [])))


@dataclass(frozen=True)
class ReportNote:
    """A scheduled performance pack: what it is about, its files and where to read it.

    ``files`` are the paths of the generated files, kept in the report's directory: an
    email attaches them at send time, so a retry sends the same bytes.
    """

    name: str
    title: str
    period: str  # the month evaluated: "2008-07"
    data_to: str  # the latest period with data: "Jul-08"
    files: tuple[str, ...]
    link: str  # the pack's page: external_url/report?at=2008-07 ("" without external_url)
    summary: str = ""  # "6 red, 2 amber, 8 green; 3 exceptions"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "period": self.period,
                "data_to": self.data_to, "files": list(self.files), "link": self.link,
                "summary": self.summary}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportNote:
        return cls(str(data["name"]), str(data.get("title", "")), str(data["period"]),
                   str(data.get("data_to", "")), tuple(str(f) for f in data.get("files", [])),
                   str(data.get("link", "")), str(data.get("summary", "")))


@dataclass(frozen=True)
class GroupSummary:
    """What a group's whole set of alerts says, kept with a notification holding only the
    first of them (:meth:`Notification.first`)."""

    status: str
    common_labels: dict[str, str]
    common_annotations: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "common_labels": self.common_labels,
                "common_annotations": self.common_annotations}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupSummary:
        return cls(str(data["status"]),
                   {str(k): str(v) for k, v in data.get("common_labels", {}).items()},
                   {str(k): str(v) for k, v in data.get("common_annotations", {}).items()})


@dataclass(frozen=True)
class Notification:
    """One message for one receiver: a group's alerts, a digest, or a test.

    ``message_id`` identifies this message (retries reuse it, so an email receiver can
    drop a duplicate); ``thread_id`` is the ``message_id`` of the first message about
    the group, which email uses for ``In-Reply-To``/``References``.
    """

    kind: str  # alerts | digest | report | test
    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    alerts: tuple[NotifyAlert, ...]
    created_at: datetime
    message_id: str
    thread_id: str
    external_url: str = ""
    digest: Digest | None = None
    truncated: int = 0
    report: ReportNote | None = None
    # The whole group's status and common labels and annotations when ``alerts`` are only
    # its first (``first``); None: ``alerts`` are the whole group.
    whole: GroupSummary | None = None

    @property
    def firing(self) -> tuple[NotifyAlert, ...]:
        return tuple(a for a in self.alerts if a.firing)

    @property
    def resolved(self) -> tuple[NotifyAlert, ...]:
        return tuple(a for a in self.alerts if not a.firing)

    @property
    def status(self) -> str:
        """``firing`` when any alert of the group fires, else ``resolved``."""
        if self.whole is not None:
            return self.whole.status
        return FIRING if any(a.firing for a in self.alerts) or not self.alerts else RESOLVED

    @property
    def common_labels(self) -> dict[str, str]:
        """The labels every alert of the group shares."""
        if self.whole is not None:
            return self.whole.common_labels
        return common(a.labels for a in self.alerts)

    @property
    def common_annotations(self) -> dict[str, str]:
        if self.whole is not None:
            return self.whole.common_annotations
        return common(a.annotations for a in self.alerts)

    def first(self, limit: int) -> Notification:
        """Return this notification holding only its first ``limit`` alerts (0: all): the
        others are counted in ``truncated``, and the group's status and common labels
        and annotations stay the whole group's.

        For an integration whose message never shows more (a webhook's ``max_alerts``):
        a group of 8,000 alerts is then stored in the outbox as the 100 it sends, not
        as 4 MB of JSON, and its body is the same."""
        if not limit or len(self.alerts) <= limit:
            return self
        return replace(self, alerts=self.alerts[:limit],
                       truncated=self.truncated + len(self.alerts) - limit,
                       whole=self.whole or GroupSummary(
                           self.status, self.common_labels, self.common_annotations))

    @property
    def is_thread_start(self) -> bool:
        return self.message_id == self.thread_id

    def without_resolved(self) -> Notification:
        """Return this notification with its resolved alerts dropped (send_resolved off)."""
        return replace(self, alerts=self.firing)

    def to_json(self) -> str:
        data = {
            "kind": self.kind, "receiver": self.receiver, "group_key": self.group_key,
            "group_labels": dict(self.group_labels),
            "alerts": [a._encodable() for a in self.alerts],
            "created_at": _time(self.created_at), "message_id": self.message_id,
            "thread_id": self.thread_id, "external_url": self.external_url,
            "digest": self.digest.to_dict() if self.digest else None,
            "truncated": self.truncated,
            "report": self.report.to_dict() if self.report else None,
        }
        if self.whole is not None:
            data["whole"] = self.whole.to_dict()
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Notification:
        """Return the notification stored by :meth:`to_json`.

        Raises ValueError (including json.JSONDecodeError) or KeyError when malformed.
        """
        data = json.loads(text)
        created = _parse_time(data.get("created_at"))
        if created is None:
            raise ValueError("notification payload has no created_at")
        return cls(
            kind=str(data.get("kind", "alerts")), receiver=str(data["receiver"]),
            group_key=str(data.get("group_key", "")),
            group_labels={str(k): str(v) for k, v in data.get("group_labels", {}).items()},
            alerts=tuple(NotifyAlert.from_dict(a) for a in data.get("alerts", [])),
            created_at=created, message_id=str(data["message_id"]),
            thread_id=str(data.get("thread_id") or data["message_id"]),
            external_url=str(data.get("external_url", "")),
            digest=Digest.from_dict(data["digest"]) if data.get("digest") else None,
            truncated=int(data.get("truncated", 0)),
            report=ReportNote.from_dict(data["report"]) if data.get("report") else None,
            whole=GroupSummary.from_dict(data["whole"]) if data.get("whole") else None,
        )


def common(mappings: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """Return the key/value pairs every mapping shares (empty for no mappings)."""
    result: dict[str, str] | None = None
    for mapping in mappings:
        if result is None:
            result = dict(mapping)
        elif not result:  # nothing shared already: the rest cannot add any
            break
        elif not result.items() <= mapping.items():  # most share all: one check in C
            result = {k: v for k, v in result.items() if mapping.get(k) == v}
    return dict(sorted((result or {}).items()))


@dataclass(frozen=True)
class SendResult:
    """What a delivery attempt achieved: ``delivered`` or ``skipped`` (nothing to send)."""

    outcome: str = "delivered"
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def sample_alerts(now: datetime, status: str = FIRING) -> Sequence[NotifyAlert]:
    """Return two realistic alerts for previews and receiver tests."""
    base = {"alertname": "BurglaryRising", "indicator": "residential_burglary",
            "severity": "warning", "source": "met-borough-crime"}
    text = ("Residential burglary in {b} is up {p}% on the previous rolling year "
            "({n} offences, 12 months to Jul-08); the target is a 4% reduction.")
    return [
        NotifyAlert(
            alert_id=f"sample-{borough.lower()}", rule="BurglaryRising",
            labels={**base, "borough": borough},
            annotations={"summary": f"Residential burglary up {pct}% in {borough}",
                         "description": text.format(b=borough, p=pct, n=count)},
            status=status, value=value, explanation=text.format(b=borough, p=pct, n=count),
            starts_at=now, ends_at=now if status == RESOLVED else None, updated_at=now)
        for borough, pct, count, value in (("Camden", "6.1", "+112", 6.1),
                                           ("Hackney", "4.8", "+97", 4.8))
    ]
