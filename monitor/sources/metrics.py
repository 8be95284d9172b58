"""The sources subsystem's metrics, on an injected registry.

Every configured source's series exist from the start (at 0), so a dashboard shows a
source that never succeeded rather than nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("success", "partial", "unchanged", "empty", "failed")
RESULTS = ("inserted", "revised", "updated", "unchanged")
REASONS = ("missing_column", "extra_fields", "missing_value", "missing_label", "non_numeric",
           "negative", "zero_denominator", "bad_period", "bad_flag", "bad_indicator",
           "unmapped", "duplicate_period", "duplicate_id", "bad_date", "bad_status",
           "inconsistent", "invalid")


class SourceMetrics:
    """Polls, their duration and outcome, observations stored, rows rejected, revisions."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.polls = Counter("monitor_source_polls_total", "Polls by source and outcome "
                             "(success, partial: some rows rejected, unchanged, empty: no "
                             "rows, failed).",
                             ["source", "outcome"], registry=registry)
        self.duration = Histogram("monitor_source_poll_duration_seconds",
                                  "Time a poll took: fetch, parse and store.", ["source"],
                                  buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
                                           300, 600),
                                  registry=registry)
        self.last_success = Gauge("monitor_source_last_success_timestamp_seconds",
                                  "Unix time of the source's last successful poll (0: never).",
                                  ["source"], registry=registry)
        self.observations = Counter("monitor_source_observations_total",
                                    "Observations read from the source, by what storing them "
                                    "did (inserted, revised, updated, unchanged).",
                                    ["source", "result"], registry=registry)
        self.rejected = Counter("monitor_source_rows_rejected_total",
                                "Input values rejected, by reason (a row may have several); "
                                "each is logged with its row and field.",
                                ["source", "reason"], registry=registry)
        self.revisions = Counter("monitor_source_revisions_total",
                                 "Stored values a poll changed (the old value is kept).",
                                 ["source"], registry=registry)
        self.failures = Gauge("monitor_source_consecutive_failures",
                              "Polls failed in a row (0: the last poll succeeded).",
                              ["source"], registry=registry)
        self.last_failure = Gauge("monitor_source_last_failure_timestamp_seconds",
                                  "Unix time of the source's last failed poll (0: never).",
                                  ["source"], registry=registry)

    def known(self, sources: Iterable[str]) -> None:
        """Create every labelled series of ``sources`` at 0."""
        for source in sources:
            for outcome in OUTCOMES:
                self.polls.labels(source, outcome)
            for result in RESULTS:
                self.observations.labels(source, result)
            for reason in REASONS:
                self.rejected.labels(source, reason)
            self.duration.labels(source)
            self.last_success.labels(source)
            self.revisions.labels(source)
            self.failures.labels(source)
            self.last_failure.labels(source)
