"""Partitions of the series space, and the inputs that cross them.

A rule set is cut into ``n`` partitions by a *key*: label names every join of the rule
files matches on (a rule's ``on:``, a derived indicator's ``on:``). Two series a
condition or a derivation puts side by side agree on the key, so they are always in the
same partition and a composite condition never needs two. Nothing here does I/O.

How a series finds its partition (:meth:`Plan.partition_of`):

1. take the values of the key labels (an absent label is the empty string);
2. a series whose key names a member of a peer group goes where the whole group goes
   (its ranking is computed in one partition, on every member);
3. any other series goes to the partition of ``crc32(values)`` — the same in every
   process. A series' position (``crc32``, or its group's) is what the store keeps per
   series under the stored key (``store/partkey.py``); partition ``i`` of ``n`` is the
   range of positions whose ``position * n >> 32`` is ``i``, so a worker reads its
   partition as an index range (``store/partitions.py``).

Cross-partition inputs are ``total`` indicators whose ``by`` labels do not hold the key
(London over every borough). They are the recording rules of Mimir's and Thanos's
rulers: computed once per cycle and *written back* as a series every partition reads.
The order of a cycle is explicit (:meth:`Plan.stages`):

1. each stage's totals: every partition adds up its own series (:func:`partial_total`),
   the coordinator adds the partial sums up (:func:`combine_totals`) — a later stage's
   totals may read an earlier stage's;
2. the written-back totals become plain stored series in every partition's rule set
   (:meth:`Plan.partition_ruleset`), and each partition evaluates its rules;
3. each alert is kept from the one partition that owns it (the partition of its
   labels), and the coordinator persists them all at once.

A rule set whose joins leave no key (a join on no label, or a peer group ranked on a
label the key does not hold) gets one partition and a ``reason`` that says why and what
to change; ``[engine] partition_by`` names the key when no join does.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from monitor.rules.data import Block, BoolArray, FloatArray, Matrix, group_sums
from monitor.rules.engine import derive_order
from monitor.rules.loader import LoadedRule, RuleSet
from monitor.rules.schema import Condition
from monitor.store.partkey import POSITIONS, SEP, PartitionKey, partition_of


@dataclass(frozen=True)
class Plan:
    """How one rule set is partitioned: the key, the count and the written-back totals."""

    key: tuple[str, ...]
    partitions: int
    stages: tuple[tuple[str, ...], ...] = ()  # cross-partition totals, in order
    reason: str = ""  # why there is one partition when more were asked for
    peers: Mapping[str, int] = field(default_factory=dict)  # member value -> position
    whole: frozenset[str] = frozenset()  # written back, or derived from those alone

    @property
    def written_back(self) -> list[str]:
        return [name for stage in self.stages for name in stage]

    def partition_of(self, labels: Mapping[str, str]) -> int:
        """Return the partition of a series (or of an alert, by its labels)."""
        return self.partition_of_key([labels.get(name, "") for name in self.key])

    def partition_of_key(self, values: Sequence[str]) -> int:
        """Return the partition of a series whose key labels have ``values`` (in the
        key's order; an absent label is the empty string)."""
        if self.partitions <= 1:
            return 0
        return partition_of(self.partition_key.position(values), self.partitions)

    @property
    def partition_key(self) -> PartitionKey:
        """Return the key the store positions series by (and reads a partition with)."""
        return PartitionKey(self.key, self.peers)

    def partition_ruleset(self, ruleset: RuleSet, stages: int | None = None) -> RuleSet:
        """Return ``ruleset`` with the written-back totals of the first ``stages`` stages
        (default: all) stored (base) indicators: a partition reads them, the coordinator
        computed them."""
        back = {name for stage in self.stages[:stages] for name in stage}
        if not back:
            return ruleset
        indicators = {name: (ind.model_copy(update={"derived": None}) if name in back
                             else ind) for name, ind in ruleset.indicators.items()}
        return replace(ruleset, indicators=indicators)


def _totals(ruleset: RuleSet) -> set[str]:
    """Return the indicators computed from a ``total`` alone (a total, or derived only
    from totals): joins with them do not name the key."""
    out: set[str] = set()
    for name in derive_order(ruleset):
        spec = ruleset.indicators[name].derived
        if spec is None:
            continue
        if spec.total is not None or all(i in out for i in spec.inputs):
            out.add(name)
    return out


def _leaf_indicators(condition: Condition) -> list[str]:
    return [name for leaf in condition.leaves()
            if (name := getattr(leaf, "indicator", None)) is not None]


def _joins(ruleset: RuleSet, totals: set[str]
           ) -> list[tuple[str, list[str] | None, str]]:
    """Return every join between partitioned series: (where, its ``on`` labels, other)."""
    out: list[tuple[str, list[str] | None, str]] = []
    for loaded in ruleset.rules:
        rule = loaded.rule
        for other in _leaf_indicators(rule.when):
            if other != rule.indicator and other not in totals:
                out.append((_where(loaded), rule.on, other))
    for name, ind in ruleset.indicators.items():
        spec = ind.derived
        if spec is None or spec.total is not None:
            continue
        # Its series are keyed by its `on` labels: with any partitioned input, they must
        # hold the key, or one derived series would add up several partitions' series.
        partitioned = [i for i in spec.inputs if i not in totals]
        if partitioned:
            out.append((f'derived indicator "{name}"', spec.on, ", ".join(partitioned)))
    return out


def _where(loaded: LoadedRule) -> str:
    return f"{loaded.file}:{loaded.line}: rule {loaded.rule.alert}"


def plan(ruleset: RuleSet, partitions: int, partition_by: Sequence[str] = ()) -> Plan:
    """Return how to cut ``ruleset`` into ``partitions``.

    The key is ``partition_by`` when given, else the labels every join's ``on:`` names.
    One partition, with the reason, when no key keeps each join and peer group whole.
    """
    if partitions <= 1:
        return Plan((), 1)
    totals = _totals(ruleset)
    joins = _joins(ruleset, totals)
    named = [set(on) for _where_, on, _other in joins if on is not None]
    if partition_by:
        key = tuple(partition_by)
    elif named:
        key = tuple(sorted(set.intersection(*named)))
    else:
        return Plan((), 1, reason="no rule or derived indicator joins on a label (`on:`); "
                    "name the labels to partition on in [engine] partition_by")
    if not key:
        return Plan((), 1, reason="the joins' `on:` lists share no label; partition_by "
                    "needs a label every join matches on")
    peers: dict[str, int] = {}
    for number, (gid, group) in enumerate(sorted(ruleset.peer_groups.items())):
        ranked = any(i.peer_group == gid for i in ruleset.indicators.values())
        if not ranked:
            continue
        if group.label not in key:
            return Plan((), 1, reason=f'peer group "{gid}" ranks on the label '
                        f'"{group.label}", which is not in the partition key {list(key)}')
        for member in group.members:
            peers.setdefault(member, (zlib.crc32(f"peer{SEP}{gid}".encode()) + number)
                             % POSITIONS)
    stages, whole = _stages(ruleset, set(key))
    for where, on, other in _joins(ruleset, whole):  # a total kept local joins like any
        if on is not None and not set(key) <= set(on):
            return Plan((), 1, reason=f"{where} joins {other} on {on}, which does not hold "
                        f"the partition key {list(key)}; add them to its `on:`")
    return Plan(key, partitions, stages, peers=peers, whole=frozenset(whole))


def _stages(ruleset: RuleSet, key: set[str]
            ) -> tuple[tuple[tuple[str, ...], ...], set[str]]:
    """Return the cross-partition totals in the order they are computed (a stage's totals
    read only stored series and earlier stages' totals), and every indicator that is
    whole in every partition (those totals and what is derived from them alone)."""
    whole: set[str] = set()  # written back, or derived from them: whole in every partition
    stage_of: dict[str, int] = {}  # written-back total -> its stage
    after: dict[str, int] = {}  # indicator -> stages that must be done before it exists
    for name in derive_order(ruleset):
        spec = ruleset.indicators[name].derived
        inputs = [i for i in spec.inputs if i in ruleset.indicators] if spec else []
        ready = max((after.get(i, 0) for i in inputs), default=0)
        after[name] = ready
        if spec is None or not inputs:
            continue
        if spec.total is not None and inputs[0] not in whole and not key <= set(spec.by):
            stage_of[name] = ready
            after[name] = ready + 1
            whole.add(name)
        elif all(i in whole for i in inputs):
            whole.add(name)
    levels = sorted(set(stage_of.values()))
    return tuple(tuple(n for n in stage_of if stage_of[n] == level) for level in levels), whole


# --- the written-back totals ----------------------------------------------------------


@dataclass
class PartialTotal:
    """One partition's share of a total: its groups' sums, before they are added up."""

    labels: list[dict[str, str]]
    start: int  # the grid's first period
    values: FloatArray  # sum of members (0 before a member's first observation)
    covered: BoolArray  # some member had started
    denominators: FloatArray | None
    provisional: BoolArray


def partial_total(m: Matrix, by: Sequence[str]) -> PartialTotal:
    """Return the sums ``data.group_total`` would make of ``m``'s series, with the
    coverage kept apart so partitions' shares add up to the same total."""
    sums = group_sums(m, by)
    return PartialTotal(sums.labels, m.grid.start, sums.values, sums.covered,
                        sums.denominators, sums.provisional)


def combine_totals(parts: Sequence[PartialTotal]) -> Block:
    """Add the partitions' shares up into the total, as a stored block every partition
    reads. Integer counts add up exactly; other values may differ from one process's sum
    in the last bits (the order of the additions differs)."""
    rows: dict[tuple[tuple[str, str], ...], int] = {}
    for part in parts:
        for lab in part.labels:
            rows.setdefault(tuple(sorted(lab.items())), len(rows))
    t = max((p.values.shape[1] for p in parts), default=0)
    g = len(rows)
    values = np.zeros((g, t))
    covered = np.zeros((g, t), dtype=bool)
    provisional = np.zeros((g, t), dtype=bool)
    has_den = any(p.denominators is not None for p in parts)
    dens = np.zeros((g, t)) if has_den else None
    for part in parts:
        at = np.array([rows[tuple(sorted(lab.items()))] for lab in part.labels],
                      dtype=np.int64)
        if not at.size:
            continue
        values[at] += part.values
        covered[at] |= part.covered
        provisional[at] |= part.provisional
        if dens is not None:
            dens[at] += part.denominators if part.denominators is not None else np.nan
    values[~covered] = np.nan
    if dens is not None:
        dens[~covered] = np.nan
    start = parts[0].start if parts else 0
    r, c = np.nonzero(covered)
    return Block(labels=[dict(key) for key in rows], row=r, period=c + start,
                 value=values[r, c],
                 denominator=dens[r, c] if dens is not None else np.full(r.size, np.nan),
                 provisional=provisional[r, c], revisions=np.zeros(r.size, dtype=np.int64))
