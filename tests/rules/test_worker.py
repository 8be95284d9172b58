"""What a distributed engine's worker process holds: only what evaluating needs.

A Dask worker imports a task's modules as it unpickles the task, and a ``LocalCluster``
worker first runs the daemon's script again (multiprocessing's spawn). Whatever those
pull in sits in every worker for nothing: scipy, the ORM and migrations, the sources'
HTTP client and the CLI were ~90 MB of a worker's ~440 MB peak at 100,000 series
(docs/operations.md, benchmarks/bench_distributed.py). Each test runs a fresh
interpreter, as a worker is.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from monitor.model import Observation, labels_of, month
from monitor.rules.engine import month_end
from monitor.rules.loader import RuleSet, load_rules
from monitor.rules.partition import plan
from monitor.rules.worker import Records, Task, evaluate_partition, forget, partition_frames
from monitor.store import Store, open_store

NOT_FOR_EVALUATING = ("scipy", "sqlmodel", "alembic", "httpx", "apscheduler", "fastapi",
                      "weasyprint", "monitor.cli", "monitor.app", "monitor.sources",
                      "monitor.http", "monitor.rules.sourcehealth", "monitor.rules.service")
RULES = """
indicators:
  - {id: burglary, name: Burglary, direction: down}
  - {id: robbery, name: Robbery, direction: down}
groups:
  - name: crime
    rules:
      - alert: BurglaryUpRobberyDown
        indicator: burglary
        on: [area]
        when:
          all:
            - change: {window: 3, above: 0}
            - change: {indicator: robbery, window: 3, below: 0}
"""
REPORT = """
import json, pickle, sys
{setup}
print(json.dumps([name for name in {names!r} if name in sys.modules]))
"""


def _loaded(setup: str) -> list[str]:
    """Return which of NOT_FOR_EVALUATING a fresh interpreter holds after ``setup``."""
    code = REPORT.format(setup=setup, names=NOT_FOR_EVALUATING)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _rules_and_store(tmp_path: Path) -> tuple[RuleSet, Store]:
    """RULES loaded from a rule file, and an empty SQLite store, both in ``tmp_path``."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES, encoding="utf-8")
    return load_rules([str(tmp_path / "rules")]), open_store(f"sqlite:///{tmp_path / 'store.db'}")


def test_a_worker_evaluating_its_partition_loads_nothing_evaluating_does_not_need(
        tmp_path: Path) -> None:
    ruleset, store = _rules_and_store(tmp_path)
    start = month("2020-01")
    store.observations.ingest("src", [
        Observation(name, labels_of({"area": f"a{i}"}), start + k, float(k * (i + 1)))
        for name in ("burglary", "robbery") for i in range(6) for k in range(12)],
        now=datetime(2026, 1, 1, tzinfo=UTC))
    store.close()
    at = month_end(start + 11)
    task = Task(f"sqlite:///{tmp_path / 'store.db'}", ruleset, plan(ruleset, 2), 0, at, 60,
                0, {})
    sent = tmp_path / "task.pickle"  # what the daemon sends a worker, pickled as Dask does
    sent.write_bytes(pickle.dumps((evaluate_partition, task, ruleset.rules,
                                   Records(-1, 1, {}), at, True)))
    run = (f"fn, *args = pickle.loads(open({str(sent)!r}, 'rb').read())\n"
           "result = fn(*args)\nassert result.series > 0 and result.frames")
    assert _loaded(run) == []


def test_a_partitions_frames_come_without_the_labels_the_coordinator_holds(
        tmp_path: Path) -> None:
    ruleset, store = _rules_and_store(tmp_path)
    start = month("2020-01")

    def poll(areas: range, months: range) -> None:
        store.observations.ingest("src", [
            Observation(name, labels_of({"area": f"a{i}"}), start + k, float(k * (i + 1)))
            for name in ("burglary", "robbery") for i in areas for k in months],
            now=datetime(2026, 1, 1, tzinfo=UTC))

    poll(range(6), range(12))
    task = Task(store.url, ruleset, plan(ruleset, 1), 0, month_end(start + 11), 60, 0, {},
                version=(store.observations.version(),), token="coordinator")
    try:
        evaluated = evaluate_partition(task, ruleset.rules, Records(-1, 1, {}), task.at, False)
        frames, _ends, tokens, same = partition_frames(task, evaluated, {})
        assert same and sorted(tokens) == ["burglary", "robbery"]
        assert [len(f.labels) for f in frames.values()] == [6, 6]
        # the next month, the same series: held labels are not sent, other tokens are
        task = replace(task, at=month_end(start + 12))
        evaluated = evaluate_partition(task, ruleset.rules, Records(1, 2, {}), task.at, False)
        frames, _ends, again, same = partition_frames(
            task, evaluated, {"burglary": tokens["burglary"], "robbery": "another"})
        assert again == tokens
        assert frames["burglary"].labels == [] and len(frames["robbery"].labels) == 6
        # a new series: its indicator's labels are sent, under a new token
        poll(range(6, 7), range(12, 13))
        task = replace(task, version=(store.observations.version(),))
        evaluated = evaluate_partition(task, ruleset.rules, Records(2, 3, {}), task.at, False)
        frames, _ends, third, same = partition_frames(task, evaluated, tokens)
        assert third["burglary"] != tokens["burglary"]
        assert [len(f.labels) for f in frames.values()] == [7, 7]
    finally:
        forget()
        store.close()


def test_a_process_that_runs_the_monitor_command_again_loads_no_cli() -> None:
    # A LocalCluster's worker runs the daemon's script as __mp_main__ before its work.
    script = Path(sys.executable).parent / "monitor"
    assert _loaded(f"import runpy; runpy.run_path({str(script)!r}, "
                   "run_name='__mp_main__')") == []
