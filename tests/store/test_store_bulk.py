"""No store statement binds one parameter per row: every bulk path takes more rows than
SQLite (32,766) or PostgreSQL (65,535) allow parameters in one statement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerts.state import AlertRecord, Transition
from monitor.model import AlertState, Observation, alert_id, month
from monitor.store import Store, open_store

pytestmark = pytest.mark.slow  # ~10 s a store: seventy thousand rows each way

MANY = 70_001  # more than either driver's parameter limit
NOW = datetime(2016, 12, 5, 6, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


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
