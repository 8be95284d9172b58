"""A notifier run over the groups that changed or fell due decides exactly what a run over
every group decides: same messages, same notification log, same alerts dropped."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from monitor.clock import FixedClock
from monitor.matchers import parse_matchers
from monitor.notify.silences import SilenceSpec
from monitor.store import Store, open_store
from tests.notify.helpers import T0, make_notifier, notify_config, record

RULES = ("BurglaryRising", "RobberyRising", "SourceFailing")


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    pair = (open_store(f"sqlite:///{tmp_path / 'scoped.db'}"),
            open_store(f"sqlite:///{tmp_path / 'whole.db'}"))
    yield pair
    for store in pair:
        store.close()


def _state(store: Store) -> tuple[list[tuple[object, ...]], ...]:
    with store.engine.connect() as conn:
        outbox = [(r, g, json.loads(p)) for r, g, p in conn.execute(text(
            "SELECT receiver, group_key, payload FROM notification ORDER BY id"))]
        log = list(conn.execute(text("SELECT receiver, group_key, firing, resolved, sent_at "
                                     "FROM notification_log ORDER BY 1, 2")))
        tracked = list(conn.execute(text("SELECT alert_id, status FROM notify_alert "
                                         "ORDER BY 1")))
    return outbox, log, tracked


@pytest.mark.parametrize("seed", range(4))
def test_a_run_over_the_changed_groups_decides_as_a_run_over_all(
        stores: tuple[Store, Store], seed: int) -> None:
    rng = random.Random(seed)
    config = notify_config(
        [{"name": "ops", "file": [{"path": "/dev/null"}]},
         {"name": "boss", "file": [{"path": "/dev/null"}]}],
        route={"group_wait": "30s", "group_interval": "1m", "repeat_interval": "10m",
               "routes": [{"receiver": "boss", "matchers": ['borough=~"b.*"'],
                           "group_by": ["borough"], "continue": True}]},
        resolved_retention="5m")
    clock = FixedClock(T0)
    scoped = make_notifier(stores[0], config, clock, instance="n")
    whole = make_notifier(stores[1], config, clock, instance="n")
    decided: list[bool] = []  # per run of ``scoped``: over every group?
    judge = scoped._whole

    def whole_run(*args: object) -> bool:
        decided.append(judge(*args))  # type: ignore[arg-type]
        return decided[-1]

    scoped._whole = whole_run  # type: ignore[method-assign]
    state: dict[tuple[str, str], str] = {}
    for tick in range(40):
        for _ in range(rng.randint(0, 6)):
            rule = rng.choice(RULES)
            borough = rng.choice(["barnet", "brent", "camden", "ealing", "sutton"])
            now = state.get((rule, borough), "inactive")
            new = "resolved" if now == "firing" else "firing"
            state[(rule, borough)] = new
            extra = {"source": "boroughs"} if rule == "SourceFailing" else {}
            for store in stores:
                record(store, f"{rule}-{borough}", new, clock.now(), float(tick),
                       from_state="firing" if new == "resolved" else "pending",
                       alertname=rule, borough=borough, **extra)
        if tick == 15:
            for notifier in (scoped, whole):
                notifier.create_silence(SilenceSpec(
                    matchers=tuple(parse_matchers('borough="camden"')),
                    starts_at=clock.now(), ends_at=clock.now() + timedelta(minutes=7),
                    created_by="test", comment="works"))
        whole._force = True  # every run over every group
        scoped.process_transitions()
        whole.process_transitions()
        assert _state(stores[0]) == _state(stores[1]), f"tick {tick}"
        clock.advance(timedelta(seconds=rng.choice([10, 20, 40, 70, 130, 400])))
    assert decided.count(False) >= 5, "most runs cover only the groups that changed"


def test_an_alert_in_two_groups_brings_both_into_a_runs_scope() -> None:
    # GroupIndex keeps one group's ident as it is and a set only for an alert in several:
    # the closure must follow both forms (a changed alert's group brings each alert in
    # it, and each of those alerts brings every group it is in).
    from typing import cast

    from monitor.notify.notification import NotifyAlert
    from monitor.notify.pipeline import Flow, Group
    from monitor.notify.routing import Route
    from monitor.notify.scope import GroupIndex

    def alert(alert_id: str) -> NotifyAlert:
        return NotifyAlert(alert_id, "R", {"alertname": "R"}, {}, "firing", 1.0, "", T0)

    a1, a2, a3, a4 = (alert(i) for i in ("a1", "a2", "a3", "a4"))
    route = cast(Route, None)  # not read when no group was decided

    def groups(*members: tuple[str, tuple[NotifyAlert, ...]]) -> tuple[Group, ...]:
        return tuple(Group("ops", key, route, {}, alerts) for key, alerts in members)

    index = GroupIndex()
    index.rebuild(Flow(alerts=(a1, a2, a3, a4), groups=groups(
        ("g1", (a1, a2)), ("g2", (a1, a3)), ("g3", (a4,)))), T0, 300.0)
    g1, g2, g3 = ("ops", "g1"), ("ops", "g2"), ("ops", "g3")
    assert index.scope({"a2": [g1]}, T0) == ({"a1", "a2", "a3"}, {g1, g2})
    assert index.scope({"a4": [g3]}, T0) == ({"a4"}, {g3})
    # A run over g2 and its alerts that no longer holds a1: a1 is forgotten, a3 in g2.
    index.update(Flow(alerts=(a3,), groups=groups(("g2", (a3,)))), {"a1", "a3"}, {g2},
                 T0, 300.0)
    assert index.scope({"a3": [g2]}, T0) == ({"a3"}, {g2})
    assert index.groups_of["a3"] == g2
