"""The records index a cycle carries to the next (``RecordIndex``) must say what an index
made from scratch of the same records says: each rule's records in the mapping's order,
the source-health ones, the count per rule and state, those that may be forgotten. A
wrong carry would show as a rule's alerts stepped from stale records, a firing count on
the Rules page that is off, or a resolved alert never forgotten."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.state import AlertRecord
from monitor.model import AlertState
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.engine import month_end
from monitor.rules.loader import load_rules
from monitor.rules.recordindex import HEALTH_GROUP, RecordIndex
from monitor.rules.sourcehealth import GROUP

T0 = datetime(2026, 1, 1, tzinfo=UTC)
IDS = [f"id{k}" for k in range(12)]
RULES = [("g", "A"), ("g", "B"), ("h", "A"), (HEALTH_GROUP, "SourceStale")]

# An alert's id is made from its group and labels (alertname among them): one id, one
# rule, whatever state it is in.
record = st.builds(
    lambda k, state, flapping, history: AlertRecord(
        IDS[k], RULES[k % 4][1], {"alertname": RULES[k % 4][1], "k": str(k)},
        group=RULES[k % 4][0], state=state, flapping=flapping, history=history),
    st.integers(0, len(IDS) - 1), st.sampled_from(list(AlertState)), st.booleans(),
    st.sampled_from(["", "101"]))


def view(index: RecordIndex) -> tuple[object, ...]:
    return ({rule: list(index.rule(*rule)) for rule in index.by_rule},
            list(index.health.items()), +index.counts, index.resting)


def test_the_health_group_is_the_source_health_alerts_group() -> None:
    assert HEALTH_GROUP == GROUP


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=10),
       st.lists(st.tuples(st.lists(record, max_size=6),
                          st.lists(st.sampled_from(IDS), max_size=4)), max_size=6))
def test_an_index_carried_from_cycle_to_cycle_is_the_index_made_anew(
        start: list[AlertRecord], cycles: list[tuple[list[AlertRecord], list[str]]]) -> None:
    records = {r.id: r for r in start}
    index = RecordIndex(records)
    for changed, removed in cycles:
        # as a cycle makes them: the records with the changed ones put in, then the
        # forgotten ones taken out
        after = dict(records)
        after.update((r.id, r) for r in changed)
        gone = sorted({key for key in removed if key in after})
        after = {k: r for k, r in after.items() if k not in gone}
        index = index.carried(after, changed, gone)
        fresh = RecordIndex(after)
        assert view(index) == view(fresh)
        assert index.records is after
        records = after


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=10), st.lists(record, max_size=10),
       st.lists(st.sampled_from(IDS), max_size=4))
def test_an_index_carried_partition_by_partition_is_the_index_of_the_merged_records(
        start: list[AlertRecord], changed: list[AlertRecord], removed: list[str]) -> None:
    # The distributed engine puts each partition's records in as they arrive (an alert
    # is one partition's): those replacing a held one at once, the new ones in partition
    # order. The cycle's changes are those merged in the rules' order (stable: within a
    # rule, partition by partition).
    records = {r.id: r for r in start}
    parts = [[r for r in changed if IDS.index(r.id) // 4 % 2 == p] for p in (0, 1)]
    rank = {rule: k for k, rule in enumerate(RULES)}
    merged = sorted(parts[0] + parts[1], key=lambda r: rank[(r.group, r.rule)])
    after = dict(records)
    after.update((r.id, r) for r in merged)
    gone = sorted({key for key in removed if key in after})
    after = {k: r for k, r in after.items() if k not in gone}
    index = RecordIndex(records)
    rest = index.carry_held(parts[1])  # the second partition's arrive first
    index.carry(parts[0])
    index.carry(rest)
    index = index.carried(after, (), gone)
    assert view(index) == view(RecordIndex(after))
    assert view(RecordIndex(records).carried(after, merged, gone)) == view(index)


RULE_FILE = """
indicators:
  - {id: burglary, name: Burglary, direction: down}
groups:
  - name: g
    rules:
      - {alert: High, indicator: burglary, when: {level: {above: 1200}}}
      - {alert: Slow, indicator: burglary, when: {level: {above: 1190}}, for: 3 evaluations}
