"""One evaluation cycle, the only way anything evaluates rules.

The daemon's scheduled rule groups, ``monitor eval``, ``backtest``, ``diff``, ``test``
and the rule-test runner all call :meth:`Evaluator.run`; what they print or persist is
therefore what the daemon would do. Prometheus' ``rules/group.go`` is the model: the
group owns its rules, and one evaluation of it, at one instant, yields the next alert
state; the pure state machine (``monitor.alerts.state``) does each step.

One cycle, in order — each decision is made before the step it governs, so nothing is
undone afterwards:

1. judge each source's health and step the built-in ``SourceStale``/``SourceFailing``
   alerts (when this process owns them);
2. decide which rules are *held*: those reading a source that is stale or failing keep
   their alerts exactly as they are (nothing fires or resolves on data no longer
   refreshed);
3. evaluate the other rules with the engine (``Engine.evaluate``) and step their
   alerts;
4. forget records resolved longer than the retention;
5. publish the result (:class:`Published`): the snapshot, scorecard rows and series
   detail that pages, the API, ``/metrics``, notifications and ``monitor eval`` show.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from monitor.alerts.state import AlertRecord
from monitor.model import Alert, AlertState, Frequency, fingerprint
from monitor.rules import conditions, scorecard, sourcehealth
from monitor.rules.engine import (
    RESOLVED_RETENTION,
    Dataset,
    Engine,
    Evaluation,
    Gathered,
    RuleStats,
    forgettable,
    held,
    indicator_info,
    month_end,
)
from monitor.rules.loader import LoadedRule, RuleSet
from monitor.rules.recordindex import RecordIndex
from monitor.rules.snapshot import (
    Alerts,
    GroupHealth,
    IndicatorFrame,
    RuleHealth,
    SeriesDetail,
    Snapshot,
)
from monitor.sources.config import SourceBase
from monitor.store.sourcestate import SourceHealth

ACTIVE = (AlertState.PENDING, AlertState.FIRING)


@dataclass(frozen=True)
class SourceView:
    """What a cycle knows of the sources: their configs and their stored health."""

    configs: Sequence[SourceBase]
    health: Sequence[SourceHealth]


@dataclass(frozen=True)
class Cycle:
    """The instant and scope of one evaluation.

    ``at`` is the instant the data is judged as of (the end of ``rules.as_of``'s month,
    or now); ``now`` is the time the state machine sees (``for`` and
    ``keep_firing_for`` count in it). ``rules`` None means every rule. ``sources`` None
    means no source-health alerts and no holds (a backtest of the past, a rule test).
    ``owns_health`` is False on a replica that does not own the source-health group: it
    still holds rules on the health alerts another replica stored.
    """

    at: datetime
    now: datetime
    rules: Sequence[LoadedRule] | None = None
    sources: SourceView | None = None
    owns_health: bool = True
    retention: float = RESOLVED_RETENTION


@dataclass(frozen=True)
class Holds:
    """What a cycle decided before evaluating: the rules in scope, those to evaluate, the
    held ones (by group and name), the unhealthy sources and the health step's result."""

    rules: list[LoadedRule]
    evaluated: list[LoadedRule]
    held: set[tuple[str, str]]
    unhealthy: frozenset[str]
    health: sourcehealth.HealthResult | None


