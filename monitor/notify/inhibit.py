"""Inhibition: a firing *source* alert mutes *target* alerts that share its ``equal`` labels.

Alertmanager's semantics, including its one subtlety: an alert that matches both the
source and the target matchers cannot inhibit another alert that also matches both, so
two instances of one rule never mute each other.

The default rule ``inhibit_by_failing_source`` mutes every alert fed by a data source
that is itself alerting as stale or failing — a KPI alert names the sources feeding
its indicator in its ``sources`` annotation (not a label: which sources feed an
indicator is not part of an alert's identity), a milestone alert its ``source`` label.
When the data stops, people hear about the source, not about every indicator it feeds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.matchers import AnyOf, MatcherSet
from monitor.notify.config import NotifyConfig
from monitor.notify.notification import NotifyAlert

SOURCE_HEALTH_ALERTS = "SourceStale|SourceFailing"


@dataclass(frozen=True)
class InhibitRule:
    """One compiled inhibition rule."""

    source: MatcherSet
    target: MatcherSet
    equal: tuple[str, ...]
    name: str = ""
    # The failing-source rule only: a target also matches when its annotation of this
    # name lists the source alert's ``equal`` value among its comma-separated values.
    listed_in: str | None = None

    def keys(self, alert: NotifyAlert) -> list[tuple[str, ...]]:
        """Return the ``equal`` values by which ``alert`` is looked up as a target."""
        keys = [tuple(alert.labels.get(name, "") for name in self.equal)]
        listed = alert.annotations.get(self.listed_in, "") if self.listed_in else ""
        keys.extend((item.strip(),) for item in listed.split(",") if item.strip())
        return keys


def rules_from_config(config: NotifyConfig) -> list[InhibitRule]:
    """Return the configured rules, plus the failing-source rule when enabled."""
    rules = [InhibitRule(MatcherSet.parse(r.source_matchers), MatcherSet.parse(r.target_matchers),
                         tuple(r.equal), name=f"inhibit_rules[{i}]")
             for i, r in enumerate(config.inhibit_rules)]
    if config.inhibit_by_failing_source:
        rules.append(failing_source_rule())
    return rules


def failing_source_rule() -> InhibitRule:
    """Return the rule by which a stale or failing source mutes the alerts it feeds."""
    return InhibitRule(
        source=MatcherSet.parse([f'alertname=~"{SOURCE_HEALTH_ALERTS}"']),
        target=MatcherSet.parse([f'alertname!~"{SOURCE_HEALTH_ALERTS}"']),
        equal=("source",),
        name="inhibit_by_failing_source",
        listed_in="sources",
    )


def inhibited(alerts: Sequence[NotifyAlert], rules: Sequence[InhibitRule]) -> dict[str, str]:
    """Return ``{alert_id: reason}`` for every alert some firing source alert inhibits."""
    return {k: reason for k, (reason, _) in inhibitors(alerts, rules).items()}


def inhibitors(alerts: Sequence[NotifyAlert], rules: Sequence[InhibitRule]
               ) -> dict[str, tuple[str, str]]:
    """Return ``{alert_id: (reason, source alert id)}`` for every inhibited alert.

    Steps, per rule: 1. index the firing alerts that match the source matchers by their
    ``equal`` label values; 2. for each alert matching the target matchers, look up
    the same values; 3. it is inhibited by any indexed source that is not itself and
    is not excluded by the two-sided rule.
    """
    out: dict[str, tuple[str, str]] = {}
    for rule in rules:
        # Asked of every alert: answered once per value of the labels the matchers read.
        is_source, is_target = AnyOf([rule.source]), AnyOf([rule.target])
        sources: dict[tuple[str, ...], list[tuple[NotifyAlert, bool]]] = defaultdict(list)
        for alert in alerts:
            if alert.firing and is_source(alert.labels):
                key = tuple(alert.labels.get(name, "") for name in rule.equal)
                sources[key].append((alert, is_target(alert.labels)))
        if not sources:
            continue
        for alert in alerts:
            if alert.alert_id in out or not is_target(alert.labels):
                continue
            two_sided = is_source(alert.labels)
            found = [s for key in rule.keys(alert) for s in sources.get(key, ())]
            for source, source_is_target in found:
                if source.alert_id == alert.alert_id or (two_sided and source_is_target):
                    continue
                equal = ", ".join(f"{n}={source.labels.get(n, '')}" for n in rule.equal)
                out[alert.alert_id] = (f"inhibited by {source.name} ({rule.name}"
                                       + (f"; {equal}" if equal else "") + ")",
                                       source.alert_id)
                break
    return out
