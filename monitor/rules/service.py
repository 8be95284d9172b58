"""The rules subsystem inside the daemon: load, reload, evaluate on schedule, persist.

It reads observations through the store's repositories, evaluates with
:class:`~monitor.rules.engine.Engine`, saves alert records and transitions in one
transaction, and publishes a :class:`~monitor.rules.snapshot.Snapshot` for the HTTP
layer. A rule file edit that does not load leaves the last good rule set running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Connection

from monitor.alerts.state import AlertRecord
from monitor.clock import Clock
from monitor.cluster import LeaseLostError, Partition, group_key
from monitor.errors import RuleFileError
from monitor.logs import get_logger
from monitor.model import Milestone
from monitor.rules import scorecard, sourcehealth
from monitor.rules.engine import (
    Dataset,
    Engine,
    Evaluation,
    carry_over,
    evaluation_time,
    forgettable,
)
from monitor.rules.loader import LoadedRule, RuleSet, load_rules, rule_files
from monitor.rules.snapshot import SeriesDetail, Snapshot
from monitor.sources.config import SourceBase
from monitor.store import Store, describe_error

log = get_logger(__name__)
CLUSTER_RECORDS_REFRESH = 60.0  # seconds between reads of the other replicas' alerts


def read_dataset(store: Store, ruleset: RuleSet, milestone_sources: Sequence[str]) -> Dataset:
    """Return the observations of every base indicator, the milestones of the named
    sources and the source feeding each indicator, from the store."""
    base = [i.id for i in ruleset.indicators.values() if i.derived is None]
    blocks = store.observations.read(base)
    milestones: list[tuple[str, Milestone]] = []
    for source in milestone_sources:
        milestones.extend((source, m) for m in store.observations.milestones(source))
    sources = sourcehealth.indicator_sources(ruleset, store.observations.indicators_by_source())
    return Dataset(blocks, milestones, sources)


DATA_MAX_AGE = 600.0  # seconds a cached dataset is trusted without a new poll


class RuleMetrics:
    """``monitor_rule_*`` and ``monitor_rules_*`` metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.evaluations = Counter("monitor_rule_group_evaluations_total",
                                   "Rule evaluations, per rule group.", ["group"],
                                   registry=registry)
        self.failures = Counter("monitor_rule_group_evaluation_failures_total",
                                "Rule evaluations that failed, per rule group.", ["group"],
                                registry=registry)
        self.template_errors = Counter("monitor_rule_template_errors_total",
                                       "Rule annotations that failed to render (the alert "
                                       "reads \"(template error: …)\"), per rule group.",
                                       ["group"], registry=registry)
        self.duration = Histogram("monitor_rule_group_duration_seconds",
                                  "Time to evaluate a rule group.", ["group"],
                                  buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
                                  registry=registry)
        self.cycle = Gauge("monitor_rule_evaluation_last_duration_seconds",
                           "Duration of the last full evaluation cycle (load, evaluate, save).",
                           registry=registry)
        self.last_eval = Gauge("monitor_rule_evaluation_last_timestamp_seconds",
                               "Unix time of the last evaluation cycle.", registry=registry)
        self.reload_ok = Gauge("monitor_rules_last_reload_successful",
                               "1 when the last rule reload succeeded.", registry=registry)
        self.reload_time = Gauge("monitor_rules_last_reload_success_timestamp_seconds",
                                 "Unix time of the last successful rule reload.",
                                 registry=registry)
        self.rules = Gauge("monitor_rules_loaded", "Rules in the running rule set.",
                           registry=registry)
        self.cycle_failures = Counter(
            "monitor_rule_evaluation_cycle_failures_total",
            "Evaluation cycles that failed as a whole (store busy, locked or full); the "
            "next cycle evaluates again and nothing is lost.", registry=registry)
        self.held = Gauge("monitor_rule_alerts_held",
                          "KPI alerts held in their state at the last evaluation because "
                          "the source feeding them is stale or failing.", registry=registry)
        self.unhealthy_sources = Gauge("monitor_rule_sources_unhealthy",
                                       "Sources whose SourceStale or SourceFailing alert is "
                                       "active.", registry=registry)


