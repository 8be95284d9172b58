"""The evaluation engine: data → matrices → conditions → alert candidates → state.

One evaluation, in steps:

1. pivot every indicator's stored observations onto a period grid ending at the
   evaluation period (``data.from_block``), then compute derived indicators in
   dependency order (``data.derive``);
2. for each rule, evaluate its condition over all series at once
   (``conditions.evaluate``), giving a boolean vector and the numbers behind it;
3. only rows that match, or whose alert is already pending/firing, become Python
   objects: labels, rendered annotations and the plain-language explanation;
4. the alert state machine steps each of those (``alerts.state.step``); the caller
   persists changed records and transitions in one transaction.

A rule that raises is marked unhealthy with its error; the others still run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from monitor.alerts.state import AlertRecord, Observation, Policy, Transition, step
from monitor.errors import EvaluationError
from monitor.logs import get_logger
from monitor.model import AlertState, Frequency, Milestone, alert_id, fingerprint
from monitor.rules import conditions
from monitor.rules.data import Grid, LongBlock, Matrix, derive, from_block
from monitor.rules.loader import LoadedRule, RuleSet
from monitor.rules.measures import period_text
from monitor.rules.schema import Indicator, Milestones
from monitor.rules.snapshot import IndicatorInfo
from monitor.rules.templating import render

log = get_logger(__name__)


@dataclass
class Dataset:
    """The inputs of one evaluation: observations per indicator, milestones, and the
    sources feeding each indicator (read from the store; an alert's ``sources``
    annotation, and what a source-health hold is decided on — never part of an alert's
    identity)."""

    blocks: Mapping[str, LongBlock]
    milestones: Sequence[tuple[str, Milestone]] = ()
    sources: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass
class RuleStats:
    evaluations: int = 0
    failures: int = 0
    last_error: str = ""
    last_evaluation: datetime | None = None
    duration: float = 0.0
    health: str = "unknown"
    template_errors: int = 0  # annotations that failed to render at the last evaluation


@dataclass
class Evaluation:
    """The result of one evaluation: new records, transitions, and what changed."""

    at: datetime
    period: int
    matrices: dict[str, Matrix]
    records: dict[str, AlertRecord]
    changed: list[AlertRecord] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    unhealthy: frozenset[str] = frozenset()  # sources judged stale or failing
    held: int = 0  # active alerts of rules held because a source they read is unhealthy
    evaluated_at: datetime | None = None  # the clock's time of the evaluation (``now``)


def indicator_info(ind: Indicator) -> IndicatorInfo:
    return IndicatorInfo(
        id=ind.id, name=ind.name, reference=ind.reference, unit=ind.unit,
        direction=ind.direction, frequency=ind.frequency, aggregation=ind.aggregation,
        window=ind.window, parent=ind.parent, group=ind.group, description=ind.description,
    )


def _derive_order(ruleset: RuleSet) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in ruleset.indicators:
            return
        seen.add(name)
        derived = ruleset.indicators[name].derived
        for child in derived.inputs if derived else []:
            visit(child)
        order.append(name)

    for name in ruleset.indicators:
        visit(name)
    return order


class Engine:
    """Evaluates a rule set; keeps rule health between evaluations."""

    def __init__(self, ruleset: RuleSet, *, history: int = 60) -> None:
        self.ruleset = ruleset
        self.history = history
        self.stats: dict[tuple[str, str], RuleStats] = {
            (r.group, r.rule.alert): RuleStats() for r in ruleset.rules}

    # --- matrices -------------------------------------------------------------------

    def matrices(self, dataset: Dataset, at: datetime) -> tuple[dict[str, Matrix], int]:
        """Return every indicator's matrix on its frequency's grid, and the monthly period
        of ``at``. Raises EvaluationError for a derived indicator that cannot be built."""
        out: dict[str, Matrix] = {}
        grids: dict[str, Grid] = {}
        for freq in Frequency:
            end = freq.ordinal(at.date())
            span = self.history if freq is Frequency.MONTHLY else max(
                8, self.history * freq.per_year // 12)
            grids[freq.value] = Grid(end - span + 1, end)
        for name in _derive_order(self.ruleset):
            ind = self.ruleset.indicators[name]
            grid = grids[ind.frequency]
            if ind.derived is None:
                out[name] = from_block(ind, dataset.blocks.get(name), grid)
            else:
                out[name] = derive(ind, out)
        return out, Frequency.MONTHLY.ordinal(at.date())

    # --- evaluation -----------------------------------------------------------------

    def evaluate(self, dataset: Dataset, at: datetime, records: Mapping[str, AlertRecord],
                 *, rules: Sequence[LoadedRule] | None = None,
                 now: datetime | None = None) -> Evaluation:
        """Evaluate ``rules`` (default: all) on the data as of ``at`` against the previous
        ``records``. ``now`` (default ``at``) is the time the state machine sees: a daemon
        replaying a past month still counts `for` in real time."""
        matrices, period = self.matrices(dataset, at)
        now = now or at
        result = Evaluation(at, period, matrices, dict(records), evaluated_at=now)
        by_rule: dict[tuple[str, str], list[AlertRecord]] = {}
        for record in records.values():
            by_rule.setdefault((record.group, record.rule), []).append(record)
        for loaded in rules if rules is not None else self.ruleset.rules:
            key = (loaded.group, loaded.rule.alert)
            stats = self.stats.setdefault(key, RuleStats())
            started = time.perf_counter()
            stats.template_errors = 0
            try:
                self._evaluate_rule(loaded, dataset, matrices, at, now, period, result,
                                    by_rule.get(key, []))
                stats.health = "ok"
                stats.last_error = ""
            except Exception as exc:  # one broken rule never stops the others
                stats.failures += 1
                stats.health = "err"
                stats.last_error = str(exc) or type(exc).__name__
                result.errors[loaded.rule.alert] = stats.last_error
                log.error("rule evaluation failed", rule=loaded.rule.alert, group=loaded.group,
                          file=loaded.file, error=stats.last_error)
                self._on_error(loaded, by_rule.get(key, []), stats.last_error, now, result)
            stats.evaluations += 1
            stats.duration = time.perf_counter() - started
            stats.last_evaluation = now
        return result

    def _evaluate_rule(self, loaded: LoadedRule, dataset: Dataset,
                       matrices: Mapping[str, Matrix], at: datetime, now: datetime,
                       period: int, result: Evaluation, previous: list[AlertRecord]) -> None:
        rule = loaded.rule
        ctx = conditions.Context(matrices, self.ruleset.peer_groups, dataset.milestones,
                                 at.date(), period, None, rule.on)
        if rule.indicator is None:
            leaves = [leaf for leaf in rule.when.leaves() if isinstance(leaf, Milestones)]
            labels_rows = conditions.milestone_labels(ctx, leaves[0])
            outcome = conditions.evaluate(rule.when, None, ctx)
            matrix = None
            data_period = None
        else:
            matrix = matrices.get(rule.indicator)
            if matrix is None:
                raise EvaluationError(f'indicator "{rule.indicator}" is not defined')
            labels_rows = matrix.labels
            rows_of_prev = {r.id: _row_of(matrix, r.labels) for r in previous
                            if r.state in (AlertState.PENDING, AlertState.FIRING)}
            was = np.zeros(matrix.n, dtype=bool)
            for row in rows_of_prev.values():
                if row is not None:
                    was[row] = True
            ctx.was_active = was
            outcome = conditions.evaluate(rule.when, matrix, ctx)
            end = matrix.last_column()
            data_period = matrix.grid.period(end) if end >= 0 else None
        active_prev = {r.id: r for r in previous
                       if r.state in (AlertState.PENDING, AlertState.FIRING)}
        seen_ids: set[str] = set()
        candidates = np.flatnonzero(outcome.active | ~outcome.known) if len(outcome.active) \
            else np.array([], dtype=np.int64)
        if rule.match:
            candidates = np.array([i for i in candidates.tolist()
                                   if all(labels_rows[i].get(k) == v
                                          for k, v in rule.match.items())], dtype=np.int64)
        index_of: dict[str, tuple[int, dict[str, str]]] = {}
        sources = ", ".join(sorted(dataset.sources.get(rule.indicator, ()))) \
            if rule.indicator else ""
        for i in candidates.tolist():
            labels = self._labels(loaded, labels_rows[i], matrix)
            index_of[alert_id(loaded.group, labels)] = (i, labels)
        milestone_rows = {alert_id(loaded.group, self._labels(loaded, row, None)): i
                          for i, row in enumerate(labels_rows)} if matrix is None else {}
        for key, record in active_prev.items():
            if key in index_of:
                continue
            row = _row_of(matrix, record.labels) if matrix is not None \
                else milestone_rows.get(key)
            if row is not None:  # still there, no longer matching: resolve on its numbers
                index_of[key] = (row, record.labels)
        steady = rule.flapping is None
        for key, (i, labels) in index_of.items():
            known = bool(outcome.known[i])
            active = bool(outcome.active[i])
            record = result.records.get(key) or AlertRecord(key, rule.alert, labels,
                                                             group=loaded.group)
            if steady and known and active and record.state is AlertState.FIRING \
                    and record.last_period == data_period and record.keep_firing_until is None:
                seen_ids.add(key)  # still firing on the same data: nothing new to say
                continue
            if not known:
                if rule.no_data == "ok":
                    active = False
                elif rule.no_data == "alerting":
                    active = True
                else:
                    if key not in active_prev:
                        continue
                    active = record.state in (AlertState.PENDING, AlertState.FIRING)
            if not active and key not in active_prev:
                continue
            value = float(outcome.value[i]) if not np.isnan(outcome.value[i]) else None
            explanation = outcome.explain(i) if known else "no data to evaluate"
            explanation = _sentence(explanation)
            annotations = self._annotations(loaded, labels, value, explanation, outcome, i,
                                            matrix, sources, data_period,
                                            fingerprint(labels_rows[i]) if matrix else "")
            seen_ids.add(key)
            new, transitions = step(record, Observation(active, value, explanation, annotations,
                                                        data_period),
                                    now, Policy(rule.for_, rule.keep_firing_for, rule.flapping))
            if new != record:
                result.records[key] = new
                result.changed.append(new)
            result.transitions.extend(transitions)
        for key, record in active_prev.items():
            if key in seen_ids:
                continue
            # The series vanished: resolve (or drop a pending alert) with what is known.
            new, transitions = step(record, Observation(False, record.value,
                                                        record.explanation, record.annotations,
                                                        None), now,
                                    Policy(rule.for_, rule.keep_firing_for, rule.flapping))
            result.records[key] = new
            result.changed.append(new)
            result.transitions.extend(transitions)

    def _on_error(self, loaded: LoadedRule, previous: list[AlertRecord], error: str,
                  now: datetime, result: Evaluation) -> None:
        """Apply the rule's ``on_error`` policy: keep every alert as it is (keep_state),
        resolve them (ok), or fire one alert that says the rule is failing (alerting)."""
        rule = loaded.rule
        policy = Policy(rule.for_, rule.keep_firing_for, rule.flapping)
        if rule.on_error == "ok":
            for record in previous:
                if record.state in (AlertState.PENDING, AlertState.FIRING):
                    new, moves = step(record, Observation(False, record.value,
                                                          record.explanation,
                                                          record.annotations, None), now,
                                      Policy(rule.for_, 0.0, rule.flapping))
                    result.records[record.id] = new
                    result.changed.append(new)
                    result.transitions.extend(moves)
        elif rule.on_error == "alerting":
            labels = {"alertname": rule.alert, "severity": rule.severity, "error": "evaluation"}
            key = alert_id(loaded.group, labels)
            record = result.records.get(key) or AlertRecord(key, rule.alert, labels,
                                                             group=loaded.group)
            text = _sentence(f"rule {rule.alert} cannot be evaluated: {error}")
            new, moves = step(record, Observation(True, None, text, {"explanation": text},
                                                  None), now, policy)
            if new != record:
                result.records[key] = new
                result.changed.append(new)
            result.transitions.extend(moves)

    def _labels(self, loaded: LoadedRule, series: Mapping[str, str],
                matrix: Matrix | None) -> dict[str, str]:
        """Return an alert's labels: the series' labels, the indicator's, the rule's,
        ``alertname`` and ``severity`` — a function of the rule and the series only."""
        rule = loaded.rule
        labels = dict(series)
        if matrix is not None:
            labels.update(matrix.indicator.labels)
            labels["indicator"] = matrix.indicator.id
        labels.update(rule.labels)
        labels["alertname"] = rule.alert
        labels["severity"] = rule.severity
        return labels

    def _annotations(self, loaded: LoadedRule, labels: dict[str, str], value: float | None,
                     explanation: str, outcome: conditions.Outcome, i: int,
                     matrix: Matrix | None, sources: str = "",
                     data_period: int | None = None, series: str = "") -> dict[str, str]:
        facts: dict[str, Any] = {}
        for name, fact in outcome.facts.items():
            if isinstance(fact, np.ndarray) and fact.ndim == 1 and len(fact) == len(outcome.value):
                item = fact[i]
                facts[name] = item.item() if hasattr(item, "item") else item
            elif not isinstance(fact, np.ndarray):
                facts[name] = fact
        public = {k: v for k, v in labels.items() if not k.startswith("__")}
        context: dict[str, Any] = {
            "labels": public, "value": value, "explanation": explanation, **facts,
            "indicator": indicator_info(matrix.indicator).__dict__ if matrix else {},
        }
        out = {"explanation": explanation}
        if sources:  # which sources feed the indicator: the failing-source inhibition reads it
            out["sources"] = sources
        if matrix is not None and data_period is not None:  # the period the value is about
            out["period"] = period_text(matrix.indicator, data_period)
            # …and the same as the series page's ?at= parameter and the history keep it
            out["period_id"] = Frequency(matrix.indicator.frequency).label(data_period)
        if series:  # the series page the alert is about: /indicators/{indicator}/series/{it}
            out["series"] = series
        if value is not None and outcome.shown is not None:  # the value in its unit: 0.6%
            out["value_text"] = outcome.shown(value)
        for name, template in loaded.rule.annotations.items():
            try:
                out[name] = render(template, context)
            except Exception as exc:  # a bad template must not stop the alert
                out[name] = f"(template error: {exc})"
                self.stats.setdefault((loaded.group, loaded.rule.alert),
                                      RuleStats()).template_errors += 1
                log.warning("annotation template failed", rule=loaded.rule.alert,
                            annotation=name, error=str(exc))
        return out

def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _row_of(matrix: Matrix, labels: Mapping[str, str]) -> int | None:
    """Return the matrix row whose series labels ``labels`` (an alert's) carry."""
    return matrix.row_of(labels)


def month_end(period: int) -> datetime:
    """Return noon UTC on the last day of monthly period ``period``: when an evaluation
    "as of" that month happens."""
    year, month0 = divmod(period + 1, 12)
    last_day = date.fromordinal(date(year, month0 + 1, 1).toordinal() - 1)
    return datetime(last_day.year, last_day.month, last_day.day, 12, tzinfo=UTC)


def evaluation_time(as_of: str | None, now: datetime) -> datetime:
    """Return the instant to evaluate at: ``now``, or the end of the ``as_of`` month."""
    if not as_of:
        return now
    return month_end(Frequency.MONTHLY.parse(as_of))


RESOLVED_RETENTION = 24 * 3600.0  # seconds a resolved (or back to inactive) alert is kept


def forgettable(records: Mapping[str, AlertRecord], now: datetime,
                retention: float = RESOLVED_RETENTION) -> list[str]:
    """Return the ids of the records to forget: resolved, or back to inactive, for longer
    than ``retention`` seconds, not flapping and with no flap history to keep.

    Without this every series that ever alerted would keep a record for good. A later
    match starts a new alert, exactly as it would after a resolution.
    """
    cutoff = now - timedelta(seconds=retention)
    out = []
    for key, record in records.items():
        if record.state not in (AlertState.RESOLVED, AlertState.INACTIVE) \
                or record.flapping or record.history:
            continue
        since = record.resolved_at or record.last_evaluated
        if since is not None and since < cutoff:
            out.append(key)
    return out


def carry_over(records: Mapping[str, AlertRecord], ruleset: RuleSet) -> dict[str, AlertRecord]:
    """Keep the records of rules that still exist (by group and name) across a reload."""
    names = {(r.group, r.rule.alert) for r in ruleset.rules}
    return {k: r for k, r in records.items() if (r.group, r.rule) in names}
