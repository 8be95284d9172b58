"""Scheduled digests: a scorecard message listing only what changed status.

The digest asks a *status provider* — a callable returning
``{(indicator, labels_fingerprint): (status, text)}`` — for the scorecard now, compares
it with the scorecard stored at the previous digest, and lists every series whose
status differs (or that is new). It does not depend on the rules engine: the daemon
passes the provider in. The snapshot is stored in the same transaction as the outbox
messages, so a crash never sends a digest twice nor skips the changes it covered.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime

from monitor.notify.notification import Digest, DigestItem

StatusKey = tuple[str, str]
StatusProvider = Callable[[], Mapping[StatusKey, tuple[str, str]]]
SEVERITY = {"red": 0, "amber": 1, "no_data": 2, "not_rated": 3, "green": 4, "baseline": 5}


def meta_key(name: str) -> str:
    return f"notify.digest.{name}"


def changes(previous: Mapping[StatusKey, tuple[str, str]] | None,
            current: Mapping[StatusKey, tuple[str, str]]) -> list[DigestItem]:
    """Return the series whose status changed (or that are new), worst status first.

    With no previous snapshot every series is new.
    """
    items = []
    before = previous or {}
    for key, (status, text) in current.items():
        old = before.get(key)
        if old is not None and old[0] == status:
            continue
        items.append(DigestItem(indicator=key[0], fingerprint=key[1],
                                previous=old[0] if old else None, current=status, text=text))
    items.sort(key=lambda i: (SEVERITY.get(i.current, 5), i.indicator, i.fingerprint))
    return items


def encode(snapshot: Mapping[StatusKey, tuple[str, str]], at: datetime) -> str:
    """Return the snapshot as stored text."""
    return json.dumps({"at": at.isoformat(),
                       "items": [[k[0], k[1], v[0], v[1]] for k, v in sorted(snapshot.items())]})


def decode(text: str | None) -> tuple[dict[StatusKey, tuple[str, str]] | None, datetime | None]:
    """Return (snapshot, taken at) from stored text; (None, None) when there is none."""
    if not text:
        return None, None
    data = json.loads(text)
    snapshot = {(str(i[0]), str(i[1])): (str(i[2]), str(i[3])) for i in data.get("items", [])}
    at = datetime.fromisoformat(data["at"]) if data.get("at") else None
    return snapshot, at


def build_digest(name: str, title: str, stored: str | None,
                 current: Mapping[StatusKey, tuple[str, str]]) -> Digest:
    """Return the digest of what changed between the ``stored`` snapshot and ``current``."""
    previous, since = decode(stored)
    return Digest(name=name, title=title, since=since, items=tuple(changes(previous, current)))
