"""Partitions of the series space: the key, when there can be none, the order of the
cross-partition totals, and a partitioned cycle that decides exactly what one process
decides (run one partition after another here; on Dask in test_distributed.py)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.model import Observation, labels_of, month
from monitor.rules import conditions, scorecard, worker
from monitor.rules.cycle import Cycle, Evaluator
from monitor.rules.data import Grid, Matrix, from_block, group_total
from monitor.rules.distributed import DistributedEngine, EngineConfig
from monitor.rules.engine import held, indicator_info, month_end
from monitor.rules.inputs import read_dataset
from monitor.rules.loader import load_rules
from monitor.rules.partition import combine_totals, partial_total, plan
from monitor.rules.recordindex import RecordIndex
from monitor.rules.schema import Indicator
from monitor.store import open_store
from tests.conftest import REPO
from tests.rules.frames import frame_lines
from tests.rules.test_record_index import view

AREAS = [f"area{i:02d}" for i in range(12)]
FAMILY = AREAS[:4]
RULES = f"""
indicators:
  - {{id: burglary, name: Burglary, direction: down, headline: change_pct,
     peer_group: family, scorecard: true}}
  - {{id: robbery, name: Robbery, direction: down, headline: change_pct}}
  - id: london
    name: London burglary
    direction: down
    headline: change_pct
    derived: {{total: burglary}}
  - id: london_robbery
    name: London robbery
    direction: down
    derived: {{total: robbery}}
  - id: london_ratio
    name: London burglary per robbery
    unit: ratio
    derived: {{ratio: {{numerator: london, denominator: london_robbery}}}}
peer_groups:
  - {{id: family, label: area, members: {FAMILY}}}
groups:
  - name: crime
    rules:
      - alert: BurglaryUpRobberyDown
        indicator: burglary
        on: [area]
        when:
          all:
            - change: {{window: 3, above: 0}}
            - change: {{indicator: robbery, window: 3, below: 0}}
      - alert: LondonBurglaryUp
        indicator: london
        when: {{change: {{window: 3, above: 0}}}}
      - alert: UpWhileLondonUp
        indicator: burglary
        when:
          all:
            - change: {{window: 3, above: 0}}
            - change: {{indicator: london, window: 3, above: 0}}
      - alert: LastInFamily
        indicator: burglary
        when: {{peers: {{rank: last, over: last 1 months}}}}
