"""What a cycle asks of every alert record, kept from one cycle to the next.

A cycle starts from the records the last one ended with: at 1,000,000 series about
1.6 million. Each question it asked of all of them — which are each rule's, which are
the source-health alerts, how many of each rule fire, which resolved long enough ago to
forget, how many a held rule keeps — was a pass in Python over every record, and a
steady cycle (no new data, nothing changing) was nothing but those passes (4 CPU-seconds
at 1M series). :class:`RecordIndex` answers them for one records mapping, and is carried
to the next cycle's mapping by applying that cycle's changes only: a cycle costs what
changed, not how many alerts there are.

It is made from scratch (one pass) for any mapping it was not carried to: at start-up,
after a reload or when the records were read again from the store. Records mappings are
never changed in place once a cycle has returned them (a cycle makes a new one), which
is what makes "the same mapping" a test of identity.
Nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping

from monitor.alerts.state import AlertRecord
from monitor.model import AlertState

HEALTH_GROUP = "monitor:source-health"  # the source-health alerts' group

_RESTING = (AlertState.RESOLVED, AlertState.INACTIVE)


def _resting(record: AlertRecord) -> bool:
    """True when ``record`` may be forgotten once old enough (``forgettable``)."""
    return record.state in _RESTING and not record.flapping and not record.history


class RuleRecords:
    """One rule's records, and a token that is another object whenever they change: an
    engine that synced its rows with these records, and changed none of them since,
    knows its rows are still theirs when the token is the one it synced with."""

    __slots__ = ("records", "token")

    def __init__(self, records: Iterable[AlertRecord], token: object) -> None:
        self.records = records
        self.token = token

    def __iter__(self) -> Iterator[AlertRecord]:
        return iter(self.records)


class RecordIndex:
    """The records of one mapping by rule, the source-health ones, the count of each
    rule's alerts per state, and those that may be forgotten once old enough."""

    def __init__(self, records: Mapping[str, AlertRecord]) -> None:
        self.records = records
        self.by_rule: dict[tuple[str, str], dict[str, AlertRecord]] = {}
        self.health: dict[str, AlertRecord] = {}
        self.counts: Counter[tuple[str, AlertState]] = Counter()
        self.resting: dict[str, AlertRecord] = {}
        self.tokens: dict[tuple[str, str], object] = {}  # per rule: see RuleRecords
        self._carrying: dict[str, AlertRecord] = {}  # put in by ``carry`` (by id)
        for key, record in records.items():
            self._add(key, record)

    def _add(self, key: str, record: AlertRecord) -> None:
        rule = (record.group, record.rule)
        self.by_rule.setdefault(rule, {})[key] = record
        self.tokens[rule] = object()
        if record.group == HEALTH_GROUP:
            self.health[key] = record
        self.counts[(record.rule, record.state)] += 1
        if _resting(record):
            self.resting[key] = record

    def _drop(self, key: str, record: AlertRecord) -> None:
        rule = (record.group, record.rule)
        mine = self.by_rule.get(rule, {})
        if mine.pop(key, None) is None:
            return
        self.tokens[rule] = object()
        if not mine:
            del self.by_rule[rule]
            del self.tokens[rule]
        self.health.pop(key, None)
        self.counts[(record.rule, record.state)] -= 1
        self.resting.pop(key, None)

    def rule(self, group: str, name: str) -> Iterable[AlertRecord]:
        """The records of rule ``name`` of ``group``, in the mapping's order."""
        mine = self.by_rule.get((group, name))
        return mine.values() if mine is not None else ()

    def grouped(self) -> dict[tuple[str, str], RuleRecords]:
        """Every rule's records, by (group, rule), each with its token."""
        return {rule: RuleRecords(mine.values(), self.tokens[rule])
                for rule, mine in self.by_rule.items()}

    def carried(self, records: Mapping[str, AlertRecord], changed: Iterable[AlertRecord],
                removed: Iterable[str]) -> RecordIndex:
        """Return the index of ``records``: this index's records with ``changed`` put in
        (in order, after any ``carry`` put in before) and ``removed`` taken out. This
        index is used up.

        The order within a rule stays the mapping's: a record that changes keeps its
        place, a new one comes last (as ``dict.update`` orders them)."""
        self.carry(changed)
        now = self._carrying
        before = self.records
        for key in removed:
            old = now.pop(key, None) or before.get(key)
            if old is not None:
                self._drop(key, old)
        self.records = records
        self._carrying = {}
        return self

    def carry(self, changed: Iterable[AlertRecord]) -> None:
        """Put ``changed`` in, ahead of the ``carried`` that ends the carry: a cycle's
        changes as they arrive, part by part (the distributed engine's partitions, in
        partition order: within a rule, the order the merged changes have). Until then
        the index is of no mapping (``records`` is the one it was carried from).
        Those replacing a record of their rule go in first (``carry_held``: their order
        does not matter), the others in their order."""
        before = self.records
        now = self._carrying
        for record in self.carry_held(changed):
            key = record.id
            old = now.get(key) or before.get(key)
            now[key] = record
            if old is not None and old.group == record.group and old.rule == record.rule:
                self._replace(key, old, record)  # the same id twice: the later one
            else:
                if old is not None:
                    self._drop(key, old)
                self._add(key, record)

    def carry_held(self, changed: Iterable[AlertRecord]) -> list[AlertRecord]:
        """Put in those of ``changed`` that replace a record of the same rule (in their
        places: the order they come in does not matter) and return the others, to be put
        in by ``carry`` in their turn: a partition's records that arrive before those of
        the partitions ahead of it."""
        before = self.records
        now = self._carrying
        rest = []
        for record in changed:
            key = record.id
            old = now.get(key) or before.get(key)
            if old is not None and old.group == record.group and old.rule == record.rule:
                now[key] = record
                self._replace(key, old, record)
            else:
                rest.append(record)
        return rest

    def _replace(self, key: str, old: AlertRecord, new: AlertRecord) -> None:
        """Put ``new`` in the place of ``old`` (same id and rule): its rule's order kept."""
        rule = (new.group, new.rule)
        self.by_rule[rule][key] = new
        self.tokens[rule] = object()
        if new.group == HEALTH_GROUP:
            self.health[key] = new
        if old.state is not new.state:
            self.counts[(old.rule, old.state)] -= 1
            self.counts[(new.rule, new.state)] += 1
        if _resting(new):
            self.resting[key] = new
        else:
            self.resting.pop(key, None)