class Published:
    """What one cycle published: the read model every reader shows, computed once."""

    def __init__(self, evaluation: Evaluation | None, ruleset: RuleSet, engine: Engine,
                 alerts: _Published | None = None,
                 counts: Mapping[tuple[str, AlertState], int] | None = None) -> None:
        self.evaluation = evaluation
        self.ruleset = ruleset
        self.snapshot: Snapshot = _snapshot(engine, evaluation, alerts or _Published(), counts)
        self._rows: list[SeriesDetail] | None = None

    def scorecard(self) -> list[SeriesDetail]:
        """Every series' scorecard row (value, target, status, SPC, comment)."""
        if self.evaluation is None:
            return []
        if self._rows is None:
            self._rows = scorecard.rows(self.evaluation.matrices, self.ruleset)
        return self._rows

    def detail(self, indicator: str, labels: Mapping[str, str]) -> SeriesDetail | None:
        """One series' row with its history, limits and signals; None when unknown."""
        return self.details(indicator, [labels])[0]

    def details(self, indicator: str, labels: Sequence[Mapping[str, str]]
                ) -> list[SeriesDetail | None]:
        """``detail`` of each series ``labels`` names, in their order: on the distributed
        engine made where their partitions' matrices are, each partition asked once for
        all its series (a list page's rows), the others from the matrices side by side."""
        if self.evaluation is None:
            return [None] * len(labels)
        matrices = self.evaluation.matrices
        made: list[SeriesDetail | None] = [None] * len(labels)
        if isinstance(matrices, Gathered) and matrices.details is not None \
                and not matrices.loaded and indicator in matrices:
            made = matrices.details(indicator, labels)  # where their partitions are
        if all(page is not None for page in made):
            return made
        m = matrices.get(indicator)
        if m is None:
            return made
        index = m.index()
        wanted = {k: index.get(tuple(sorted(one.items()))) for k, one in enumerate(labels)
                  if made[k] is None}
        found = {k: row for k, row in wanted.items() if row is not None}
        for k, page in zip(found, scorecard.details(
                m, list(found.values()), self.evaluation.matrices, self.ruleset), strict=True):
            made[k] = page
        return made


class _Published:
    """The alerts made for the snapshots so far, by id, with the record each was made
    from: an alert whose record did not change is the same object again."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # pages and /metrics make them from their threads
        self.alerts: dict[str, tuple[AlertRecord, Alert]] = {}


def _snapshot(engine: Engine, evaluation: Evaluation | None, published: _Published,
              counts: Mapping[tuple[str, AlertState], int] | None = None) -> Snapshot:
    """Return the snapshot of ``evaluation``: every indicator's frame (headline value,
    target, status, SPC variation per series), the alerts (made when first read) and the
    rules' health (``counts``: its records per rule and state, when the caller holds
    them)."""
    frames: dict[str, IndicatorFrame] = {}
    if evaluation is not None and evaluation.frames is not None:
        frames = dict(evaluation.frames)  # made where the partitions were evaluated
    elif evaluation is not None:
        for name, m in evaluation.matrices.items():
            frames[name] = scorecard.frame(m, indicator_info(m.indicator))
    records: Mapping[str, AlertRecord] = evaluation.records if evaluation is not None else {}
    alerts = Alerts(lambda: _alerts(evaluation, frames, records, published))
    if counts is None:
        counts = Counter((r.rule, r.state) for r in records.values())  # one pass
    rules = []
    for loaded in engine.ruleset.rules:
        s = engine.stats.get((loaded.group, loaded.rule.alert), RuleStats())
        name = loaded.rule.alert
        rules.append(RuleHealth(name, loaded.group, loaded.file, s.health,
                                s.last_error, s.last_evaluation, s.duration, s.evaluations,
                                s.failures, counts.get((name, AlertState.FIRING), 0),
                                counts.get((name, AlertState.PENDING), 0), loaded.line,
                                loaded.definition))
    return Snapshot(evaluation.at if evaluation else None, frames, alerts, rules,
                    evaluated_at=evaluation.evaluated_at if evaluation else None,
                    groups=_groups(engine, rules))


def _about(evaluation: Evaluation, frames: Mapping[str, IndicatorFrame],
           record: AlertRecord) -> tuple[str, str]:
    """Return the fingerprint of the series an alert is about and the period (``2008-07``)
    its value is about; empty strings when it is about no series. From the matrix when
    this process holds it, else from the snapshot's frame (the same labels, in the same
    rows): the alerts never wait for a distributed cycle's matrices."""
    name = record.labels.get("indicator", "")
    if held(evaluation.matrices):
        m = evaluation.matrices.get(name)
        if m is None:
            return "", ""
        row = m.row_of(record.labels)
        series = m.fingerprint(row) if row is not None else ""
        frequency: str = m.indicator.frequency
    else:
        frame = frames.get(name)
        if frame is None:
            return "", ""
        names, rows = frame.rows()
        row = rows.get(tuple(record.labels.get(k, "") for k in names))
        series = fingerprint(frame.labels[row]) if row is not None else ""
        frequency = frame.info.frequency
    period = Frequency(frequency).label(record.last_period) \
        if record.last_period is not None else ""
    return series, period