"""


def _rules(tmp_path: Path, text: str = RULES):  # type: ignore[no-untyped-def]
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "r.yaml").write_text(text, encoding="utf-8")
    return load_rules([str(folder)])


def test_the_key_is_the_labels_every_join_matches_on() -> None:
    cut = plan(load_rules([str(REPO / "examples/london-boroughs/rules")]), 4)
    assert cut.key == ("borough",) and cut.partitions == 4 and not cut.reason
    assert cut.stages == ()  # its London is a stored series, not a total


def test_totals_over_every_area_are_written_back_in_stages_in_order(tmp_path: Path) -> None:
    cut = plan(_rules(tmp_path), 3)
    assert cut.key == ("area",)
    # The totals over every area first, written back; then the partitions evaluate.
    assert cut.stages == (("london", "london_robbery"),)
    assert cut.whole == {"london", "london_robbery", "london_ratio"}
    assert len({cut.partition_of({"area": a}) for a in FAMILY}) == 1  # a family stays whole


@pytest.mark.parametrize(("change", "reason"), [
    pytest.param("on: [area]", "", id="join-on-the-key"),
    pytest.param("on: []", "r.yaml:24: rule BurglaryUpRobberyDown joins robbery on [], "
                 "which does not hold the partition key", id="join-on-nothing"),
])
def test_a_join_without_the_key_leaves_one_partition_and_says_where(
        tmp_path: Path, change: str, reason: str) -> None:
    text = RULES.replace("on: [area]", change)
    cut = plan(_rules(tmp_path, text), 3, ["area"])
    assert (cut.partitions, cut.reason.split(" ['area']")[0].split("rules/")[-1]) == \
        ((3, "") if not reason else (1, reason))


def test_a_peer_group_on_a_label_outside_the_key_leaves_one_partition(tmp_path: Path) -> None:
    cut = plan(_rules(tmp_path, RULES.replace("label: area", "label: force")), 3)
    assert cut.partitions == 1
    assert cut.reason == ('peer group "family" ranks on the label "force", which is not in '
                          "the partition key ['area']")


def test_no_join_and_no_partition_by_leaves_one_partition(tmp_path: Path) -> None:
    text = ("indicators:\n  - {id: burglary, name: Burglary, direction: down}\n"
            "groups:\n  - name: g\n    rules:\n"
            "      - {alert: Up, indicator: burglary, when: {change: {above: 0}}}\n")
    cut = plan(_rules(tmp_path, text), 3)
    assert (cut.partitions, cut.reason) == (1, "no rule or derived indicator joins on a label "
                                            "(`on:`); name the labels to partition on in "
                                            "[engine] partition_by")
    assert plan(_rules(tmp_path, text), 3, ["area"]).partitions == 3


def test_partial_totals_add_up_to_the_one_process_total() -> None:
    rng = np.random.default_rng(7)
    n, t = 40, 24
    values = rng.integers(0, 500, (n, t)).astype(float)
    values[:5, :6] = np.nan  # members that start late
    values[7, 10] = np.nan  # a gap: that month of the total is missing
    labels = [{"area": f"a{i}", "region": "north" if i % 3 else "south"} for i in range(n)]
    ind = Indicator(id="x", name="x")
    m = Matrix(ind, labels, Grid(100, 100 + t - 1), values)
    for by in ([], ["region"]):
        whole = group_total(ind, m, by)
        groups = [random.Random((by and 1) or 2).randrange(3) for _ in range(n)]
        parts = [partial_total(Matrix(ind, [labels[i] for i in range(n) if groups[i] == g],
                                      m.grid, values[[groups[i] == g for i in range(n)]]), by)
                 for g in range(3)]
        back = from_block(ind, combine_totals(parts), m.grid)
        order = [back.labels.index(lab) for lab in whole.labels]
        np.testing.assert_array_equal(back.values[order], whole.values)


def test_a_total_over_every_series_adds_them_up_in_the_order_a_grouped_total_does() -> None:
    """A total over all series (``by: []``) is summed down the rows instead of scattered
    by group (``np.add.at``): the same floating-point sums to the last bit, in row order,
    with late starters, gaps, negative zeros and provisional months."""
    rng = np.random.default_rng(11)
    n, t = 3_000, 30
    values = rng.lognormal(3, 2, (n, t)) * rng.choice([-1.0, 1.0], (n, t))
    values[rng.random((n, t)) < 0.02] = np.nan
    values[:40, :12] = np.nan  # members that start late
    values[50:60] = -0.0
    labels = [{"area": f"a{i}"} for i in range(n)]
    provisional = rng.random((n, t)) < 0.01
    ind = Indicator(id="x", name="x")
    m = Matrix(ind, labels, Grid(100, 100 + t - 1), values, None, provisional)
    total = group_total(ind, m, [])
    # the reference: every row scattered into the one group, as for several groups
    observed = ~np.isnan(values)
    first = np.where(observed.any(axis=1), observed.argmax(axis=1), t)
    outside = np.arange(t)[None, :] < first[:, None]
    expected = np.zeros((1, t))
    np.add.at(expected, np.zeros(n, dtype=np.int64), np.where(outside, 0.0, values))
    expected[0, ~(~outside).any(axis=0)] = np.nan
    assert np.array_equal(total.values, expected, equal_nan=True)
    assert np.array_equal(np.signbit(total.values), np.signbit(expected))
    assert total.provisional is not None
    assert np.array_equal(total.provisional[0], provisional.any(axis=0))


@pytest.mark.parametrize("lost", [
    pytest.param(False, id="workers-keep-their-state"),
    pytest.param(True, id="a-worker-loses-its-state-and-a-cycle-is-not-saved"),
])
def test_a_partitioned_cycle_decides_what_one_process_decides(tmp_path: Path,
                                                              lost: bool) -> None:
    ruleset = _rules(tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    rng = random.Random(3)
    start = month("2020-01")
    observations = [Observation(name, labels_of({"area": area}), start + k,
                                float(rng.randrange(50, 150)))
                    for name in ("burglary", "robbery") for area in AREAS
                    for k in range(36) if not (area == "area11" and k < 20)]
    store.observations.ingest("src", observations, now=datetime(2026, 1, 1, tzinfo=UTC))
    one = Evaluator(ruleset)
    parted = Evaluator(ruleset)
    engine = DistributedEngine(store.url, EngineConfig(partitions=3))
    dataset = read_dataset(store, ruleset, [])
    mine: dict = {}  # type: ignore[type-arg]
    theirs: dict = {}  # type: ignore[type-arg]
    seen = forgot = 0
    for number, period in enumerate(range(start + 12, start + 36)):
        cycle = Cycle(at=month_end(period), now=month_end(period))
        a = one.run(dataset, mine, cycle)
        if lost and number % 5 == 2:
            worker.forget()  # every worker lost what it kept: it is sent everything
        if lost and number % 7 == 3:  # the daemon could not save this cycle: it runs again
            engine.run(parted, engine.inputs(store, ruleset, []), theirs, cycle)
        b = engine.run(parted, engine.inputs(store, ruleset, []), theirs, cycle)
        # the records' index, carried partition by partition as their records arrived,
        # is the index of the cycle's records (what the next cycle starts from)
        assert parted._index is not None and parted._index.records is b.records
        assert view(parted._index) == view(RecordIndex(b.records))
        again = engine.run(parted, engine.inputs(store, ruleset, []), b.records, cycle)
        assert not again.transitions  # a steady cycle: nothing new, nothing read or sent
        assert again.matrices is b.matrices
        mine, theirs = a.records, again.records
        assert sorted((t.alert_id, t.from_state, t.to_state, t.value, t.explanation,
                       t.annotations.items()) for t in b.transitions) == \
            sorted((t.alert_id, t.from_state, t.to_state, t.value, t.explanation,
                    t.annotations.items()) for t in a.transitions)
        assert sorted(b.changed, key=lambda r: r.id) == sorted(a.changed, key=lambda r: r.id)
        assert not a.errors and not b.errors
        # the snapshot (made from the partitions' frames, the matrices left on the
        # workers) and its alerts are the one process's
        mine_page, theirs_page = one.publish(a).snapshot, parted.publish(again).snapshot
        assert frame_lines(theirs_page.frames) == frame_lines(mine_page.frames)
        assert _alerts(theirs_page.alerts) == _alerts(mine_page.alerts)
        seen += len(a.transitions)
        forgot += len(b.removed)
    assert seen > 20
    # Each cycle after a cycle that returned started from the records its workers hold,
    # less those that cycle forgot (some were); the first, and each one run again on the
    # records of the cycle before (3 cycles not saved), found each record again.
    assert forgot > 0 and engine.shares["held"] > 30
    assert engine.shares["found"] == (1 + 3 if lost else 1)
    assert {r.rule for r in mine.values()} == {"BurglaryUpRobberyDown", "LondonBurglaryUp",
                                               "UpWhileLondonUp", "LastInFamily"}
    assert [p.series > 0 for p in engine.last] == [True, True, True]
    # each partition was sent all its records again after every loss (5 losses × 3)
    assert engine.resent == (15 if lost else 0)
    # the pages read after the cycles, the matrices fetched then: the one process's
    published = parted.publish(again)
    assert not held(again.matrices)
    rows = published.scorecard()
    assert len(rows) == len(AREAS)
    assert sorted(map(repr, rows)) == sorted(map(repr, one.publish(a).scorecard()))
    assert held(again.matrices) and engine.fetched["kept"] == 3
    for name in ("burglary", "london"):  # the pages see the series one process sees
        assert _rows(b.matrices[name]) == _rows(a.matrices[name])
        detail = published.detail(name, {"area": "area11"} if name == "burglary" else {})
        assert repr(detail) == repr(one.publish(a).detail(
            name, {"area": "area11"} if name == "burglary" else {}))
    store.close()


def _alerts(alerts: Any) -> list[str]:
    return sorted(repr(a) for a in alerts)


def _rows(m: Matrix) -> list[tuple[str, list[float]]]:
    return sorted(zip(map(str, m.labels), np.nan_to_num(m.values, nan=-1.0).tolist(),
                      strict=True))


def test_after_this_process_polls_each_partition_reads_only_what_the_poll_changed(
        tmp_path: Path, store_url: str) -> None:
    """Month after month this process polls one new month for every series (a value
    revised, a series new to the store now and then): each partition reads only the
    touched series from the earliest period written, and decides exactly what one
    process reading the whole store does. A write by another process (a second store
    object: its writes are not in this one's journal) makes every partition read all."""
    ruleset = _rules(tmp_path)
    url = store_url
    store = open_store(url)
    rng = random.Random(5)
    start = month("2020-01")
    areas = list(AREAS)

    def poll(k: int, into: Any = store) -> None:
        batch = [Observation(name, labels_of({"area": area}), start + k,
                             float(rng.randrange(50, 150)))
                 for name in ("burglary", "robbery") for area in areas]
        if k % 4 == 1:  # a revision of an earlier month of one series
            batch.append(Observation("burglary", labels_of({"area": areas[k % 12]}),
                                     start + k - 6, float(rng.randrange(50, 150))))
        into.observations.ingest("src", batch, now=datetime(2026, 1, 1, tzinfo=UTC))

    for k in range(18):
        poll(k)
    one, parted = Evaluator(ruleset), Evaluator(ruleset)
    engine = DistributedEngine(store.url, EngineConfig(partitions=3))
    mine: dict = {}  # type: ignore[type-arg]
    theirs: dict = {}  # type: ignore[type-arg]
    seen = 0
    for k in range(18, 36):
        if k > 18:
            if k % 5 == 0:
                areas.append(f"new{k}")  # a series new to the store
            poll(k)
        if k == 30:
            other = open_store(url, migrate=False)  # another process's write
            poll(k, other)
            other.close()
        cycle = Cycle(at=month_end(start + k), now=month_end(start + k))
        a = one.run(read_dataset(store, ruleset, []), mine, cycle)
        before = dict(engine.reads)
        b = engine.run(parted, engine.inputs(store, ruleset, []), theirs, cycle)
        # the records' index, carried partition by partition as their records arrived,
        # is the index of the cycle's records (what the next cycle starts from)
        assert parted._index is not None and parted._index.records is b.records
        assert view(parted._index) == view(RecordIndex(b.records))
        read = {how: n - before.get(how, 0) for how, n in engine.reads.items()
                if n != before.get(how, 0)}
        assert read == ({"full": 3} if k in (18, 30) else {"changes": 3}), k
        assert sorted((t.alert_id, t.to_state, t.value, t.explanation,
                       t.annotations.items()) for t in b.transitions) == \
            sorted((t.alert_id, t.to_state, t.value, t.explanation, t.annotations.items())
                   for t in a.transitions), k
        assert sorted(b.changed, key=lambda r: r.id) == sorted(a.changed, key=lambda r: r.id)
        for name in ("burglary", "robbery", "london"):
            assert _rows(b.matrices[name]) == _rows(a.matrices[name]), (k, name)
        before = dict(engine.reads)
        again = engine.run(parted, engine.inputs(store, ruleset, []), b.records, cycle)
        assert not again.transitions  # the same data again: nothing read, nothing new
        assert engine.reads["none"] - before.get("none", 0) == 3
        mine, theirs = a.records, again.records
        seen += len(a.transitions)
    assert seen > 20
    assert any(lab.get("area") == "new35" for lab in b.matrices["burglary"].labels)
    store.close()


@pytest.mark.parametrize("ragged", [False, True], ids=["same-end", "last-rows-end-earlier"])
def test_a_frame_made_some_rows_at_a_time_is_the_frame_of_the_whole(tmp_path: Path,
                                                                    ragged: bool) -> None:
    ruleset = _rules(tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    start = month("2020-01")
    store.observations.ingest("src", [
        Observation(name, labels_of({"area": area}), start + k, float(50 + (i * k) % 17))
        for name in ("burglary", "robbery") for i, area in enumerate(AREAS)
        for k in range(30) if not (ragged and i >= 9 and k == 29)],
        now=datetime(2026, 1, 1, tzinfo=UTC))
    evaluator = Evaluator(ruleset)
    m = evaluator.engine.matrices(read_dataset(store, ruleset, []),
                                  month_end(start + 29))[0]["burglary"]
    info = indicator_info(m.indicator)
    # each on a copy of its own (``replace``: nothing computed yet): a matrix whose whole
    # headline and chart are computed already makes its frame of them at once
    whole = scorecard.frame(replace(m), info, rows=None)
    one = replace(m)
    scorecard.headline_of(one)
    spc, end = conditions.spc_for(one)
    for rows in (5, 3):
        cut = replace(m)
        assert frame_lines({"b": scorecard.frame(cut, info, rows=rows)}) \
            == frame_lines({"b": whole})
        if ragged:  # the parts end at different columns: made at once
            continue
        # what a series page reads of the whole matrix is kept, made of the parts'
        kept, at_once = cut.memo[("headline", None)], one.memo[("headline", None)]
        for name in ("value", "level", "target", "status", "judged"):
            assert np.array_equal(getattr(kept, name), getattr(at_once, name), equal_nan=True)
        assert (kept.target_kind, kept.end, kept.n, kept.fy) \
            == (at_once.target_kind, at_once.end, at_once.n, at_once.fy)
        assert kept.change is not None and at_once.change is not None
        for name in ("current", "baseline", "delta", "pct", "complete"):
            assert np.array_equal(getattr(kept.change, name), getattr(at_once.change, name),
                                  equal_nan=True)
        chart, chart_end = cut.memo["spc"]
        assert chart_end == end
        for name in ("mean", "upper", "lower", "special", "variation"):
            assert np.array_equal(getattr(chart, name), getattr(spc, name), equal_nan=True)
        assert scorecard.detail(cut, 7, {"burglary": cut}, ruleset) \
            == scorecard.detail(one, 7, {"burglary": one}, ruleset)
        # not kept: the same, and nothing of it kept with the matrix
        bare = replace(m)
        assert frame_lines({"b": scorecard.frame(bare, info, rows=rows, keep=False)}) \
            == frame_lines({"b": whole})
        assert not bare.memo
        # a worker's frame: the same, not kept (it travels to the daemon), but the
        # headline and the chart its series pages read are, as above
        worked = replace(m)
        assert frame_lines({"b": scorecard.frame(worked, info, rows=rows, keep=False,
                                                 charts=True)}) == frame_lines({"b": whole})
        assert set(worked.memo) == {("headline", None), "spc"}
        assert scorecard.detail(worked, 7, {"burglary": worked}, ruleset) \
            == scorecard.detail(one, 7, {"burglary": one}, ruleset)
    store.close()
