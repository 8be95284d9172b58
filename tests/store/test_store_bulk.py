"""No store statement binds one parameter per row: every bulk path takes more rows than
SQLite (32,766) or PostgreSQL (65,535) allow parameters in one statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitor.alerts.state import AlertRecord, Transition
from monitor.model import AlertState, Observation, alert_id, month
from monitor.store import Store, observations
from monitor.store.batch import ObservationBatch

pytestmark = pytest.mark.slow  # ~10 s a store: seventy thousand rows each way

MANY = 70_001  # more than either driver's parameter limit
NOW = datetime(2016, 12, 5, 6, 0, tzinfo=UTC)




def _records(state: AlertState) -> list[AlertRecord]:
    return [AlertRecord(id=alert_id("g", {"area": f"a{i}", "alertname": "Up"}), rule="Up",
                        labels={"area": f"a{i}", "alertname": "Up"}, state=state,
                        annotations={"summary": "up"}, value=float(i), explanation="up",
                        active_since=NOW, fired_at=NOW if state == AlertState.FIRING else None,
                        last_evaluated=NOW, history="1", notified_state=state, group="g")
            for i in range(MANY)]


def test_it_saves_loads_claims_and_removes_more_alerts_than_a_statement_takes_parameters(
        store: Store) -> None:
    pending = _records(AlertState.PENDING)
    store.alerts.save(pending, [], NOW)
    firing = _records(AlertState.FIRING)
    later = NOW + timedelta(minutes=1)
    store.alerts.save(firing, [Transition(r.id, r.rule, r.labels, AlertState.PENDING,
                                          AlertState.FIRING, later, r.value, r.explanation,
                                          r.annotations, notify=True, group="g")
                               for r in firing], later)
    loaded = store.alerts.load()
    assert len(loaded) == MANY
    assert loaded[firing[7].id] == firing[7]
    with store.notify.transaction() as tx:
        claimed = tx.claim_transitions("me", later, limit=MANY + 1)
        assert len(claimed) == MANY
        assert claimed[0].at == later
    from monitor.notify.notifier import apply_transitions

    alerts = list(apply_transitions({}, claimed).values())
    with store.notify.transaction() as tx:
        tx.save_alerts(alerts)
        assert len(tx.load_alerts({a.alert_id for a in alerts})) == MANY
        tx.delete_alerts(a.alert_id for a in alerts)
    store.alerts.save([], [], later, removed=[r.id for r in firing])
    assert store.alerts.load() == {}


def test_it_ingests_and_reads_more_series_than_a_statement_takes_parameters(
        store: Store) -> None:
    observations = [Observation("x", (("area", f"a{i}"),), month("2016-12"), float(i))
                    for i in range(MANY)]
    result = store.observations.ingest("s", observations, now=NOW)
    assert (result.inserted, result.series_created) == (MANY, MANY)
    again = store.observations.ingest("s", observations, now=NOW)
    assert again.unchanged == MANY
    wanted = ["x"] + [f"other{i}" for i in range(MANY)]
    blocks = store.observations.read(wanted)
    assert len(blocks["x"]) == MANY
    assert store.observations.indicators_by_source() == {"s": ["x"]}


@pytest.mark.parametrize("parts", [
    pytest.param(None, id="as-configured"),
    # Writes and reads go in parts of a few rows: every part boundary falls inside the
    # inserts, revisions, updates and reads of this test, and nothing may change.
    pytest.param(997, id="in-parts-of-997-rows"),
])
def test_it_diffs_a_large_batch_column_wise_new_revised_flagged_and_unchanged(
        store: Store, parts: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if parts is not None:
        monkeypatch.setattr(observations, "CHUNK_ROWS", parts)
        monkeypatch.setattr(observations, "READ_ROWS", parts)
    n = MANY
    first = ObservationBatch.of(
        Observation("x", (("area", f"a{i % 1000}"),), month("2016-01") + i // 1000, float(i),
                    None if i % 3 else float(i + 10), i % 5 == 0)
        for i in range(n))
    assert store.observations.ingest("s", first, now=NOW).inserted == n
    # Second poll: the same values but for three kinds of change, and one new month.
    value = first.value.copy()
    den = first.denominator.copy()
    prov = first.provisional.copy()
    value[::7] += 1  # revised value
    den[1::9] = 2.0  # revised denominator (some of these had none)
    prov[2::11] = ~prov[2::11]  # flag only, unless revised above
    revised = np.zeros(n, dtype=bool)
    revised[::7] = True
    revised[1::9] |= first.denominator[1::9] != 2.0
    flagged = np.zeros(n, dtype=bool)
    flagged[2::11] = True
    flagged &= ~revised
    extra = ObservationBatch.of([Observation("x", (("area", "a0"),), month("2030-01"), 1.0)])
    second = ObservationBatch(
        first.keys, np.concatenate([first.series, extra.series]),
        np.concatenate([first.period, extra.period]), np.concatenate([value, extra.value]),
        np.concatenate([den, extra.denominator]), np.concatenate([prov, extra.provisional]))
    later = NOW + timedelta(days=1)
    result = store.observations.ingest("s", second, now=later)
    assert (result.inserted, result.revised, result.updated, result.unchanged) == (
        1, int(revised.sum()), int(flagged.sum()), n - int(revised.sum()) - int(flagged.sum()))
    assert store.observations.revision_count("s") == int(revised.sum())
    block = store.observations.read(["x"])["x"]
    stored = {(block.labels[int(r)]["area"], int(p)): (float(v), float(d), bool(f))
              for r, p, v, d, f in zip(block.row, block.period, block.value,
                                       block.denominator, block.provisional, strict=True)}
    for i in range(0, n, 997):  # a sample of every kind
        got = stored[(f"a{i % 1000}", month("2016-01") + i // 1000)]
        assert got[0] == value[i] and got[2] == prov[i]
        assert (np.isnan(got[1]) and np.isnan(den[i])) or got[1] == den[i]
    again = store.observations.ingest("s", second, now=later)
    assert again.unchanged == n + 1 and not again.changed


def test_it_sums_a_batch_s_repeated_series_and_periods_in_order_of_first_sight() -> None:
    a, b = ("x", (("area", "a"),)), ("x", (("area", "b"),))
    batch = ObservationBatch.of([Observation(*b, 5, 1.0), Observation(*a, 5, 2.0, 4.0),
                                 Observation(*b, 5, 3.0, None, True), Observation(*a, 6, 1.0)])
    assert batch.summed().observations() == [
        Observation(*b, 5, 4.0, None, True), Observation(*a, 5, 2.0, 4.0),
        Observation(*a, 6, 1.0)]


def test_a_bulk_write_keeps_each_rows_as_of_time_and_source_name(store: Store) -> None:
    """The new rows' as-of time and source, which PostgreSQL's binary COPY writes as bytes
    of its own (microseconds since 2000, the name's UTF-8), read back as given: a later
    revision records the old value's as-of time, and the source is counted by its name."""
    source = "données-été"  # not ASCII: a byte count, not a character count, in COPY
    polled = datetime(2016, 12, 5, 6, 0, 0, 123456, tzinfo=UTC)
    batch = [Observation("x", (("area", f"a{i}"),), month("2016-12"), float(i),
                         None if i % 2 else 4.0, i % 3 == 0) for i in range(1_000)]
    assert store.observations.ingest(source, batch, now=polled).inserted == 1_000
    assert store.observations.count_by_source() == {source: 1_000}
    revised = [Observation("x", (("area", "a7"),), month("2016-12"), 70.0)]
    later = polled + timedelta(days=31)
    assert store.observations.ingest(source, revised, now=later).revised == 1
    (revision,) = store.observations.revisions()
    assert (revision.old_value, revision.new_value) == (7.0, 70.0)
    assert revision.old_as_of == polled
    assert revision.revised_at == later
    assert revision.source == source
    block = store.observations.read(["x"])["x"]
    assert int(np.count_nonzero(block.provisional)) == 334
    assert int(np.count_nonzero(~np.isnan(block.denominator))) == 500


def test_a_bulk_write_from_a_source_with_an_empty_name(store: Store) -> None:
    batch = [Observation("x", (("area", f"a{i}"),), month("2016-12"), float(i))
             for i in range(10)]
    assert store.observations.ingest("", batch, now=NOW).inserted == 10
    assert store.observations.count_by_source() == {"": 10}
