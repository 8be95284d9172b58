"""The notifier's metrics, on an injected registry.

- ``monitor_notifications_total{receiver,integration,outcome}``: delivery attempts by
  outcome — ``delivered``, ``failed`` (will retry), ``dead`` (gave up or permanent),
  ``skipped`` (nothing for this integration to send);
- ``monitor_notify_latency_seconds{receiver,integration}``: from the earliest newly
  notified alert firing to its delivery;
- ``monitor_notify_outbox_depth{receiver,integration}``: messages waiting to be sent;
- ``monitor_notify_dead_letters{receiver,integration}``: dead letters kept for resend;
- ``monitor_notify_template_errors_total{receiver,integration}``: renders that fell back;
- ``monitor_notify_transitions_claimed_total``, ``monitor_notify_flushes_total``;
- ``monitor_notify_errors_total{stage}``: runs that failed as a whole and are retried —
  ``pipeline`` (claiming transitions, grouping, enqueueing) or ``outbox`` (leasing and
  recording deliveries), e.g. while the store is busy or its disk is full.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("delivered", "failed", "dead", "skipped")
ERROR_STAGES = ("pipeline", "outbox")
LATENCY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 86400)


class NotifyMetrics:
    """Every metric of the notification subsystem."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "monitor_notifications", "Notification delivery attempts by outcome.",
            ["receiver", "integration", "outcome"], registry=registry)
        self.latency = Histogram(
            "monitor_notify_latency_seconds",
            "Seconds from an alert firing to the delivery of the first message about it.",
            ["receiver", "integration"], buckets=LATENCY_BUCKETS, registry=registry)
        self.outbox_depth = Gauge(
            "monitor_notify_outbox_depth", "Messages committed to the outbox, not yet sent.",
            ["receiver", "integration"], registry=registry)
        self.dead_letters = Gauge(
            "monitor_notify_dead_letters", "Messages that gave up, kept for resend.",
            ["receiver", "integration"], registry=registry)
        self.template_errors = Counter(
            "monitor_notify_template_errors", "Renders that failed and used the fallback.",
            ["receiver", "integration"], registry=registry)
        self.transitions = Counter(
            "monitor_notify_transitions_claimed", "Alert transitions claimed by this process.",
            registry=registry)
        self.flushes = Counter(
            "monitor_notify_flushes", "Pipeline runs (claim, group, dedup, enqueue).",
            registry=registry)
        self.errors = Counter(
            "monitor_notify_errors", "Notifier runs that failed as a whole and are retried, "
            "by stage (pipeline or outbox).", ["stage"], registry=registry)
        for stage in ERROR_STAGES:
            self.errors.labels(stage)
        self.muted = Counter(
            "monitor_notify_muted", "Alert transitions kept from receivers, by what muted "
            "them (silenced or inhibited); each is logged and kept in the alert history.",
            ["by"], registry=registry)
        for by in ("silenced", "inhibited"):
            self.muted.labels(by)
        self._lanes: set[tuple[str, str]] = set()

    def known_lanes(self, lanes: Iterable[tuple[str, str]]) -> None:
        """Pre-create every label combination at 0 for the configured integrations.

        ``lanes`` are (receiver, ``"<kind>:<index>"``); the ``integration`` label is the
        kind, as in Alertmanager, so two Slack webhooks of one receiver add up.
        """
        for receiver, lane in lanes:
            kind = lane.partition(":")[0]
            for outcome in OUTCOMES:
                self.notifications.labels(receiver, kind, outcome)
            self.outbox_depth.labels(receiver, kind)
            self.dead_letters.labels(receiver, kind)
            self.template_errors.labels(receiver, kind)
            self.latency.labels(receiver, kind)
            self._lanes.add((receiver, kind))

    def set_counts(self, counts: Mapping[tuple[str, str, str], int]) -> None:
        """Set depth and dead-letter gauges from ``{(receiver, lane, status): rows}``."""
        depth: dict[tuple[str, str], int] = {}
        dead: dict[tuple[str, str], int] = {}
        for (receiver, lane, status), rows in counts.items():
            key = (receiver, lane.partition(":")[0])
            target = depth if status == "pending" else dead if status == "dead" else None
            if target is not None:
                target[key] = target.get(key, 0) + rows
        for key in self._lanes | set(depth) | set(dead):
            self.outbox_depth.labels(*key).set(depth.get(key, 0))
            self.dead_letters.labels(*key).set(dead.get(key, 0))