class RuleService:
    """Holds the running rule set and the latest evaluation."""

    def __init__(self, store: Store, paths: Sequence[str], clock: Clock,
                 registry: CollectorRegistry, *, as_of: str | None = None,
                 history: int = 60,
                 milestone_sources: Callable[[], list[str]] = list,
                 sources: Callable[[], Sequence[SourceBase]] = list,
                 on_evaluated: Callable[[Evaluation], None] | None = None,
                 partition: Partition | None = None) -> None:
        self.store = store
        self.partition = partition  # None: this process evaluates every rule group
        self._epochs: dict[int, int] | None = None  # shards held when records were read
        self._records_read = 0.0  # time.monotonic() of that read
        self.paths = list(paths)
        self.clock = clock
        self.metrics = RuleMetrics(registry)
        self.as_of = as_of
        self.history = history
        self.milestone_sources = milestone_sources
        self.sources = sources  # judged for the built-in SourceStale/SourceFailing alerts
        self.on_evaluated = on_evaluated
        self._lock = threading.Lock()
        self.ruleset: RuleSet | None = None
        self.engine: Engine | None = None
        self.records: dict[str, AlertRecord] = {}
        self.last: Evaluation | None = None
        self._mtimes: dict[str, float] = {}
        self._again = threading.Event()  # data changed while an evaluation was running
        self._evaluating = threading.Event()
        self._scheduler: Any = None
        self._snapshot: Snapshot | None = None  # built once per evaluation, read per scrape
        self._group_last: dict[str, datetime] = {}  # when each rule group last ran
        self._force_all = False
        self._data: Dataset | None = None
        self._data_signature: tuple[object, ...] = ()
        self._data_read_at = 0.0
        self._scorecard: list[SeriesDetail] | None = None

    # --- loading --------------------------------------------------------------------

    def load(self) -> RuleSet:
        """Load the rule files and the stored alert state. Raises RuleFileError."""
        ruleset = load_rules(self.paths)
        with self._lock:
            self._install(ruleset)
            self.records = self.store.alerts.load()
        log.info("rules loaded", files=len(ruleset.files), rules=len(ruleset.rules),
                 indicators=len(ruleset.indicators), alerts_restored=len(self.records))
        return ruleset

    def _install(self, ruleset: RuleSet) -> None:
        old = self.engine
        self.ruleset = ruleset
        self.engine = Engine(ruleset, history=self.history)
        if old is not None:
            for key, stats in old.stats.items():
                if key in self.engine.stats:
                    self.engine.stats[key] = stats
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(time.time())
        self.metrics.rules.set(len(ruleset.rules))
        self._mtimes = self._scan()
        for group in ruleset.groups():
            self.metrics.evaluations.labels(group)
            self.metrics.failures.labels(group)
            self.metrics.template_errors.labels(group)

    def reload(self) -> tuple[bool, str]:
        """Load the rule files again; keep the running set when they do not load."""
        try:
            ruleset = load_rules(self.paths)
        except RuleFileError as exc:
            self.metrics.reload_ok.set(0)
            self._mtimes = self._scan()
            log.error("rule reload failed; keeping the last good rules",
                      problems=len(exc.problems), error=str(exc))
            return False, str(exc)
        with self._lock:
            self._install(ruleset)
            self.records = {**carry_over(self.records, ruleset),
                            **sourcehealth.health_records(self.records)}
        log.info("rules reloaded", rules=len(ruleset.rules))
        return True, f"{len(ruleset.rules)} rules loaded"

    def _scan(self) -> dict[str, float]:
        out = {}
        for path in rule_files(self.paths):
            try:
                out[str(path)] = path.stat().st_mtime
            except OSError:
                continue
        for raw in self.paths:
            if Path(raw).is_dir():
                out[f"{raw}/"] = float(len(list(Path(raw).rglob("*.y*ml"))))
        return out

    def reload_if_changed(self) -> None:
        """Reload when a rule file was added, removed or modified since the last look."""
        if self._scan() != self._mtimes:
            log.info("rule files changed; reloading")
            self.reload()

    # --- evaluating -----------------------------------------------------------------

    def dataset(self) -> Dataset:
        """Return what the rules need, read from the store when it may have changed.

        Reading every series is the costly part of a cycle at scale (seconds for 100,000
        series), and data only changes when a poll lands: the dataset is cached until a
        source's last success moves (any replica's poll), the rules change, or
        ``DATA_MAX_AGE`` passes (a backfill by ``monitor ingest``).
        """
        assert self.ruleset is not None
        signature = (id(self.ruleset), tuple(sorted(
            (h.source, h.last_success_at.isoformat() if h.last_success_at else "")
            for h in self.store.source_state.health())))
        fresh = time.monotonic() - self._data_read_at < DATA_MAX_AGE
        if self._data is None or signature != self._data_signature or not fresh:
            self._data = read_dataset(self.store, self.ruleset, self.milestone_sources())
            self._data_signature = signature
            self._data_read_at = time.monotonic()
        return self._data

    def evaluate(self, now: datetime | None = None) -> Evaluation:
        """Evaluate every rule now (or as of ``as_of``), persist, publish."""
        started = time.perf_counter()
        with self._lock:
            assert self.engine is not None and self.ruleset is not None
            wall = now or self.clock.now()
            at = evaluation_time(self.as_of, wall)
            rules, guard, health_owned = self._share()
            rules = self._due(rules, wall)
            result = self.engine.evaluate(self.dataset(), at, self.records, rules=rules,
                                          now=wall)
            health = sourcehealth.evaluate_health(self.sources(),
                                                  self.store.source_state.health(),
                                                  self.records, wall)
            result, held = sourcehealth.hold(self.records, result, health.unhealthy)
            if health_owned:
                result = sourcehealth.merge(result, health)
            result = self._forget(result, rules, health_owned, wall)
            try:
                self.store.alerts.save(result.changed, result.transitions, self.clock.now(),
                                       removed=result.removed, guard=guard)
            except LeaseLostError:
                self._epochs = None  # read the records again once the shards settle
                raise
            self.metrics.held.set(held)
            self.metrics.unhealthy_sources.set(len(health.unhealthy))
            self.records = result.records
            self.last = result
            self._snapshot = self.engine.snapshot(result)
            self._scorecard = None
            for loaded in rules if rules is not None else self.ruleset.rules:
                group = loaded.group
                stats = self.engine.stats[(group, loaded.rule.alert)]
                self.metrics.evaluations.labels(group).inc()
                if stats.health == "err":
                    self.metrics.failures.labels(group).inc()
                self.metrics.template_errors.labels(group).inc(stats.template_errors)
                self.metrics.duration.labels(group).observe(stats.duration)
        self.metrics.cycle.set(time.perf_counter() - started)
        self.metrics.last_eval.set(time.time())
        if result.transitions:
            log.info("alerts changed state", transitions=len(result.transitions),
                     firing=sum(r.state.value == "firing" for r in result.records.values()))
        if self.on_evaluated is not None:
            self.on_evaluated(result)
        return result

    def _forget(self, result: Evaluation, rules: list[LoadedRule] | None,
                health_owned: bool, now: datetime) -> Evaluation:
        """Return ``result`` without the records resolved longer than the retention (see
        ``forgettable``), listed in ``removed``; only records of rules this process
        evaluates are touched."""
        assert self.ruleset is not None
        owned = {(r.group, r.rule.alert)
                 for r in (rules if rules is not None else self.ruleset.rules)}
        if health_owned:
            owned |= {(sourcehealth.GROUP, sourcehealth.STALE),
                      (sourcehealth.GROUP, sourcehealth.FAILING)}
        gone = {k for k in forgettable(result.records, now)
                if (result.records[k].labels.get("__group__", ""), result.records[k].rule)
                in owned}
        if not gone:
            return result
        return replace(result, removed=sorted(gone),
                       records={k: r for k, r in result.records.items() if k not in gone})

    def _due(self, rules: list[LoadedRule] | None, now: datetime) -> list[LoadedRule] | None:
        """Keep the rules whose group is due: a group with its own ``interval`` is evaluated
        that often; new data (``request_evaluation``) makes every group due."""
        assert self.ruleset is not None
        chosen = self.ruleset.rules if rules is None else rules
        if not any(r.interval for r in chosen):
            return rules
        force, self._force_all = self._force_all, False
        out = []
        for r in chosen:
            last = self._group_last.get(r.group)
            if force or r.interval is None or last is None or \
                    (now - last).total_seconds() >= r.interval - 0.5:
                out.append(r)
        for group in {r.group for r in out}:
            self._group_last[group] = now
        return out

    def _share(self) -> tuple[list[LoadedRule] | None,
                              Callable[[Connection], None] | None, bool]:
        """Return the rules this process evaluates (None: all), the check its write runs
        first (None: none) and whether it steps the source-health alerts.

        On a cluster: the rule groups of the shards held, and the source-health alerts
        when their group's shard is held. When the shards held changed, the stored
        alert records are read again first, so a group taken over carries on with the
        state and `for` timers its previous owner saved; they are also read again every
        ``CLUSTER_RECORDS_REFRESH`` seconds, so this replica's pages and API show the
        other replicas' alerts too.
        """
        if self.partition is None:
            return None, None, True
        assert self.ruleset is not None
        ownership = self.partition.ownership()
        stale = time.monotonic() - self._records_read >= CLUSTER_RECORDS_REFRESH
        if ownership.epochs != self._epochs or stale:
            stored = self.store.alerts.load()
            self.records = {**carry_over(stored, self.ruleset),
                            **sourcehealth.health_records(stored)}
            self._epochs = dict(ownership.epochs)
            self._records_read = time.monotonic()
        rules = [r for r in self.ruleset.rules if ownership.owns(group_key(r.group))]
        return (rules, self.partition.guard(ownership),
                ownership.owns(group_key(sourcehealth.GROUP)))

    # --- what the HTTP layer reads ----------------------------------------------------

    def snapshot(self) -> Snapshot:
        if self._snapshot is not None:
            return self._snapshot
        engine = self.engine
        return engine.snapshot(None) if engine is not None else Snapshot(None, {}, [], [])

    def scorecard(self) -> list[SeriesDetail]:
        last, ruleset = self.last, self.ruleset
        if last is None or ruleset is None:
            return []
        if self._scorecard is None:
            self._scorecard = scorecard.rows(last.matrices, ruleset)
        return self._scorecard

    def detail(self, indicator: str, labels: dict[str, str]) -> SeriesDetail | None:
        if self.last is None or self.ruleset is None:
            return None
        m = self.last.matrices.get(indicator)
        if m is None:
            return None
        row = m.index().get(tuple(sorted(labels.items())))
        if row is None:
            return None
        return scorecard.detail(m, row, self.last.matrices, self.ruleset)

    def request_evaluation(self) -> None:
        """Evaluate as soon as possible (new data landed); never lost if one is running."""
        self._again.set()
        self._force_all = True
        if self._evaluating.is_set():
            return  # the running cycle sees the flag and goes round once more
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.modify_job("rules:evaluate", next_run_time=self.clock.now())

    def schedule(self, scheduler: Any, interval: float, watch: bool,
                 watch_interval: float) -> None:
        self._scheduler = scheduler
        scheduler.add_job(self._safe_evaluate, "interval", seconds=interval, id="rules:evaluate",
                          next_run_time=datetime.now(self.clock.now().tzinfo))
        if watch:
            scheduler.add_job(self.reload_if_changed, "interval", seconds=watch_interval,
                              id="rules:watch")

    def _safe_evaluate(self) -> None:
        self._evaluating.set()
        try:
            while True:
                self._again.clear()
                try:
                    self.evaluate()
                except LeaseLostError as exc:  # the new owner evaluates; nothing written
                    log.warning("evaluation discarded", error=str(exc))
                    return
                except Exception as exc:  # the loop goes on; the next cycle retries
                    self.metrics.cycle_failures.inc()
                    reason = describe_error(exc)
                    if reason is not None:
                        log.error("evaluation cycle failed; the next cycle evaluates again",
                                  error=reason)
                    else:
                        log.exception("evaluation cycle failed", error=str(exc))
                    return
                if not self._again.is_set():
                    return
        finally:
            self._evaluating.clear()
