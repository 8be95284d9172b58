"""Pushing to a real Alertmanager (Debian's prometheus-alertmanager), read back via its API."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from monitor.clock import SystemClock
from monitor.notify.channels import build_channels
from monitor.notify.config import ReceiverConfig
from monitor.notify.notification import Notification, NotifyAlert
from tests.notify.conftest import AlertmanagerProcess


def push(am: AlertmanagerProcess, *alerts: NotifyAlert, kind: str = "alerts") -> str:
    receiver = ReceiverConfig.model_validate({"name": "am", "alertmanager": [
        {"url": am.url, "alert_ttl": "15m"}]})
    channel = build_channels(receiver, clock=SystemClock(), timeout=5)["alertmanager:0"]
    now = SystemClock().now()
    result = channel.send(Notification(kind, "am", "k", {}, alerts, now, "m", "m",
                                       "http://monitor.example"))
    return result.outcome


def wait_for(am: AlertmanagerProcess, predicate: object, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    alerts: list[dict] = []
    while time.monotonic() < deadline:
        alerts = am.alerts()
        if predicate(alerts):  # type: ignore[operator]
            return alerts
        time.sleep(0.1)
    return alerts


@pytest.mark.real_clock  # Alertmanager hides an alert once its endsAt is past on its clock
def test_firing_alerts_appear_in_alertmanager_and_resolved_ones_leave(
        alertmanager: AlertmanagerProcess) -> None:
    now = SystemClock().now()
    camden = NotifyAlert("a1", "BurglaryRising", {"alertname": "BurglaryRising",
                                                  "borough": "Camden"},
                         {"summary": "Burglary up in Camden"}, "firing", 6.1,
                         "up 6.1% on the previous rolling year", now - timedelta(minutes=5))
    assert push(alertmanager, camden) == "delivered"
    alerts = wait_for(alertmanager, lambda a: any(x["labels"].get("borough") == "Camden"
                                                  for x in a))
    shown = next(x for x in alerts if x["labels"].get("borough") == "Camden")
    assert shown["status"]["state"] == "active"
    assert shown["annotations"]["summary"] == "Burglary up in Camden"
    assert shown["annotations"]["value"] == "6.1"
    assert shown["annotations"]["explanation"] == "up 6.1% on the previous rolling year"
    assert shown["generatorURL"] == ("http://monitor.example/alerts?match=alertname%3D%22"
                                     "BurglaryRising%22&match=borough%3D%22Camden%22")

    resolved = NotifyAlert("a1", "BurglaryRising", camden.labels, camden.annotations,
                           "resolved", 2.0, "back under", camden.starts_at,
                           SystemClock().now() - timedelta(seconds=1))
    push(alertmanager, resolved)
    alerts = wait_for(alertmanager, lambda a: not any(
        x["labels"].get("borough") == "Camden" for x in a))
    assert not any(x["labels"].get("borough") == "Camden" for x in alerts)


def test_digests_are_not_pushed_as_alerts(alertmanager: AlertmanagerProcess) -> None:
    assert push(alertmanager, kind="digest") == "skipped"
