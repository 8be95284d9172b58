"""A cycle runs with the cyclic garbage collector paused (it makes hundreds of thousands
of objects at scale, none in a cycle) and leaves it running afterwards, also when the
cycle fails: a collector left off would let cyclic garbage pile up for as long as the
daemon runs."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.clock import FixedClock
from tests.examples.daemons import assembled, example_config

POLLED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_a_cycle_pauses_the_collector_and_leaves_it_running_even_when_it_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = assembled(example_config("mps", tmp_path), FixedClock(POLLED_AT))
    assert app.poller is not None and app.rules is not None and app.store is not None
    try:
        assert all(r.ok for r in app.poller.poll_all())
        seen: list[bool] = []
        notify = app.rules.on_evaluated
        assert notify is not None

        def observed(result: Any, saved: Any) -> None:  # the notifier runs in the cycle
            seen.append(gc.isenabled())
            notify(result, saved)

        monkeypatch.setattr(app.rules, "on_evaluated", observed)
        assert gc.isenabled()
        result = app.rules.evaluate()
        assert result is not None and result.transitions
        assert seen == [False]
        assert gc.isenabled()

        def broken(*_a: Any, **_k: Any) -> Any:
            raise OSError("disk I/O error")

        monkeypatch.setattr(app.store.alerts, "save", broken)
        with pytest.raises(OSError):
            app.rules.evaluate(POLLED_AT.replace(day=6))
        assert gc.isenabled()
    finally:
        app.stop()
