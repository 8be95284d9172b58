"""The London example evaluated on a real two-worker Dask ``LocalCluster`` (separate
processes) makes exactly the transitions, and the outbox exactly the notifications, of
the daemon evaluating in one process — also when a worker dies in the middle of a cycle.

Each run is the daemon's own assembly (``App.assemble``) on the shipped example config,
``[engine]`` added, stepped month by month through ``RuleService.evaluate`` (which
persists and hands the transitions to the notifier), on its own SQLite store.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.clock import FixedClock
from monitor.model import Frequency, month
from monitor.rules.engine import held, month_end
from tests.examples.daemons import assembled, example_config
from tests.rules.frames import frame_lines

pytestmark = pytest.mark.slow
MONTHS = ("2009-01", "2010-12")  # 24 cycles; burglary alerts fire and resolve in them
POLLED_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
# whether the daemon held the matrices, how the pages were made, the calls of workers
Made = tuple[bool | None, dict[str, int] | None, dict[str, int] | None]
LOCAL_CLUSTER = '\n[engine]\nscheduler = "local"\npartitions = 2\nlocal_workers = 2\n'


def _run(workdir: Path, engine: str, before: Any = None
         ) -> tuple[list[Any], Counter[Any], Made]:
    """Return the transitions of every cycle and the pages after the last, the outbox's
    rows, and whether the daemon held the last cycle's matrices once every series' page
    was read (before the scorecard, which reads them all) with how those pages were made
    and the calls made of workers (the distributed engine's ``paged`` and ``asked``), of
    one daemon run."""
    workdir.mkdir()
    config = example_config("london", workdir)
    config.write_text(config.read_text(encoding="utf-8") + engine, encoding="utf-8")
    clock = FixedClock(POLLED_AT)
    app = assembled(config, clock)
    assert app.poller is not None and app.rules is not None
    try:
        assert all(r.ok for r in app.poller.poll_all())
        if before is not None:
            before(app)
        transitions: list[Any] = []
        for period in range(month(MONTHS[0]), month(MONTHS[1]) + 1):
            app.rules.as_of = Frequency.MONTHLY.label(period)
            clock.set(month_end(period))
            result = app.rules.evaluate()
            assert result is not None and not result.errors
            transitions.append(sorted(
                (t.alert_id, t.rule, t.from_state.value, t.to_state.value, t.value,
                 t.explanation, tuple(sorted(t.annotations.items())))
                for t in result.transitions))
            published = app.rules.published()
            assert published is not None
            snapshot = published.snapshot  # its frames and alerts: no matrix fetched
            transitions.append([frame_lines(snapshot.frames), sorted(map(repr, snapshot.alerts))])
        # every series' page after the last cycle: on the cluster made by the worker
        # that keeps its partition's matrices, none fetched into the daemon (the last
        # item of the run: is the daemon then holding the matrices?)
        # Each indicator's pages asked at once, as its list page asks for its rows.
        pages = sorted(repr(page)  # (partitions: another order)
                       for name, frame in snapshot.frames.items()
                       for page in published.details(name, frame.labels))
        assert pages and "None" not in pages
        # One series' page again, as the series page asks: kept from the list's.
        name, frame = next(iter(snapshot.frames.items()))
        assert published.detail(name, frame.labels[-1]) == \
            published.details(name, frame.labels)[-1]
        fetched = held(published.evaluation.matrices) if published.evaluation else None
        engine = app.rules.engine
        paged = getattr(engine, "paged", None)  # (None: in one process)
        made = (fetched, dict(paged) if paged is not None else None,
                dict(engine.asked) if paged is not None else None)
        # the pages read after the last cycle (its matrices fetched from the workers)
        transitions.append(sorted(map(repr, published.scorecard())))
        transitions.append(pages)
    finally:
        app.stop()
    with sqlite3.connect(workdir / "store.db") as db:
        stored = Counter(db.execute("SELECT alert_id, from_state, to_state, value, at "
                                    "FROM alert_transition"))
        outbox = Counter((receiver, integration, key, _message(payload)) for
                         receiver, integration, key, payload in db.execute(
                             "SELECT receiver, integration, group_key, payload "
                             "FROM notification"))
    assert sum(stored.values()) == sum(len(t) for t in transitions[:-2:2])
    return transitions, stored + outbox, made


def _message(payload: str) -> str:
    """Return an outbox message without what differs between any two runs: its random
    message and thread ids and the daemon's URL (each run has its own port)."""
    message = json.loads(payload)
    for key in ("message_id", "thread_id", "external_url"):
        message.pop(key, None)
    return json.dumps(message, sort_keys=True)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[list[Any], Counter[Any], Made]:
    return _run(tmp_path_factory.mktemp("london") / "in-process", "")


def test_it_makes_on_a_two_worker_local_cluster_exactly_the_transitions_of_one_process(
        in_process: tuple[list[Any], Counter[Any], Any], tmp_path: Path) -> None:
    workers: list[int] = []
    environs: list[tuple[str | None, str | None]] = []

    def environ() -> tuple[str | None, str | None]:
        return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")

    def count_workers(app: Any) -> None:
        client = app.rules.engine.client()
        workers.extend(client.run(os.getpid).values())
        environs.extend(client.run(environ).values())

    transitions, written, fetched = _run(tmp_path / "cluster", LOCAL_CLUSTER, count_workers)
    assert len(set(workers)) == 2 and os.getpid() not in workers  # separate processes
    # glibc's own memory reuse, not Dask's trimming (docs/operations.md, LEAN); one
    # thread per numerical library as Dask sets it
    assert environs == [(None, "1"), (None, "1")]
    assert sum(len(t) for t in transitions[:-1:2]) > 20  # alerts fire and resolve
    assert transitions == in_process[0]  # the pages too, every series' one
    assert written == in_process[1]  # the same transitions stored, the same outbox
    # each page made on the worker of its partition, no matrix fetched into the daemon
    assert in_process[2] == (True, None, None)
    # and each indicator's pages made by one call of each partition's worker that holds
    # its series (2 partitions; an indicator written back is whole in partition 0):
    # not one call a series
    assert fetched[:2] == (False, {"worker": len(transitions[-1])})
    assert fetched[2] is not None and len(transitions[-1]) > 100
    indicators = len(transitions[-3][0])
    assert indicators <= fetched[2]["partition_details"] <= 2 * indicators


def test_a_worker_killed_mid_cycle_loses_no_transition_and_doubles_no_notification(
        in_process: tuple[list[Any], Counter[Any], Any], tmp_path: Path) -> None:
    marker = tmp_path / "killed"
    count = tmp_path / "tasks"
    from distributed.diagnostics.plugin import WorkerPlugin

    class DieOnce(WorkerPlugin):  # type: ignore[misc]
        """Ends its worker's process as it starts the 15th partition task (cycle 8)."""

        def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
            if finish != "executing" or "evaluate_partition" not in str(key):
                return
            with open(count, "a", encoding="utf-8") as f:
                f.write("x")
            if count.stat().st_size >= 15:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    return
                os._exit(1)

    engines: list[Any] = []

    def arm(app: Any) -> None:
        engines.append(app.rules.engine)
        app.rules.engine.client().register_plugin(DieOnce(), name="die-once")

    transitions, written, _fetched = _run(tmp_path / "cluster", LOCAL_CLUSTER, arm)
    assert marker.exists()  # a worker did die mid-cycle
    # the worker that took its partition over did not keep its records: it was sent them
    assert engines[0].resent >= 1
    assert transitions == in_process[0]
    assert written == in_process[1]  # every transition stored once; outbox identical


def test_a_cycle_submitted_while_the_scheduler_knows_no_worker_still_runs(
        in_process: tuple[list[Any], Counter[Any], Any], tmp_path: Path) -> None:
    # Between a lost worker and its replacement joining, the scheduler can list no
    # worker at the moment a partition is submitted. The partition then goes to whichever
    # worker comes (before: Dask's ValueError "Only use allow_other_workers= if using
    # workers=", and the cycle failed).
    def no_worker_known_at_first(app: Any) -> None:
        client = app.rules.engine.client()
        real = client.scheduler_info
        calls = iter(range(3))

        def scheduler_info(**kwargs: Any) -> Any:
            info = dict(real(**kwargs))
            if next(calls, None) is not None:  # the first cycle's submissions
                info["workers"] = {}
            return info

        client.scheduler_info = scheduler_info

    transitions, written, _fetched = _run(tmp_path / "cluster", LOCAL_CLUSTER,
                                          no_worker_known_at_first)
    assert transitions == in_process[0]
    assert written == in_process[1]