def _groups(engine: Engine, rules: Sequence[RuleHealth]) -> list[GroupHealth]:
    """Return every rule group's health, in the order the rule files define them."""
    out = []
    for name, members in engine.ruleset.groups().items():
        health = [r for r in rules if r.group == name]
        times = [r.last_evaluation for r in health if r.last_evaluation is not None]
        last = max(times) if times else None
        out.append(GroupHealth(
            name, tuple(dict.fromkeys(m.file for m in members)), members[0].interval, last,
            sum(r.duration_seconds for r in health if r.last_evaluation == last),
            len(members), tuple((r.name, r.last_error) for r in health if r.health == "err")))
    return out


def _alerts(evaluation: Evaluation | None, frames: Mapping[str, IndicatorFrame],
            records: Mapping[str, AlertRecord], cache: _Published) -> list[Alert]:
    """Return the alert of every record."""
    with cache.lock:
        return _alerts_locked(evaluation, frames, records, cache.alerts)


def _alerts_locked(evaluation: Evaluation | None, frames: Mapping[str, IndicatorFrame],
                   records: Mapping[str, AlertRecord],
                   published: dict[str, tuple[AlertRecord, Alert]]) -> list[Alert]:
    alerts = []
    for key, record in records.items():
        kept = published.get(key)
        if kept is not None and kept[0] is record:
            alerts.append(kept[1])
            continue
        series, period = _about(evaluation, frames, record) if evaluation is not None \
            else ("", "")
        alert = Alert(
            rule=record.rule,
            labels=dict(record.labels), group=record.group,
            annotations=record.annotations, state=record.state, value=record.value,
            active_since=record.active_since, fired_at=record.fired_at,
            resolved_at=record.resolved_at, last_evaluated=record.last_evaluated,
            explanation=record.explanation, fingerprint=record.id,
            series=series, period=period)
        published[key] = (record, alert)
        alerts.append(alert)
    if len(published) > len(records):
        for key in [k for k in published if k not in records]:
            del published[key]
    return alerts


class Evaluator:
    """Runs evaluation cycles of one rule set; keeps rule health between them."""

    def __init__(self, ruleset: RuleSet, *, history: int = 60,
                 milestone_sources: Sequence[str] = ()) -> None:
        self.ruleset = ruleset
        self.engine = Engine(ruleset, history=history)
        self.milestone_sources = list(milestone_sources)
        # what the rules' statistical tests import, imported with the rules
        conditions.load_tests(r.rule.when for r in ruleset.rules)
        self._published = _Published()
        # the index of the records the last cycle ended with (the next one starts there)
        self._index: RecordIndex | None = None

    def index(self, records: Mapping[str, AlertRecord]) -> RecordIndex:
        """Return the index of ``records``: the one carried from the last cycle when they
        are the records it ended with, else made now (start-up, reload, records read
        again)."""
        index = self._index
        if index is None or index.records is not records:
            index = self._index = RecordIndex(records)
        return index

    def adopt(self, older: Evaluator) -> None:
        """Carry the rule health of rules that still exist over from ``older`` (a reload)."""
        for key, stats in older.engine.stats.items():
            if key in self.engine.stats:
                self.engine.stats[key] = stats

    def run(self, dataset: Dataset, records: Mapping[str, AlertRecord], cycle: Cycle
            ) -> Evaluation:
        """Evaluate one cycle against the previous ``records``; return the new state,
        the transitions to persist and notify, and what to forget."""
        holds = self.holds(dataset.sources, records, cycle)
        result = self.engine.evaluate(dataset, cycle.at, records, rules=holds.evaluated,
                                      now=cycle.now, by_rule=self.index(records).grouped())
        return self.settle(result, holds, records, cycle)

    def holds(self, feeding: Mapping[str, frozenset[str]],
              records: Mapping[str, AlertRecord], cycle: Cycle) -> Holds:
        """Steps 1 and 2 of a cycle: judge the sources' health and decide which rules
        are held; return them with the rules to evaluate. ``feeding`` is the sources
        feeding each indicator (``Dataset.sources``)."""
        rules = list(self.ruleset.rules if cycle.rules is None else cycle.rules)
        health = None
        if cycle.sources is not None and cycle.owns_health:
            health = sourcehealth.evaluate_health(cycle.sources.configs, cycle.sources.health,
                                                  self.index(records).health, cycle.now)
            unhealthy = health.unhealthy
        elif cycle.sources is not None:
            unhealthy = frozenset(r.labels.get("source", "")
                                  for r in self.index(records).health.values()
                                  if r.state in ACTIVE)
        else:
            unhealthy = frozenset()
        held = sourcehealth.held_rules(rules, feeding, unhealthy, self.milestone_sources)
        evaluated = [r for r in rules if (r.group, r.rule.alert) not in held]
        return Holds(rules, evaluated, held, unhealthy, health)

    def carrying(self, records: Mapping[str, AlertRecord]) -> RecordIndex:
        """Return the index of ``records`` to put a cycle's changes in as they arrive
        (``RecordIndex.carry``), then hand to ``settle``. The evaluator lets go of it
        meanwhile: a cycle that fails half-way leaves no index half carried."""
        index = self.index(records)
        self._index = None
        return index

    def settle(self, result: Evaluation, holds: Holds, records: Mapping[str, AlertRecord],
               cycle: Cycle, carried: RecordIndex | None = None) -> Evaluation:
        """Steps 3 to 4 after the engine evaluated ``holds.evaluated`` (here, or
        partitioned on workers: ``monitor.rules.distributed``): count the held alerts,
        step the source-health alerts, forget what was resolved long ago. ``carried``:
        the index of ``records`` (``carrying``) with ``result.changed`` put in already."""
        done = len(result.changed) if carried is not None else 0
        index = carried if carried is not None else self.index(records)
        self._index = None  # used up below: made again if this fails half-way
        result.unhealthy = holds.unhealthy
        result.held = sum(1 for key in holds.held for r in index.rule(*key)
                          if r.state in ACTIVE)
        if holds.health is not None:
            result = sourcehealth.merge(result, holds.health)
        owned = {(r.group, r.rule.alert) for r in holds.rules}
        if holds.health is not None:
            owned |= {(sourcehealth.GROUP, sourcehealth.STALE),
                      (sourcehealth.GROUP, sourcehealth.FAILING)}
        index = index.carried(result.records, result.changed[done:], ())
        result = _forget(result, index, owned, cycle.now, cycle.retention)
        self._index = index.carried(result.records, (), result.removed)
        return result

    def publish(self, evaluation: Evaluation | None) -> Published:
        index = self._index
        counts = index.counts if index is not None and evaluation is not None \
            and index.records is evaluation.records else None
        return Published(evaluation, self.ruleset, self.engine, self._published, counts)


