"""Building notifiers on a real store for the notification tests."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from itertools import count
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import insert

from monitor.clock import FixedClock
from monitor.notify.config import NotifyConfig
from monitor.notify.notifier import Notifier
from monitor.store import Store
from monitor.store.notify import TRANSITION

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # a Friday


def notify_config(receivers: list[dict[str, Any]], **extra: Any) -> NotifyConfig:
    """Return a config routing everything to the first receiver, grouped by alertname,
    with no group_wait and quick retries."""
    route = {"receiver": receivers[0]["name"], "group_by": ["alertname"], "group_wait": "0s",
             "group_interval": "1m", "repeat_interval": "1h", **extra.pop("route", {})}
    retry = {"initial_backoff": "10s", "max_backoff": "5m", "jitter": 0.2,
             "max_attempts": 5, "timeout": "5s", "lease": "30s", **extra.pop("retry", {})}
    return NotifyConfig.model_validate({"route": route, "receivers": receivers,
                                        "retry": retry, **extra})


def make_notifier(store: Store, config: NotifyConfig, clock: FixedClock | None = None,
                  instance: str = "test", registry: CollectorRegistry | None = None,
                  **kwargs: Any) -> Notifier:
    ids = count(1)
    return Notifier(store, config, clock or FixedClock(T0), registry or CollectorRegistry(),
                    instance=instance, external_url="http://monitor.example",
                    rng=random.Random(7), new_id=lambda: f"{instance}-{next(ids)}", **kwargs)


def record(store: Store, alert_id: str, to_state: str, at: datetime, value: float,
           from_state: str | None = None, **labels: str) -> None:
    """Record one transition as the rules engine does."""
    labels = {"alertname": "BurglaryRising", "borough": alert_id, "severity": "warning",
              **labels}
    with store.engine.begin() as conn:
        conn.execute(insert(TRANSITION), [{
            "alert_id": alert_id, "rule": labels["alertname"], "labels": json.dumps(labels),
            "annotations": json.dumps({"summary": f"{labels['alertname']} in {alert_id}"}),
            "from_state": from_state or ("pending" if to_state == "firing" else "firing"),
            "to_state": to_state, "value": value, "explanation": f"value {value}", "at": at}])
