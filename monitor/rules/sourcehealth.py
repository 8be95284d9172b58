"""Built-in source-health alerts, and holding the KPI alerts of a source that is down.

Every evaluation judges each enabled source from its stored health (pure):

- ``SourceFailing``: its last ``FAILING_AFTER`` polls in a row failed;
- ``SourceStale``: its last successful poll is older than ``STALE_PERIODS`` polling
  periods (the interval, or the gap between two cron runs) and its latest poll failed
  too — a daemon that was merely stopped for a while is not a stale source.

Both are ordinary alert records (labels ``alertname``, ``source``, ``severity``) stepped
by the same state machine and saved with the rule alerts, so they are notified, shown
by the API and survive restarts. While either is active, every rule that reads an
indicator fed by that source is *held* (:func:`held_rules`): the evaluation cycle does
not step it, so its alerts neither fire nor resolve on data that is no longer being
refreshed — decided before stepping, nothing is undone afterwards. The notifier's
``inhibit_by_failing_source`` rule keeps their repeats out of messages (it reads the
``sources`` annotation). Recovery is automatic: the next successful poll ends both
alerts, and the next evaluation moves the held alerts on from fresh data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from monitor import logs
from monitor.alerts.state import AlertRecord, Observation, Policy, Transition, step_record
from monitor.configtypes import format_duration
from monitor.model import AlertState, alert_id
from monitor.rules.engine import Evaluation
from monitor.rules.loader import LoadedRule, RuleSet
from monitor.rules.recordindex import HEALTH_GROUP
from monitor.rules.schema import Milestones
from monitor.sources.config import SourceBase, cron_trigger
from monitor.store.sourcestate import SourceHealth

GROUP = HEALTH_GROUP
STALE = "SourceStale"
FAILING = "SourceFailing"
FAILING_AFTER = 3  # consecutive failed polls
STALE_PERIODS = 3  # polling periods without a successful poll
SEVERITY = "warning"
ACTIVE = (AlertState.PENDING, AlertState.FIRING)


@dataclass(frozen=True)
class Verdict:
    """What one source's health means at ``now``: whether it is stale, failing, and why."""

    source: str
    stale: bool
    failing: bool
    stale_text: str = ""
    failing_text: str = ""
    age: float | None = None  # seconds since the last successful poll
    failures: int = 0


@dataclass
class HealthResult:
    """The source-health alerts after one evaluation and the sources judged unhealthy."""

    records: dict[str, AlertRecord]
    changed: list[AlertRecord] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    unhealthy: frozenset[str] = frozenset()


def indicator_sources(ruleset: RuleSet, by_source: Mapping[str, Sequence[str]]
                      ) -> dict[str, frozenset[str]]:
    """Return the sources feeding each indicator of ``ruleset`` — for a derived
    indicator, every source feeding its inputs. Indicators fed by none are left out."""
    fed: dict[str, set[str]] = {}
    for source, indicators in by_source.items():
        for indicator in indicators:
            fed.setdefault(indicator, set()).add(source)
    memo: dict[str, frozenset[str]] = {}

    def sources_of(name: str, seen: frozenset[str]) -> frozenset[str]:
        if name in memo:
            return memo[name]
        indicator = ruleset.indicators.get(name)
        if indicator is None or indicator.derived is None:
            found = frozenset(fed.get(name, ()))
        elif name in seen:  # a cycle: the loader reports it; feed nothing here
            found = frozenset()
        else:
            found = frozenset().union(*(sources_of(child, seen | {name})
                                        for child in indicator.derived.inputs))
        memo[name] = found
        return found

    out: dict[str, frozenset[str]] = {}
    for name in ruleset.indicators:
        found = sources_of(name, frozenset())
        if found:
            out[name] = found
    return out


def rule_sources(loaded: LoadedRule, feeding: Mapping[str, frozenset[str]],
                 milestone_sources: Sequence[str] = ()) -> frozenset[str]:
    """Return the sources whose data ``loaded`` reads: those feeding its indicator and
    every indicator its condition names, and for a milestone rule its milestone
    sources."""
    rule = loaded.rule
    names = {rule.indicator} if rule.indicator else set()
    found: set[str] = set()
    for leaf in rule.when.leaves():
        other = getattr(leaf, "indicator", None)
        if other:
            names.add(other)
        if isinstance(leaf, Milestones):
            found.update(s for s in milestone_sources if leaf.source in (None, s))
    for name in names:
        found.update(feeding.get(name, ()))
    return frozenset(found)


def held_rules(rules: Sequence[LoadedRule], feeding: Mapping[str, frozenset[str]],
               unhealthy: frozenset[str], milestone_sources: Sequence[str] = ()
               ) -> set[tuple[str, str]]:
    """Return the (group, alertname) of every rule that reads a source in ``unhealthy``:
    the cycle holds them — their alerts keep their state until the source recovers."""
    if not unhealthy:
        return set()
    return {(r.group, r.rule.alert) for r in rules
            if rule_sources(r, feeding, milestone_sources) & unhealthy}