"""


def test_the_rules_page_counts_what_the_records_say_cycle_after_cycle(tmp_path: Path
                                                                      ) -> None:
    import numpy as np

    from monitor.rules.data import Block
    from monitor.rules.engine import Dataset

    path = tmp_path / "rules.yaml"
    path.write_text(RULE_FILE)
    evaluator = Evaluator(load_rules([path]))
    end = 24204
    records: dict[str, AlertRecord] = {}
    forgotten = 0
    states: set[tuple[str, AlertState]] = set()
    for step in range(8):
        rng = np.random.default_rng(step)
        values = rng.poisson(100, size=(40, 12)).astype(float)
        block = Block([{"area": f"a{i}"} for i in range(40)], np.repeat(np.arange(40), 12),
                      np.tile(np.arange(end - 11, end + 1), 40), values.ravel(),
                      np.full(480, np.nan), np.zeros(480, dtype=bool),
                      np.zeros(480, dtype=np.int64))
        at = month_end(end)
        # a day apart: resolved alerts are forgotten after the retention
        result = evaluator.run(Dataset({"burglary": block}), records,
                               Cycle(at=at, now=at + timedelta(days=step), retention=3600.0))
        records = result.records
        forgotten += len(result.removed)
        counts = Counter((r.rule, r.state) for r in records.values())
        for rule in evaluator.publish(result).snapshot.rules:
            assert (rule.alerts_firing, rule.alerts_pending) == (
                counts[(rule.name, AlertState.FIRING)], counts[(rule.name, AlertState.PENDING)])
        states |= set(counts)
        assert not any(r.state is AlertState.RESOLVED and r.resolved_at is not None
                       and r.resolved_at < at + timedelta(days=step, hours=-1)
                       for r in records.values())
    assert forgotten  # some were forgotten on the way
    assert {("High", AlertState.FIRING), ("Slow", AlertState.PENDING),
            ("Slow", AlertState.FIRING)} <= states


def test_an_alert_under_a_rules_old_labels_still_resolves_after_steady_cycles(
        tmp_path: Path) -> None:
    """A reload gave the rule another severity: its alerts under the old labels name no
    row of the rule any more and are stepped apart, every cycle (the engine never skips
    reading them, steady cycles or not), so they resolve when their series recovers."""
    import numpy as np

    from monitor.rules.data import Block
    from monitor.rules.engine import Dataset

    def data(end: int, level: float) -> Dataset:
        values = np.full(12, level)
        return Dataset({"burglary": Block(
            [{"area": "a0"}], np.zeros(12, dtype=np.int64), np.arange(end - 11, end + 1),
            values, np.full(12, np.nan), np.zeros(12, dtype=bool),
            np.zeros(12, dtype=np.int64))})

    def rules(severity: str) -> Evaluator:
        path = tmp_path / "rules.yaml"
        path.write_text(RULE_FILE.replace(
            "{alert: High, indicator: burglary,",
            f"{{alert: High, severity: {severity}, indicator: burglary,"))
        return Evaluator(load_rules([path]))

    end = 24204
    at = month_end(end)
    first = rules("warning").run(data(end, 120.0), {}, Cycle(at=at, now=at))
    old = next(k for k, r in first.records.items() if r.rule == "High")
    assert first.records[old].state is AlertState.FIRING
    evaluator = rules("critical")  # the reload
    records = first.records
    for minutes in (1, 2, 3):  # steady: the same data, the clock moving on
        records = evaluator.run(data(end, 120.0), records,
                                Cycle(at=at, now=at + timedelta(minutes=minutes))).records
        assert records[old].state is AlertState.FIRING
    later = month_end(end + 1)
    records = evaluator.run(data(end + 1, 90.0), records, Cycle(at=later, now=later)).records
    assert records[old].state is AlertState.RESOLVED


@pytest.mark.postgres
def test_a_replica_holding_every_shard_keeps_its_index_past_the_records_refresh(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the daemon is a replica of a cluster, and every
    ``CLUSTER_RECORDS_REFRESH`` seconds it reads the alerts of the groups other replicas
    hold. Holding every shard, it has none to read: its steady cycles, past that
    interval, neither read the store's alerts nor index every record again (at 1M series
    the steady cycle took 3.1 CPU-s, now 0.9), and its alerts stay as they were."""
    from monitor.clock import FixedClock
    from monitor.rules import cycle as cycle_module
    from monitor.rules.service import CLUSTER_RECORDS_REFRESH
    from tests.examples.daemons import assembled, example_config

    config = example_config("mps", tmp_path)
    config.write_text(config.read_text().replace(
        f'url = "sqlite:///{tmp_path / "store.db"}"', f'url = "{postgres_url}"'))
    clock = FixedClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    app = assembled(config, clock)
    assert app.poller is not None and app.rules is not None and app.store is not None
    try:
        assert app.rules.partition is not None  # a cluster of one on PostgreSQL
        assert all(r.ok for r in app.poller.poll_all())
        first = app.rules.evaluate()
        assert first is not None and first.records
        made: list[int] = []
        reads: list[object] = []

        class Counted(RecordIndex):
            def __init__(self, records: Mapping[str, AlertRecord]) -> None:
                made.append(len(records))
                super().__init__(records)

        monkeypatch.setattr(cycle_module, "RecordIndex", Counted)
        load = app.store.alerts.load
        monkeypatch.setattr(app.store.alerts, "load",
                            lambda *a, **k: reads.append(a) or load(*a, **k))
        for minute in (1, 2, 3):
            clock.advance(timedelta(seconds=CLUSTER_RECORDS_REFRESH + 1))
            steady = app.rules.evaluate()
            assert steady is not None and not steady.transitions
            assert {k: r.state for k, r in steady.records.items()} == \
                {k: r.state for k, r in first.records.items()}, minute
        assert made == [] and reads == []
    finally:
        app.stop()
