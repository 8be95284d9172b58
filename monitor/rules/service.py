"""The rules subsystem inside the daemon: a manager of rule groups.

It loads and reloads the rule files (keeping the last good set when an edit does not
load), watches them, decides which groups are due (their own ``interval``, new data,
the shards this replica holds, sources still being polled), hands each due cycle to the
one evaluation owner (:class:`~monitor.rules.cycle.Evaluator`), saves what the cycle
decided in one transaction, and keeps what it published for the HTTP layer. It
evaluates nothing itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
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
from monitor.memory import gc_paused
from monitor.model import AlertState, fingerprint
from monitor.rules import sourcehealth
from monitor.rules.cycle import Cycle, Evaluator, Published, SourceView
from monitor.rules.distributed import DistributedEngine
from monitor.rules.engine import Evaluation, carry_over, evaluation_time
from monitor.rules.inputs import DatasetCache
from monitor.rules.loader import LoadedRule, RuleSet, load_rules, rule_files
from monitor.rules.measures import period_text
from monitor.rules.snapshot import Overrun, ReloadStatus, SeriesDetail, Snapshot
from monitor.sources.config import SourceBase
from monitor.sources.poller import Settling
from monitor.store import Store, describe_error
from monitor.store.alerts import Saved
from monitor.store.observations import RevisionRecord
from monitor.textfmt import number

log = get_logger(__name__)
CLUSTER_RECORDS_REFRESH = 60.0  # seconds between reads of the other replicas' alerts


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
        self.overruns = Counter(
            "monitor_rule_evaluation_overruns_total",
            "Evaluation cycles (evaluate, save, notify) that took longer than "
            "rules.evaluation_interval, so the next one started late.", registry=registry)
        self.overrunning = Gauge(
            "monitor_rule_evaluation_overrunning",
            "1 while evaluation cycles take longer than rules.evaluation_interval.",
            registry=registry)
        self.unhealthy_sources = Gauge("monitor_rule_sources_unhealthy",
                                       "Sources whose SourceStale or SourceFailing alert is "
                                       "active.", registry=registry)


class RuleService:
    """Holds the running rule set, its alert records and what the last cycle published."""

    def __init__(self, store: Store, paths: Sequence[str], clock: Clock,
                 registry: CollectorRegistry, *, as_of: str | None = None,
                 history: int = 60,
                 milestone_sources: Callable[[], list[str]] = list,
                 sources: Callable[[], Sequence[SourceBase]] = list,
                 unsettled: Callable[[], Settling] = Settling,
                 on_evaluated: Callable[[Evaluation, Saved], None] | None = None,
                 partition: Partition | None = None,
                 engine: DistributedEngine | None = None, interval: float = 60.0) -> None:
        self.store = store
        self.engine = engine  # None: every cycle evaluates in this process, unpartitioned
        self.interval = interval  # rules.evaluation_interval: a cycle should fit in it
        self.overrun: Overrun | None = None
        self.partition = partition  # None: this process evaluates every rule group
        self._epochs: dict[int, int] | None = None  # shards held when records were read
        self._records_read: datetime | None = None  # the clock's time of that read
        self.paths = list(paths)
        self.clock = clock
        self.metrics = RuleMetrics(registry)
        self.as_of = as_of
        self.history = history
        self.milestone_sources = milestone_sources
        self.sources = sources  # judged for the built-in SourceStale/SourceFailing alerts
        self.unsettled = unsettled  # sources being polled, or awaiting their first poll
        self.on_evaluated = on_evaluated
        self._lock = threading.Lock()
        self.evaluator: Evaluator | None = None
        self.records: dict[str, AlertRecord] = {}
        self.last: Evaluation | None = None
        self._evaluated_wall: datetime | None = None  # when the last cycle ran
        self.deferred: list[str] = []  # groups waiting for their sources' polls
        self._published: Published | None = None
        self._mtimes: dict[str, float] = {}
        self._again = threading.Event()  # data changed while an evaluation was running
        self._evaluating = threading.Event()
        self._scheduler: Any = None
        self._group_last: dict[str, datetime] = {}  # when each rule group last ran
        self._force_all = False
        self._data = DatasetCache(store)
        self._reload = ReloadStatus()  # the latest reload's outcome, for the rules page

    @property
    def ruleset(self) -> RuleSet | None:
        return self.evaluator.ruleset if self.evaluator is not None else None

    # --- loading --------------------------------------------------------------------

    def load(self) -> RuleSet:
        """Load the rule files and the stored alert state. Raises RuleFileError."""
        ruleset = load_rules(self.paths)
        with self._lock:
            self._install(ruleset)
            self.records = self._read_records()
        log.info("rules loaded", files=len(ruleset.files), rules=len(ruleset.rules),
                 indicators=len(ruleset.indicators), alerts_restored=len(self.records))
        return ruleset

    def _read_records(self) -> dict[str, AlertRecord]:
        return self.store.alerts.load()

    def _install(self, ruleset: RuleSet) -> None:
        old = self.evaluator
        self.evaluator = Evaluator(ruleset, history=self.history,
                                   milestone_sources=self.milestone_sources())
        if old is not None:
            self.evaluator.adopt(old)
        self._published = None
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
            self._reload = ReloadStatus(False, tuple(str(p) for p in exc.problems),
                                        self.clock.now())
            return False, str(exc)
        with self._lock:
            self._install(ruleset)
            self.records = {**carry_over(self.records, ruleset),
                            **sourcehealth.health_records(self.records)}
        self._reload = ReloadStatus(True, (), self.clock.now())
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

    def evaluate(self, now: datetime | None = None) -> Evaluation | None:
        """Run one cycle of the due groups now (or as of ``as_of``), persist, publish.

        Returns None when no group was due (all waiting for their sources' polls).

        The cyclic garbage collector is paused for the cycle (``gc_paused``): at 100,000
        series a cycle makes a few hundred thousand alert records, transitions, texts
        and rows, none in a cycle, and each generation-2 pass walked the whole heap
        (``benchmarks/bench_daemon.py`` at 100k, SQLite, alternated: the first cycle
        16.9–17.1 CPU-s paused against 18.2–19.9, the new month 12.3–12.4 against
        13.8–13.9, the same peak memory)."""
        with gc_paused():
            return self._evaluate(now)

    def _evaluate(self, now: datetime | None) -> Evaluation | None:
        started = time.perf_counter()
        with self._lock:
            evaluator = self.evaluator
            assert evaluator is not None
            wall = now or self.clock.now()
            rules, guard, health_owned = self._share()
            # Which sources are still being polled is asked before the store is read: a
            # poll that ends in between must not leave this cycle judging the data read
            # before it landed.
            waiting = self.unsettled()
            at = evaluation_time(self.as_of, wall)
            dataset = self._data.get(evaluator.ruleset, self.milestone_sources(),
                                     since=evaluator.engine.first_periods(at)) \
                if self.engine is None else \
                self.engine.inputs(self.store, evaluator.ruleset, self.milestone_sources())
            rules = self._settled(rules, dataset.sources, waiting)
            if rules is not None and not rules and self.deferred:
                return None
            rules = self._due(rules, wall)
            cycle = Cycle(at=at, now=wall, rules=rules,
                          sources=SourceView(self.sources(), self.store.source_state.health()),
                          owns_health=health_owned)
            previous = self.last
            result = evaluator.run(dataset, self.records, cycle) if self.engine is None \
                else self.engine.run(evaluator, dataset, self.records, cycle)
            if previous is not None and previous.period == result.period:
                explain_revisions(result, self.store, self._evaluated_wall,
                                  evaluator.ruleset)
            self._evaluated_wall = wall
            try:
                saved = self.store.alerts.save(result.changed, result.transitions,
                                               self.clock.now(), removed=result.removed,
                                               guard=guard, stored=self.records)
            except LeaseLostError:
                self._epochs = None  # read the records again once the shards settle
                raise
            self.metrics.held.set(result.held)
            self.metrics.unhealthy_sources.set(len(result.unhealthy))
            self.records = result.records
            # What the pages republish and the next cycle compares with; not this cycle's
            # transitions and changed records, which the store now holds and which would
            # otherwise live a cycle longer, among the next cycle's objects.
            self.last = replace(result, changed=[], removed=[], transitions=[], runs=None)
            self._published = evaluator.publish(result)
            for loaded in rules if rules is not None else evaluator.ruleset.rules:
                group = loaded.group
                stats = evaluator.engine.stats[(group, loaded.rule.alert)]
                self.metrics.evaluations.labels(group).inc()
                if stats.health == "err":
                    self.metrics.failures.labels(group).inc()
                self.metrics.template_errors.labels(group).inc(stats.template_errors)
                self.metrics.duration.labels(group).observe(stats.duration)
        self.metrics.cycle.set(time.perf_counter() - started)
        self.metrics.last_eval.set(time.time())
        if result.transitions:
            log.info("alerts changed state", transitions=len(result.transitions),
                     firing=sum(r.state is AlertState.FIRING for r in result.records.values()))
        if self.on_evaluated is not None:
            self.on_evaluated(result, saved)
        self._note_overrun(time.perf_counter() - started, result, wall)
        return result

    def _note_overrun(self, elapsed: float, result: Evaluation, wall: datetime) -> None:
        """Report a cycle (evaluate, save, notify) longer than the interval: one warning
        when cycles start to overrun, with the figures, and one line when they keep up
        again; the metrics and the Rules page say it meanwhile."""
        if elapsed <= self.interval:
            if self.overrun is not None:
                log.info("evaluation cycles fit their interval again",
                         duration=round(elapsed, 2), interval=self.interval)
                self.overrun = None
                self.metrics.overrunning.set(0)
            return
        self.metrics.overruns.inc()
        self.metrics.overrunning.set(1)
        series = result.series()
        alerts = len(result.records)
        if self.overrun is None:
            log.warning("evaluation cycle took longer than rules.evaluation_interval; the "
                        "next cycles start late (none is skipped, none runs twice at once)",
                        duration=round(elapsed, 2), interval=self.interval, series=series,
                        alerts=alerts, transitions=len(result.transitions))
            self.overrun = Overrun(elapsed, self.interval, wall, 1, series, alerts)
        else:
            self.overrun = replace(self.overrun, duration=elapsed, cycles=self.overrun.cycles
                                   + 1, series=series, alerts=alerts)

    def _settled(self, rules: list[LoadedRule] | None, feeding: Mapping[str, frozenset[str]],
                 waiting: Settling) -> list[LoadedRule] | None:
        """Keep the rules whose sources have finished their poll.

        A rule reading a source that is being polled, or that has not had its first
        poll since the daemon started, waits (the poll's end asks for an evaluation);
        a rule whose indicators no source has fed yet waits for every source. So
        nothing is judged on half-polled data, at start-up or later."""
        if not waiting:
            self.deferred = []
            return rules
        assert self.evaluator is not None
        chosen = self.evaluator.ruleset.rules if rules is None else rules
        milestones = self.evaluator.milestone_sources
        out, deferred = [], set()
        for r in chosen:
            # Until every source has had its first poll, what each one feeds is not
            # known: every rule waits.
            reads = sourcehealth.rule_sources(r, feeding, milestones)
            if waiting.awaiting or not reads or (reads & waiting.polling):
                deferred.add(r.group)
            else:
                out.append(r)
        self.deferred = sorted(deferred)
        if deferred:
            log.debug("rule groups wait for their sources' polls", groups=self.deferred,
                      sources=sorted(waiting.awaiting | waiting.polling))
        return out

    def idle(self) -> bool:
        """True when no cycle is running, requested, or waiting for sources' polls."""
        return not (self._evaluating.is_set() or self._again.is_set() or self.deferred)

    def _due(self, rules: list[LoadedRule] | None, now: datetime) -> list[LoadedRule] | None:
        """Keep the rules whose group is due: a group with its own ``interval`` is evaluated
        that often; new data (``request_evaluation``) makes every group due."""
        assert self.evaluator is not None
        chosen = self.evaluator.ruleset.rules if rules is None else rules
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
        state and `for` timers its previous owner saved. Every
        ``CLUSTER_RECORDS_REFRESH`` seconds the records of the groups other replicas hold
        are read again, so this replica's pages and API show their alerts too; those of
        the groups it holds are the ones it saved itself and are kept as they are (a
        replica holding every shard reads none, and its rules' alerts stay in step).
        """
        if self.partition is None:
            return None, None, True
        assert self.evaluator is not None
        ruleset = self.evaluator.ruleset
        ownership = self.partition.ownership()
        if ownership.epochs != self._epochs:
            stored = self._read_records()
            self.records = {**carry_over(stored, ruleset),
                            **sourcehealth.health_records(stored)}
            self._epochs = dict(ownership.epochs)
            self._records_read = self.clock.now()
        elif self._refresh_due(self.clock.now()):
            groups = {r.group for r in ruleset.rules} | {sourcehealth.GROUP}
            others = {g for g in groups if not ownership.owns(group_key(g))}
            # A replica holding every shard has no one else's alerts to read, and keeps
            # its records mapping: a new one would make the cycle index every record
            # again (RecordIndex; at 1M series the steady cycle took 3.1 CPU-s, now 0.9).
            if others:
                stored = self.store.alerts.load(others)
                # Each group's shard hashed once, not once per record (157,000 at 100k).
                held = {g: ownership.owns(group_key(g))
                        for g in {r.group for r in self.records.values()}}
                self.records = {**carry_over(stored, ruleset),
                                **sourcehealth.health_records(stored),
                                **{k: r for k, r in self.records.items() if held[r.group]}}
            self._records_read = self.clock.now()
        rules = [r for r in ruleset.rules if ownership.owns(group_key(r.group))]
        return (rules, self.partition.guard(ownership),
                ownership.owns(group_key(sourcehealth.GROUP)))

    def _refresh_due(self, now: datetime) -> bool:
        """True when the other replicas' alerts were read ``CLUSTER_RECORDS_REFRESH``
        seconds ago or more (or the clock went back since)."""
        if self._records_read is None:
            return True
        elapsed = (now - self._records_read).total_seconds()
        return elapsed >= CLUSTER_RECORDS_REFRESH or elapsed < 0

    # --- what the HTTP layer reads ----------------------------------------------------

    def published(self) -> Published | None:
        """What the last cycle published (None before the first)."""
        if self._published is None and self.evaluator is not None:
            self._published = self.evaluator.publish(self.last)
        return self._published

    def snapshot(self) -> Snapshot:
        """What the last cycle published, with how far the cycles overrun their interval."""
        published = self.published()
        snapshot = published.snapshot if published is not None else Snapshot(None, {}, [], [])
        return replace(snapshot, overrun=self.overrun) if self.overrun else snapshot

    def reload_status(self) -> ReloadStatus:
        """The latest reload's outcome: ok, or the problems that kept the last good rules."""
        return self._reload

    def scorecard(self) -> list[SeriesDetail]:
        published = self.published()
        return published.scorecard() if published is not None else []

    def detail(self, indicator: str, labels: dict[str, str]) -> SeriesDetail | None:
        published = self.published()
        return published.detail(indicator, labels) if published is not None else None

    def details(self, indicator: str, labels: Sequence[Mapping[str, str]]
                ) -> list[SeriesDetail | None]:
        published = self.published()
        return published.details(indicator, labels) if published is not None \
            else [None] * len(labels)

    def request_evaluation(self, *, data_changed: bool = False) -> None:
        """Evaluate as soon as possible (``data_changed``: new data landed, which the
        next cycle reads — only what changed — from the store's data version); never
        lost if one is running."""
        if data_changed and self.engine is not None:
            self.engine.invalidate()
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


def explain_revisions(result: Evaluation, store: Store, since: datetime | None,
                      ruleset: RuleSet) -> None:
    """Say so when a revision made an alert fire: no newer period arrived since the last
    cycle, and a value of the alert's series was revised since then. The firing
    transition's ``cause`` annotation reads "Jun-08 was revised 77.4 → 76.9" (the
    latest such revision); messages and the history show it."""
    firing = [k for k, t in enumerate(result.transitions) if t.to_state is AlertState.FIRING
              and t.annotations.get("series") and t.labels.get("indicator") in result.matrices]
    if not firing or since is None:
        return
    by_indicator: dict[str, dict[str, RevisionRecord]] = {}
    for k in firing:
        t = result.transitions[k]
        indicator = t.labels["indicator"]
        if indicator not in by_indicator:
            latest: dict[str, RevisionRecord] = {}
            for stored in store.observations.revisions(since=since, indicator=indicator):
                latest.setdefault(fingerprint(stored.labels), stored)  # newest first
            by_indicator[indicator] = latest
        rev = by_indicator[indicator].get(t.annotations["series"])
        if rev is not None:
            when = period_text(ruleset.indicators[indicator], rev.period)  # not fetched
            # A new dict: the transition shares its annotations with the alert's record.
            result.transitions[k] = replace(t, annotations={
                **t.annotations, "cause": f"{when} was revised {number(rev.old_value)} → "
                                          f"{number(rev.new_value)}"})

