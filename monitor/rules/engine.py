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

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from monitor.alerts.state import (
    FIRING,
    NO_PERIOD,
    NO_TIME,
    PENDING,
    SEEN_CLEARED,
    SEEN_NOTHING,
    AlertArrays,
    AlertRecord,
    Observation,
    Policy,
    Times,
    Transition,
    make_records,
    step_many,
    step_record,
    texts,
    transition,
)
from monitor.errors import EvaluationError
from monitor.logs import get_logger
from monitor.model import AlertIds, AlertState, Frequency, Milestone, alert_id
from monitor.rules import conditions
from monitor.rules.data import BoolArray, Grid, LongBlock, Matrix, derive, from_block
from monitor.rules.loader import LoadedRule, RuleSet
from monitor.rules.measures import period_text
from monitor.rules.schema import Indicator, Level, Milestones
from monitor.rules.snapshot import IndicatorFrame, IndicatorInfo, SeriesDetail
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


class Gathered(Mapping[str, Matrix]):
    """The matrices of a cycle whose partitions were evaluated elsewhere: the indicators
    are known at once, the matrices are fetched from the workers (``load``) when one is
    first read — by the scorecard, a series' page, ``monitor eval`` — and kept."""

    def __init__(self, names: Sequence[str], load: Callable[[], dict[str, Matrix]],
                 details: Callable[[str, Sequence[Mapping[str, str]]],
                                   list[SeriesDetail | None]] | None = None
                 ) -> None:
        self._names = list(names)
        self._load: Callable[[], dict[str, Matrix]] | None = load
        self._matrices: dict[str, Matrix] | None = None
        self._lock = threading.Lock()  # pages read from their own threads
        # series' pages made where their partitions' matrices are, without fetching them
        # all, in the order asked: None for one that cannot be made there exactly as from
        # the matrices side by side
        self.details = details

    @property
    def loaded(self) -> bool:
        return self._matrices is not None

    def matrices(self) -> dict[str, Matrix]:
        """Return the matrices, fetched on the first call."""
        with self._lock:
            if self._matrices is None:
                assert self._load is not None
                self._matrices, self._load = self._load(), None
            return self._matrices

    def __getitem__(self, name: str) -> Matrix:
        if name not in self._names:
            raise KeyError(name)
        return self.matrices()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names


def held(matrices: Mapping[str, Matrix]) -> bool:
    """True when this process holds ``matrices`` (not a ``Gathered`` not yet fetched)."""
    return not isinstance(matrices, Gathered) or matrices.loaded


@dataclass
class Evaluation:
    """The result of one evaluation: new records, transitions, and what changed."""

    at: datetime
    period: int
    matrices: Mapping[str, Matrix]
    records: dict[str, AlertRecord]
    changed: list[AlertRecord] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    unhealthy: frozenset[str] = frozenset()  # sources judged stale or failing
    held: int = 0  # active alerts of rules held because a source they read is unhealthy
    evaluated_at: datetime | None = None  # the clock's time of the evaluation (``now``)
    # the snapshot's frames, when made where the partitions were evaluated (None: the
    # snapshot makes them from ``matrices``)
    frames: dict[str, IndicatorFrame] | None = None
    # Runs of ``changed`` as the state machine stepped them: where each run starts, its
    # records and their moving fields, one row each (``moving``); None: not kept
    # (``Engine.evaluate(runs=False)``, the default: only a partition's task reads them).
    runs: list[tuple[int, list[AlertRecord], AlertArrays]] | None = field(default=None,
                                                                            repr=False)

    def moving(self) -> AlertArrays:
        """Return the moving fields of ``changed``, one row per record: what
        ``AlertArrays.of(changed)`` gives, taken from the state machine's own arrays
        where it stepped them (a partition's changes go back as columns, and converting
        185,000 records' datetimes back to numbers cost a worker 0.4 CPU-s at 1M), made
        from the records for the rest (vanished series, failing rules, source health) and
        for any run ``changed`` no longer holds as it was made."""
        parts: list[AlertArrays] = []
        done = 0
        for start, made, arrays in self.runs or ():
            window = self.changed[start:start + len(made)]
            if start < done or len(window) != len(made) or any(
                    a is not b for a, b in zip(window, made, strict=True)):
                continue  # not where it was put: made from the records below
            if start > done:
                parts.append(AlertArrays.of(self.changed[done:start]))
            parts.append(arrays)
            done = start + len(made)
        if done < len(self.changed):
            parts.append(AlertArrays.of(self.changed[done:]))
        return AlertArrays.concat(parts)

    def series(self) -> int:
        """Return how many series the cycle evaluated (without fetching its matrices)."""
        if self.frames is not None:
            return sum(len(f.labels) for f in self.frames.values())
        return sum(m.n for m in self.matrices.values())


