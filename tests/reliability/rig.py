"""An in-process daemon on the bundled example, driven step by step on a movable clock.

``Rig`` assembles the same subsystems ``App.start`` does — poller, rule service,
notifier — on a real SQLite store in a temp folder, with a :class:`FixedClock` the test
moves. ``tick()`` is one turn of the daemon's loop: poll what is due, evaluate, run
the notification pipeline, deliver. Nothing is mocked: files, SQLite, HTTP receivers
and the notification file are real.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.clock import FixedClock
from monitor.notify.notifier import Notifier
from monitor.rules.engine import Evaluation
from monitor.rules.service import RuleService
from monitor.settings import Settings, load
from monitor.sources.poller import Poller, PollResult
from monitor.store import Store
from monitor.store.alerts import Saved

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mps-2008-09"
MPS = "Metropolitan Police Service"
SCALE = {"dv_arrests": 1.1, "victim_satisfaction": 1.08}


def copy_example(workdir: Path) -> Path:
    """Copy the bundled example's data and rules into ``workdir``; return it."""
    shutil.copytree(EXAMPLE / "data", workdir / "data")
    shutil.copytree(REPO / "rules", workdir / "rules", ignore=shutil.ignore_patterns("tests"))
    return workdir


def variant_b(data: Path) -> None:
    """Rewrite the example's data so alerts change: DV arrests and victim satisfaction
    up (their alerts resolve), July's burglary spikes (an SPC alert fires), CT-05 done."""
    rows = list(csv.reader(io.StringIO((data / "indicators.csv").read_text())))
    out = [rows[0]]
    for indicator, force, period, value, den, prov in rows[1:]:
        if force == MPS and period >= "2007-08":
            if indicator in SCALE:
                value = str(round(float(value) * SCALE[indicator]))
            if indicator == "residential_burglary" and period == "2008-07":
                value = str(round(float(value) * 1.6))
        out.append([indicator, force, period, value, den, prov])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(out)
    (data / "indicators.csv").write_text(buffer.getvalue())
    plan = (data / "ct-milestones.yaml").read_text()
    (data / "ct-milestones.yaml").write_text(plan.replace(
        "due: 2008-07-15\n    status: in_progress\n    completed: null",
        "due: 2008-07-15\n    status: done\n    completed: 2008-07-10"))


DEFAULT_ROUTE = """
[notify.route]
receiver = "local"
group_by = ["alertname"]
group_wait = "0s"
group_interval = "1m"
repeat_interval = "1000h"
"""


def example_config(workdir: Path, *, interval: str = "15m", receivers: str = "",
                   route: str = DEFAULT_ROUTE, store_url: str | None = None,
                   notifications: Path | None = None, extra: str = "") -> str:
    """Return a config for the example in ``workdir``: its two sources, its rules, and
    notifications written as JSON lines to ``notifications`` (default
    ``workdir/notifications.jsonl``), plus any ``receivers`` given as TOML."""
    url = store_url or f"sqlite:///{workdir / 'monitor.db'}"
    notifications = notifications or workdir / "notifications.jsonl"
    return f"""
[store]
url = "{url}"
busy_timeout = "0.3s"

[rules]
paths = ["{workdir / 'rules'}"]
evaluation_interval = "1m"
watch = false

[notify]
poll_interval = "1s"
[notify.retry]
initial_backoff = "10s"
max_backoff = "2m"
timeout = "2s"
lease = "30s"
{route}
[[notify.receivers]]
name = "local"
send_resolved = true
[[notify.receivers.file]]
path = "{notifications}"
format = "json"
{receivers}

[[sources]]
name = "mps-2008-09"
kind = "csv"
path = "{workdir / 'data' / 'indicators.csv'}"
layout = "long"
indicator_column = "indicator"
labels = {{force = "force"}}
period_column = "period"
value_column = "value"
denominator_column = "denominator"
provisional_column = "provisional"
interval = "{interval}"

[[sources]]
name = "ct_plan"
kind = "milestones"
path = "{workdir / 'data' / 'ct-milestones.yaml'}"
interval = "{interval}"
{extra}
"""


@dataclass
class Rig:
    """The daemon's subsystems on one store and one movable clock."""

    settings: Settings
    store: Store
    clock: FixedClock
    registry: CollectorRegistry
    poller: Poller
    rules: RuleService
    notifier: Notifier
    workdir: Path
    # The last cycle's result, as the rule service handed it on (``on_evaluated``): its
    # transitions and removed alerts, which the service itself does not keep.
    evaluated: list[Evaluation] = field(default_factory=list)

    @property
    def last(self) -> Evaluation:
        assert self.evaluated, "no cycle evaluated yet"
        return self.evaluated[-1]

    def tick(self, advance: timedelta | None = None) -> list[PollResult]:
        """Move the clock by ``advance``, then poll due sources (respecting backoff),
        evaluate, run the pipeline and deliver. Returns the polls that ran."""
        if advance is not None:
            self.clock.advance(advance)
        polls = [r for name in self.poller.names
                 if (r := self.poller.scheduled_poll(name)) is not None]
        self.rules.evaluate()
        self.notifier.process_transitions()
        self.notifier.dispatch()
        return polls

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def notifications(self) -> list[dict[str, Any]]:
        """Return every notification the file receiver wrote, oldest first."""
        path = Path(self.settings.notify.receivers[0].file[0].path)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]

    def close(self) -> None:
        self.notifier.stop(1.0)
        self.poller.close()
        self.store.close()


def build_rig(workdir: Path, config_text: str, at: datetime) -> Rig:
    """Return a rig on the config ``config_text`` (written to ``workdir/config.toml``)
    with its clock at ``at``: the daemon's own assembly (``App.assemble``: store
    migrated, poller, rule service, notifier, rules loaded), without its scheduler."""
    config = workdir / "config.toml"
    config.write_text(config_text, encoding="utf-8")
    settings = load(config, environ={})
    clock = FixedClock(at)
    registry = CollectorRegistry()
    app = App(settings, config, clock=clock, registry=registry)
    app.assemble()
    assert app.store is not None and app.poller is not None and app.rules is not None \
        and app.notifier is not None
    rig = Rig(settings, app.store, clock, registry, app.poller, app.rules, app.notifier,
              workdir)
    daemon_hook = app.rules.on_evaluated

    def evaluated(result: Evaluation, saved: Saved) -> None:
        rig.evaluated[:] = [result]
        if daemon_hook is not None:
            daemon_hook(result, saved)

    app.rules.on_evaluated = evaluated
    return rig


def alerts_in(notifications: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (status, alert) for every alert of every notification, in order."""
    for notification in notifications:
        for alert in notification.get("alerts", []):
            yield alert["status"], alert
