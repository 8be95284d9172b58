"""Bounded memory: an alert resolved for longer than the retention is forgotten — in
memory and in the store — so the daemon does not keep a record for every series that
ever alerted (the soak benchmark's growth came from exactly that)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.alerts.state import AlertRecord
from monitor.model import AlertState
from monitor.rules.engine import RESOLVED_RETENTION, forgettable
from tests.reliability.rig import Rig, build_rig, copy_example, example_config, variant_b

NOW = datetime(2008, 8, 20, 9, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(seconds=RESOLVED_RETENTION + 1)
RECENTLY = NOW - timedelta(seconds=RESOLVED_RETENTION - 1)


@pytest.mark.parametrize(("record", "forgotten"), [
    pytest.param(AlertRecord("a", "R", {}, AlertState.RESOLVED, resolved_at=LONG_AGO), True,
                 id="resolved-long-ago"),
    pytest.param(AlertRecord("a", "R", {}, AlertState.RESOLVED, resolved_at=RECENTLY), False,
                 id="resolved-recently"),
    pytest.param(AlertRecord("a", "R", {}, AlertState.INACTIVE, last_evaluated=LONG_AGO),
                 True, id="pending-that-went-away"),
    pytest.param(AlertRecord("a", "R", {}, AlertState.FIRING, fired_at=LONG_AGO), False,
                 id="firing"),
    pytest.param(AlertRecord("a", "R", {}, AlertState.PENDING, active_since=LONG_AGO), False,
                 id="pending"),
    pytest.param(AlertRecord("a", "R", {}, AlertState.RESOLVED, resolved_at=LONG_AGO,
                             history="0101"), False, id="flap-history-kept"),
    pytest.param(AlertRecord("a", "R", {}, AlertState.RESOLVED, resolved_at=LONG_AGO,
                             flapping=True), False, id="flapping"),
])
def test_it_forgets_only_alerts_resolved_longer_than_the_retention(record: AlertRecord,
                                                                   forgotten: bool) -> None:
    assert forgettable({"a": record}, NOW) == (["a"] if forgotten else [])


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    copy_example(tmp_path)
    built = build_rig(tmp_path, example_config(tmp_path), NOW)
    try:
        yield built
    finally:
        built.close()


def test_a_resolved_alert_is_forgotten_in_memory_and_the_store_then_fires_anew(
        rig: Rig, tmp_path: Path) -> None:
    original = {f: (tmp_path / "data" / f).read_bytes()
                for f in ("indicators.csv", "ct-milestones.yaml")}
    rig.tick()
    dv = next(r.id for r in rig.rules.records.values()
              if r.rule == "DomesticViolenceArrestRateBelowTarget")
    variant_b(tmp_path / "data")
    rig.tick(timedelta(minutes=15))
    assert rig.rules.records[dv].state is AlertState.RESOLVED
    rig.tick(timedelta(hours=12))
    assert dv in rig.rules.records and dv in rig.store.alerts.load()
    rig.tick(timedelta(hours=13))
    assert dv not in rig.rules.records and dv not in rig.store.alerts.load()
    assert dv in rig.last.removed

    for name, content in original.items():  # the data turns bad again: a new alert
        (tmp_path / "data" / name).write_bytes(content)
    sent = len(rig.notifications())
    rig.tick(timedelta(minutes=15))
    assert rig.rules.records[dv].state is AlertState.FIRING
    fired = [a for n in rig.notifications()[sent:] for a in n["alerts"]
             if a["alert_id"] == dv]
    assert [a["status"] for a in fired] == ["firing"]