def indicator_info(ind: Indicator) -> IndicatorInfo:
    return IndicatorInfo(
        id=ind.id, name=ind.name, reference=ind.reference, unit=ind.unit,
        direction=ind.direction, frequency=ind.frequency, aggregation=ind.aggregation,
        window=ind.window, parent=ind.parent, group=ind.group, description=ind.description,
    )


def derive_order(ruleset: RuleSet) -> list[str]:
    """Return the indicators in dependency order: each after the inputs it derives from."""
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
        self._alerts: dict[tuple[str, str], _RuleAlerts] = {}
        self._pivots: dict[str, _Pivot] = {}
        self._derived: dict[str, tuple[tuple[Matrix, ...], Matrix]] = {}
        self._outcomes: dict[tuple[str, str], _Judged] = {}

    # --- matrices -------------------------------------------------------------------

    def matrices(self, dataset: Dataset, at: datetime) -> tuple[dict[str, Matrix], int]:
        """Return every indicator's matrix on its frequency's grid, and the monthly period
        of ``at``. Raises EvaluationError for a derived indicator that cannot be built."""
        out: dict[str, Matrix] = {}
        grids = self.grids(at)
        for name in derive_order(self.ruleset):
            ind = self.ruleset.indicators[name]
            grid = grids[ind.frequency]
            if ind.derived is None:
                block = dataset.blocks.get(name)
                pivot = self._pivots.get(name)
                if pivot is None or not pivot.holds(block, grid):
                    matrix = from_block(ind, block, grid)
                    if pivot is not None:  # the same series, most often: keep their ids
                        matrix.inherit(pivot.matrix)
                    pivot = self._pivots[name] = _Pivot.of(block, grid, matrix)
                out[name] = pivot.matrix
            else:
                inputs = tuple(out[i] for i in ind.derived.inputs)
                kept = self._derived.get(name)
                if kept is None or len(kept[0]) != len(inputs) or \
                        any(a is not b for a, b in zip(kept[0], inputs, strict=True)):
                    kept = self._derived[name] = (inputs, derive(ind, out))
                out[name] = kept[1]
        return out, Frequency.MONTHLY.ordinal(at.date())

    def grids(self, at: datetime) -> dict[str, Grid]:
        """Return the period grid of each frequency (by its value) an evaluation at ``at``
        reads: the last ``history`` months, or as many periods of a shorter frequency
        (at least 8)."""
        grids: dict[str, Grid] = {}
        for freq in Frequency:
            end = freq.ordinal(at.date())
            span = self.history if freq is Frequency.MONTHLY else max(
                8, self.history * freq.per_year // 12)
            grids[freq.value] = Grid(end - span + 1, end)
        return grids

    def first_periods(self, at: datetime) -> dict[str, int]:
        """Return, for each base indicator, the first period an evaluation at ``at``
        reads: observations before it are never pivoted (see ``from_block``)."""
        grids = self.grids(at)
        return {name: grids[ind.frequency].start for name, ind in self.ruleset.indicators.items()
                if ind.derived is None}

    # --- evaluation -----------------------------------------------------------------

    def evaluate(self, dataset: Dataset, at: datetime, records: Mapping[str, AlertRecord],
                 *, rules: Sequence[LoadedRule] | None = None,
                 now: datetime | None = None,
                 by_rule: Mapping[tuple[str, str], Iterable[AlertRecord]] | None = None,
                 runs: bool = False) -> Evaluation:
        """Evaluate ``rules`` (default: all) on the data as of ``at`` against the previous
        ``records``. ``now`` (default ``at``) is the time the state machine sees: a daemon
        replaying a past month still counts `for` in real time. ``by_rule``: ``records``
        by (group, rule), in their order, when the caller holds them so
        (``RecordIndex``); else grouped here. ``runs``: keep the changed records'
        moving fields as stepped (``Evaluation.moving``)."""
        matrices, period = self.matrices(dataset, at)
        now = now or at
        result = Evaluation(at, period, matrices, dict(records), evaluated_at=now,
                            runs=[] if runs else None)
        if by_rule is None:
            grouped: dict[tuple[str, str], list[AlertRecord]] = {}
            for record in records.values():
                grouped.setdefault((record.group, record.rule), []).append(record)
            by_rule = grouped
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
                       period: int, result: Evaluation, previous: Iterable[AlertRecord]) -> None:
        rule = loaded.rule
        ctx = conditions.Context(matrices, self.ruleset.peer_groups, dataset.milestones,
                                 at.date(), period, None, rule.on)
        if rule.indicator is None:
            leaves = [leaf for leaf in rule.when.leaves() if isinstance(leaf, Milestones)]
            labels_rows = conditions.milestone_labels(ctx, leaves[0])
            matrix = None
            data_period = None
        else:
            matrix = matrices.get(rule.indicator)
            if matrix is None:
                raise EvaluationError(f'indicator "{rule.indicator}" is not defined')
            labels_rows = matrix.labels
            end = matrix.last_column()
            data_period = matrix.grid.period(end) if end >= 0 else None
        alerts = self._alerts_of(loaded, labels_rows, matrix)
        extras = alerts.sync(previous, result.records)
        state = alerts.arrays.state
        prev_active = (state == PENDING) | (state == FIRING)
        if matrix is not None:
            was = prev_active.copy()
            for _, row in extras:
                if row is not None:
                    was[row] = True
            ctx.was_active = was
        outcome = self._judge(loaded, matrices, ctx, matrix)
        n = len(labels_rows)
        if len(outcome.active) == 0:
            outcome = conditions.Outcome(np.zeros(n, dtype=bool), np.ones(n, dtype=bool),
                                         np.full(n, np.nan))
        known, matched = outcome.known, outcome.active
        candidate = (matched | ~known) & alerts.matching() | prev_active
        arrays = alerts.arrays
        period_code = NO_PERIOD if data_period is None else data_period
        skip = np.zeros(n, dtype=bool)
        if rule.flapping is None:  # still firing on the same data: nothing new to say
            skip |= known & matched & (state == FIRING) & (arrays.last_period == period_code) \
                & (arrays.keep_firing_until == NO_TIME)
        active = matched & known
        if rule.no_data == "alerting":
            active |= ~known
        elif rule.no_data == "keep_state":
            active |= ~known & prev_active
            skip |= ~known & ~prev_active
        skip |= ~active & ~prev_active
        rows = np.flatnonzero(candidate & ~skip)
        view = _RuleView(self, loaded, outcome, matrix, data_period,
                         ", ".join(sorted(dataset.sources.get(rule.indicator, ())))
                         if rule.indicator else "")
        if rows.size:
            before = arrays.take(rows)
            stepped = step_many(before, active[rows], np.full(rows.size, period_code,
                                                              dtype=np.int32),
                                now, Policy(rule.for_, rule.keep_firing_for, rule.flapping))
            moved = stepped.arrays.differs(before)
            arrays.put(rows, stepped.arrays)
            seen = stepped.seen
            times = Times(now)
            changing: list[tuple[int, int, AlertRecord, float | None, str,
                                 dict[str, str]]] = []
            for k in np.flatnonzero(moved | (seen != SEEN_NOTHING)).tolist():
                i = int(rows[k])
                old = alerts.record(i)
                value, explanation, annotations = texts(
                    int(seen[k]), old, *view.observed(i, old.labels, seen[k] != SEEN_CLEARED))
                if not moved[k] and (value, explanation, annotations) == \
                        (old.value, old.explanation, old.annotations) and \
                        stepped.arrays.record(k, old, times, value=value,
                                              explanation=explanation,
                                              annotations=annotations) == old:
                    continue  # the record as it was: nothing moved, nothing new to say
                changing.append((k, i, old, value, explanation, annotations))
            if changing:  # made a column at a time (``make_records``), in the rows' order
                kept = np.array([c[0] for c in changing])
                arrays = stepped.arrays.take(kept)
                made = make_records(
                    arrays, times, [c[2].id for c in changing], [c[2].rule for c in changing],
                    [c[2].labels for c in changing], [c[2].group for c in changing],
                    [c[3] for c in changing], [c[4] for c in changing],
                    [c[5] for c in changing])
                if result.runs is not None:
                    result.runs.append((len(result.changed), made, arrays))
                result.changed.extend(made)
                for (k, i, *_), new in zip(changing, made, strict=True):
                    alerts.records[i] = new
                    result.records[new.id] = new
                    if stepped.moved[k]:
                        result.transitions.append(transition(
                            new, int(stepped.moved_from[k]), now, bool(stepped.notify[k])))
        policy = Policy(rule.for_, rule.keep_firing_for, rule.flapping)
        for record, row in extras:  # active alerts whose labels no longer name a series
            if row is not None:  # still there, no longer matching: resolve on its numbers
                # unknown: keep_state keeps it active, as alerting does
                on = bool(matched[row]) if known[row] else rule.no_data != "ok"
                if on and known[row] and record.state is AlertState.FIRING \
                        and record.last_period == data_period \
                        and record.keep_firing_until is None and rule.flapping is None:
                    continue
                value, explanation, _ = view.observed(row, record.labels, annotated=False)
                seen_now = Observation(on, value, explanation,
                                       view.annotations(row, record.labels, value, explanation),
                                       data_period)
            else:  # the series vanished: resolve (or drop a pending alert) with what is known
                seen_now = Observation(False, record.value, record.explanation,
                                       record.annotations, None)
            new, transitions = step_record(record, seen_now, now, policy)
            if row is None or new != record:
                result.records[new.id] = new
                result.changed.append(new)
            result.transitions.extend(transitions)

    def _judge(self, loaded: LoadedRule, matrices: Mapping[str, Matrix],
               ctx: conditions.Context, matrix: Matrix | None) -> conditions.Outcome:
        """Return the outcome of the rule's condition: the last one again when nothing it
        depends on changed (the same matrices, milestones, day, period and hysteresis
        state — a steady cycle), else a new evaluation."""
        key = (loaded.group, loaded.rule.alert)
        judged = self._outcomes.get(key)
        hysteresis = any(isinstance(leaf, Level) and (leaf.clear_above is not None
                                                      or leaf.clear_below is not None)
                         for leaf in loaded.rule.when.leaves())
        if judged is not None and judged.holds(matrices, ctx, hysteresis):
            return judged.outcome
        outcome = conditions.evaluate(loaded.rule.when, matrix, ctx)
        self._outcomes[key] = _Judged.of(matrices, ctx, outcome)
        return outcome

    def _alerts_of(self, loaded: LoadedRule, labels_rows: list[dict[str, str]],
                   matrix: Matrix | None) -> _RuleAlerts:
        """Return the rule's alerts, one row per series, kept while its series are the same."""
        key = (loaded.group, loaded.rule.alert)
        alerts = self._alerts.get(key)
        if alerts is None or alerts.loaded is not loaded or not alerts.same_series(labels_rows):
            alerts = _RuleAlerts(self, loaded, labels_rows, matrix)
            self._alerts[key] = alerts
        alerts.matrix = matrix
        return alerts

    def _on_error(self, loaded: LoadedRule, previous: Iterable[AlertRecord], error: str,
                  now: datetime, result: Evaluation) -> None:
        """Apply the rule's ``on_error`` policy: keep every alert as it is (keep_state),
        resolve them (ok), or fire one alert that says the rule is failing (alerting)."""
        rule = loaded.rule
        policy = Policy(rule.for_, rule.keep_firing_for, rule.flapping)
        if rule.on_error == "ok":
            for record in previous:
                if record.state in (AlertState.PENDING, AlertState.FIRING):
                    new, moves = step_record(record, Observation(False, record.value,
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
            new, moves = step_record(record, Observation(True, None, text, {"explanation": text},
                                                  None), now, policy)
            if new != record:
                result.records[key] = new
                result.changed.append(new)
            result.transitions.extend(moves)

    def _extra_labels(self, loaded: LoadedRule, matrix: Matrix | None) -> dict[str, str]:
        """Return the labels a rule's alerts carry over their series' labels: the
        indicator's, the rule's, ``alertname`` and ``severity`` (an alert's labels are a
        function of the rule and the series only)."""
        rule = loaded.rule
        labels: dict[str, str] = {}
        if matrix is not None:
            labels.update(matrix.indicator.labels)
            labels["indicator"] = matrix.indicator.id
        labels.update(rule.labels)
        labels["alertname"] = rule.alert
        labels["severity"] = rule.severity
        return labels

_BLOCK_ARRAYS = ("row", "period", "value", "denominator", "provisional", "revisions")


@dataclass
class _Pivot:
    """A block as pivoted onto a grid: reused while the same block (the same arrays)
    comes back for the same grid."""

    block: LongBlock | None
    grid: Grid
    arrays: tuple[Any, ...]
    labels: list[dict[str, str]]
    matrix: Matrix

    @classmethod
    def of(cls, block: LongBlock | None, grid: Grid, matrix: Matrix) -> _Pivot:
        arrays = tuple(getattr(block, name) for name in _BLOCK_ARRAYS) if block else ()
        for array in arrays:  # blocks are not changed in place (see LongBlock)
            if isinstance(array, np.ndarray):
                array.flags.writeable = False
        return cls(block, grid, arrays, list(block.labels) if block else [], matrix)

    def holds(self, block: LongBlock | None, grid: Grid) -> bool:
        if block is not self.block or grid != self.grid:
            return False
        if block is None:
            return True
        return all(getattr(block, name) is array
                   for name, array in zip(_BLOCK_ARRAYS, self.arrays, strict=True)) \
            and block.labels == self.labels


@dataclass
class _Judged:
    """A rule's last outcome and what it was computed from."""

    matrices: dict[str, Matrix]
    milestones: list[tuple[str, Milestone]]
    today: date
    at_period: int
    was_active: BoolArray | None
    outcome: conditions.Outcome

    @classmethod
    def of(cls, matrices: Mapping[str, Matrix], ctx: conditions.Context,
           outcome: conditions.Outcome) -> _Judged:
        was = None if ctx.was_active is None else ctx.was_active.copy()
        return cls(dict(matrices), list(ctx.milestones), ctx.today, ctx.at_period, was,
                   outcome)

    def holds(self, matrices: Mapping[str, Matrix], ctx: conditions.Context,
              hysteresis: bool) -> bool:
        """True when the outcome still stands; which alerts were active matters only to a
        condition with hysteresis (``clear_above``/``clear_below``)."""
        if ctx.today != self.today or ctx.at_period != self.at_period \
                or len(matrices) != len(self.matrices) \
                or any(self.matrices.get(k) is not m for k, m in matrices.items()):
            return False
        if list(ctx.milestones) != self.milestones:
            return False
        if not hysteresis:
            return True
        if ctx.was_active is None or self.was_active is None:
            return ctx.was_active is None and self.was_active is None
        return bool(np.array_equal(ctx.was_active, self.was_active))


class _RuleAlerts:
    """One rule's alerts, one row per series of its matrix, kept across cycles while the
    series stay the same: the moving state of each as arrays (``AlertArrays``), and the
    identity (labels, id) and last record only of the rows that hold a record — computed
    once per alert, not once per cycle."""

    def __init__(self, engine: Engine, loaded: LoadedRule, series: list[dict[str, str]],
                 matrix: Matrix | None) -> None:
        # The engine is not kept: it holds these rows, and a cycle of the two would
        # outlive a reload until the hourly full collection (monitor/memory.py).
        self.loaded = loaded
        self.series = series
        self.matrix = matrix
        self.arrays = AlertArrays.empty(len(series))
        self.identity = AlertIds(loaded.group, engine._extra_labels(loaded, matrix))
        self.ids: dict[int, str] = {}
        self.labels: dict[int, dict[str, str]] = {}
        self.slot: dict[str, int] = {}
        self.records: dict[int, AlertRecord] = {}
        self.synced: object | None = None  # the RuleRecords token last synced with
        self._matching: BoolArray | None = None
        if matrix is None:  # milestones: a handful of rows, every one named at once
            for row in range(len(series)):
                self.id(row)

    def same_series(self, series: list[dict[str, str]]) -> bool:
        if series is self.series:
            return True
        if series != self.series:
            return False
        self.series = series
        return True

    def id(self, row: int, like: AlertRecord | None = None) -> str:
        """Return the alert id of ``row`` (its labels and id made on first use; a stored
        record ``like`` with the same labels lends its id instead of hashing them)."""
        key = self.ids.get(row)
        if key is None:
            labels, key = self.identity.make(self.series[row])
            if like is not None and like.labels == labels:
                key = like.id
            self.ids[row] = key
            self.labels[row] = labels
            self.slot[key] = row
        return key

    def record(self, row: int) -> AlertRecord:
        """Return the row's last record, or a fresh one."""
        record = self.records.get(row)
        if record is None:
            key = self.id(row)
            record = AlertRecord(key, self.loaded.rule.alert, self.labels[row],
                                 group=self.loaded.group)
        return record

    def matching(self) -> BoolArray:
        """Rows whose series carry the rule's ``match`` labels."""
        if self._matching is None:
            match = self.loaded.rule.match
            self._matching = np.array([all(lab.get(k) == v for k, v in match.items())
                                       for lab in self.series], dtype=bool) if match \
                else np.ones(len(self.series), dtype=bool)
        return self._matching

    def sync(self, previous: Iterable[AlertRecord], current: Mapping[str, AlertRecord]
             ) -> list[tuple[AlertRecord, int | None]]:
        """Bring the rows in line with ``previous``, the rule's records the cycle starts
        from (only rows whose record is not the one kept are read again; rows whose
        record is gone are fresh again). Return the active records that name no row of
        this rule — a series gone, or labels the rule no longer gives — each with the row
        of its series, if any."""
        token = getattr(previous, "token", None)  # RuleRecords: unchanged while the same
        if token is not None and token is self.synced:
            return []  # the rows hold these records already: a steady cycle reads none
        extras: list[tuple[AlertRecord, int | None]] = []
        kept = 0
        for r in previous:
            row = self.slot.get(r.id)
            if row is None:
                row = self._place(r)
                if row is None:
                    if r.state in (AlertState.PENDING, AlertState.FIRING):
                        extras.append((r, self.matrix.row_of(r.labels)
                                       if self.matrix is not None else None))
                    continue
            if self.records.get(row) is not r:
                self.arrays.set_row(row, r)
                self.records[row] = r
            kept += 1
        if kept != len(self.records):
            live = {r.id for r in previous}
            fresh = AlertArrays.empty(1)
            for row in [row for row in self.records if self.ids[row] not in live]:
                del self.records[row]
                self.arrays.put(np.array([row]), fresh)
        self._forget_identities()
        # Any record this rule's step changes comes back with another token; extras are
        # stepped again every cycle, so a sync that found some is never skipped.
        self.synced = token if not extras else None
        return extras

    def _forget_identities(self) -> None:
        """Forget the labels and id of the rows that hold no record: a series whose alert
        was forgotten, or that was looked at without alerting. Kept, they would add up,
        over the weeks, to every series that ever alerted — a labels dict and an id for
        each, long-lived objects scattered over the allocator's arenas (the soak's
        growth, docs/reliability.md); made again, they cost one hash when it alerts."""
        if self.matrix is None or len(self.ids) == len(self.records):
            return  # milestones: a handful of rows, every one named at once
        for row in [row for row in self.ids if row not in self.records]:
            del self.slot[self.ids.pop(row)]
            del self.labels[row]

    def _place(self, r: AlertRecord) -> int | None:
        """Return the row of stored record ``r`` when its id is that row's, else None."""
        if self.matrix is None:
            return None
        row = self.matrix.row_of(r.labels)
        if row is None or self.id(row, like=r) != r.id:
            return None
        return row


class _RuleView:
    """What one evaluation of a rule says about a row, in words: its value, explanation
    and annotations — made only for the rows whose record changes."""

    def __init__(self, engine: Engine, loaded: LoadedRule, outcome: conditions.Outcome,
                 matrix: Matrix | None, data_period: int | None, sources: str) -> None:
        self.engine = engine
        self.loaded = loaded
        self.outcome = outcome
        self.matrix = matrix
        self.sources = sources
        self.period = period_text(matrix.indicator, data_period) \
            if matrix is not None and data_period is not None else None
        self.period_id = Frequency(matrix.indicator.frequency).label(data_period) \
            if matrix is not None and data_period is not None else ""
        self._values: list[Any] | None = None
        self._facts: list[tuple[str, Any, bool]] | None = None
        self._info: dict[str, Any] | None = None

    def observed(self, i: int, labels: dict[str, str], annotated: bool = True
                 ) -> tuple[float | None, str, dict[str, str]]:
        """Return the value, explanation and (when ``annotated``) annotations of row ``i``
        for an alert with ``labels``."""
        if self._values is None:
            self._values = self.outcome.value.tolist()
        v = self._values[i]
        value = None if v != v else float(v)
        explanation = _sentence(self.outcome.explain(i) if self.outcome.known[i]
                                else "no data to evaluate")
        if not annotated:
            return value, explanation, {}
        return value, explanation, self.annotations(i, labels, value, explanation)

    def annotations(self, i: int, labels: dict[str, str], value: float | None,
                    explanation: str) -> dict[str, str]:
        if self._facts is None:
            n = len(self.outcome.value)
            self._facts = []
            for name, fact in self.outcome.facts.items():
                if isinstance(fact, np.ndarray) and fact.ndim == 1 and len(fact) == n:
                    self._facts.append((name, fact.tolist(), True))
                elif not isinstance(fact, np.ndarray):
                    self._facts.append((name, fact, False))
            self._info = dict(indicator_info(self.matrix.indicator).__dict__) \
                if self.matrix is not None else {}
        out = {"explanation": explanation}
        if self.sources:  # which sources feed the indicator: the failing-source inhibition
            out["sources"] = self.sources
        if self.period is not None:  # the period the value is about
            out["period"] = self.period
            # …and the same as the series page's ?at= parameter and the history keep it
            out["period_id"] = self.period_id
        if self.matrix is not None:  # the series page: /indicators/{indicator}/series/{it}
            out["series"] = self.matrix.fingerprint(i)
        if value is not None and self.outcome.shown is not None:  # in its unit: 0.6%
            out["value_text"] = self.outcome.shown(value)
        templates = self.loaded.rule.annotations
        if not templates:
            return out
        context: dict[str, Any] = {
            "labels": {k: v for k, v in labels.items() if not k.startswith("__")},
            "value": value, "explanation": explanation}
        for name, fact, vector in self._facts:
            context[name] = fact[i] if vector else fact
        context["indicator"] = self._info
        for name, template in templates.items():
            try:
                out[name] = render(template, context)
            except Exception as exc:  # a bad template must not stop the alert
                out[name] = f"(template error: {exc})"
                self.engine.stats.setdefault((self.loaded.group, self.loaded.rule.alert),
                                             RuleStats()).template_errors += 1
                log.warning("annotation template failed", rule=self.loaded.rule.alert,
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