def _forget(result: Evaluation, index: RecordIndex, owned: set[tuple[str, str]],
            now: datetime, retention: float) -> Evaluation:
    """Return ``result`` without the owned records resolved longer than ``retention``
    (listed in ``removed``); ``index`` is its records' (only those at rest are asked)."""
    gone = {k for k in forgettable(index.resting, now, retention)
            if (result.records[k].group, result.records[k].rule) in owned}
    if not gone:
        return result
    return replace(result, removed=sorted(gone),
                   records={k: r for k, r in result.records.items() if k not in gone})


def publish_month(evaluator: Evaluator, dataset: Dataset, period: int,
                  sources: SourceView | None = None) -> tuple[Evaluation, Published]:
    """Evaluate as of the end of the month ``period`` (a monthly ordinal) from no earlier
    alert state, the clock at the month's end, as ``monitor eval --at`` prints it; return
    the evaluation and what it published. ``monitor eval``, ``monitor report``, the
    scheduled packs and ``/report`` all evaluate a month through it."""
    at = month_end(period)
    result = evaluator.run(dataset, {}, Cycle(at=at, now=at, sources=sources))
    return result, evaluator.publish(result)


def replay(evaluator: Evaluator, dataset: Dataset, start: int, end: int, *,
           rules: Sequence[LoadedRule] | None = None,
           records: Mapping[str, AlertRecord] | None = None
           ) -> Iterator[tuple[int, Evaluation]]:
    """Evaluate every month from ``start`` to ``end`` (monthly ordinals) as the daemon
    does with ``rules.as_of`` set to that month and its clock at the month's end; yield
    each month and its evaluation. ``monitor backtest`` and the rule tests use it."""
    state: Mapping[str, AlertRecord] = records or {}
    for period in range(start, end + 1):
        at = month_end(period)
        result = evaluator.run(dataset, state, Cycle(at=at, now=at, rules=rules))
        state = result.records
        yield period, result