def polling_period(config: SourceBase, after: datetime) -> float:
    """Return the seconds between two scheduled polls of ``config`` around ``after``: the
    interval, or for a cron schedule the gap between its next two runs."""
    if config.cron is None:
        return config.every
    trigger = cron_trigger(config.cron)
    first = trigger.get_next_fire_time(None, after)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1)) if first else None
    if first is None or second is None:
        return config.every
    return float((second - first).total_seconds())


def judge(config: SourceBase, health: SourceHealth | None, now: datetime) -> Verdict:
    """Return the verdict on one source from its stored ``health`` (None: never polled)."""
    name = config.name
    if health is None:
        return Verdict(name, False, False)
    failures = health.consecutive_failures
    error = logs.redact(health.last_error)
    failing = failures >= FAILING_AFTER
    failing_text = (f'Source "{name}" failed its last {failures} polls; the last error: '
                    f"{error}") if failing else ""
    age = None
    stale = False
    stale_text = ""
    if health.last_success_at is not None:
        age = max(0.0, (now - health.last_success_at).total_seconds())
        period = polling_period(config, health.last_success_at)
        limit = STALE_PERIODS * period
        stale = failures >= 1 and age > limit
        if stale:
            stale_text = (f'Source "{name}" has not been read successfully for '
                          f"{format_duration(round(age))} (since "
                          f"{health.last_success_at.isoformat(timespec='seconds')}; more than "
                          f"{STALE_PERIODS} polling periods of {format_duration(period)}); "
                          f"its KPI alerts are held until it recovers. The last error: {error}")
    return Verdict(name, stale, failing, stale_text, failing_text, age, failures)


def health_labels(alertname: str, source: str) -> dict[str, str]:
    return {"alertname": alertname, "source": source, "severity": SEVERITY}


def is_health_record(record: AlertRecord) -> bool:
    return record.group == GROUP


def health_records(records: Mapping[str, AlertRecord]) -> dict[str, AlertRecord]:
    """Return the source-health alerts among ``records`` (kept across a rule reload)."""
    return {k: r for k, r in records.items() if is_health_record(r)}


def evaluate_health(configs: Sequence[SourceBase], healths: Iterable[SourceHealth],
                    records: Mapping[str, AlertRecord], now: datetime) -> HealthResult:
    """Step every source-health alert at ``now``; return the new records and transitions.

    Alerts of sources no longer configured (or disabled) see "not active" and resolve.
    """
    by_name = {h.source: h for h in healths}
    verdicts = [judge(c, by_name.get(c.name), now) for c in configs if c.enabled]
    out = HealthResult(dict(records))
    seen: set[str] = set()
    unhealthy: set[str] = set()
    for verdict in verdicts:
        for alertname, active, text, value in (
                (STALE, verdict.stale, verdict.stale_text,
                 None if verdict.age is None else round(verdict.age / 3600, 3)),
                (FAILING, verdict.failing, verdict.failing_text, float(verdict.failures))):
            labels = health_labels(alertname, verdict.source)
            key = alert_id(GROUP, labels)
            seen.add(key)
            _step(out, key, alertname, labels, active, value, text, now)
            if out.records.get(key) is not None and out.records[key].state in ACTIVE:
                unhealthy.add(verdict.source)
    for key, record in records.items():
        if is_health_record(record) and key not in seen and record.state in ACTIVE:
            _step(out, key, record.rule, record.labels, False, record.value,
                  record.explanation, now)
    out.unhealthy = frozenset(unhealthy)
    return out


def _step(out: HealthResult, key: str, alertname: str, labels: dict[str, str],
          active: bool, value: float | None, text: str, now: datetime) -> None:
    record = out.records.get(key)
    if record is None:
        if not active:
            return
        record = AlertRecord(key, alertname, labels, group=GROUP)
    explanation = text or f'Source "{labels["source"]}" is read successfully again.'
    new, transitions = step_record(record, Observation(active, value, explanation,
                                                       {"summary": explanation}, None), now,
                                  Policy())
    if new != record:
        out.records[key] = new
        out.changed.append(new)
    out.transitions.extend(transitions)


def merge(result: Evaluation, health: HealthResult) -> Evaluation:
    """Return ``result`` with the source-health alerts' records and transitions added
    (``result`` holds every record the cycle started from: only the changed ones are
    put in, and the records are not copied when none changed)."""
    records = result.records
    if health.changed:
        records = dict(records)
        records.update((r.id, r) for r in health.changed)
    return replace(result, records=records, changed=[*result.changed, *health.changed],
                   transitions=[*result.transitions, *health.transitions])
