"""Operator tools on a real store: backtest, diff, and reloading edited rule files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.clock import SystemClock
from monitor.model import month
from monitor.rules.commands import backtest
from monitor.rules.cycle import Evaluator
from monitor.rules.engine import Dataset
from monitor.rules.loader import load_rules
from monitor.rules.service import RuleService
from monitor.store import open_store
from tests.rules.conftest import REPO

MPS = "Metropolitan Police Service"


def test_backtest_reports_when_the_divergence_alert_fired(seed_dataset: Dataset) -> None:
    ruleset = load_rules([REPO / "rules"])
    events = backtest(Evaluator(ruleset), seed_dataset, month("2007-08"), month("2008-07"))
    fired = [e for e in events if e["alertname"] == "BurglaryRisingWhileAcquisitiveCrimeFalls"
             and e["event"] == "firing"]
    assert fired, "the divergence never fired"
    first = fired[0]
    assert first["labels"]["force"] == MPS
    assert "Residential burglary is up" in first["explanation"]
    assert "Serious acquisitive crime rate is down" in first["explanation"]
    assert [e["period"] for e in events] == sorted(e["period"] for e in events)


def _service(tmp_path: Path, rules_dir: Path) -> RuleService:
    store = open_store(f"sqlite:///{tmp_path / 'monitor.db'}")
    service = RuleService(store, [str(rules_dir)], SystemClock(), CollectorRegistry(),
                          as_of="2008-07", milestone_sources=lambda: ["ct_plan"])
    return service


def _config(tmp_path: Path, rules_dir: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'monitor.db'}"
[rules]
paths = ["{rules_dir}"]
as_of = "2008-07"
[[sources]]
name = "mps-2008-09"
kind = "csv"
path = "{REPO / 'examples/mps-2008-09/data/indicators.csv'}"
indicator_column = "indicator"
labels = {{force = "force"}}
denominator_column = "denominator"
provisional_column = "provisional"
[[sources]]
name = "ct_plan"
kind = "milestones"
path = "{REPO / 'examples/mps-2008-09/data/ct-milestones.yaml'}"
""")
    return path


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_diff_shows_which_alerts_an_edited_rule_file_would_change(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules_dir)
    config = _config(tmp_path, rules_dir)
    # The running daemon's state: poll, evaluate and persist once.
    assert _run(["eval", "--at", "2008-07", "--poll", "--config", str(config)],
                tmp_path).returncode == 0
    service = _service(tmp_path, rules_dir)
    service.load()
    service.evaluate()
    service.store.close()
    assert _run(["diff", "--config", str(config)], tmp_path).stdout.strip() == \
        "no alert would change state"
    # Lower the DV arrest-rate target below the 65.8% achieved.
    rule_file = rules_dir / "mps-2008-09.yaml"
    text = rule_file.read_text()
    rule_file.write_text(text.replace('"2008/09": {kind: level, value: 67}',
                                      '"2008/09": {kind: level, value: 60}'))
    result = _run(["diff", "--config", str(config)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'DomesticViolenceArrestRateBelowTarget {force="Metropolitan Police Service"}: ' \
           'firing -> resolved' in result.stdout
    assert result.stdout.count(" -> ") == 1


def test_an_edited_rule_file_reloads_and_a_broken_one_keeps_the_last_good_set(
        tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    rule_file = rules_dir / "r.yaml"
    rule_file.write_text("""\
indicators:
  - {id: burglary, name: Burglary, direction: down}
groups:
  - name: g
    rules:
      - {alert: High, indicator: burglary, when: {level: {above: 10}}}
""")
    service = _service(tmp_path, rules_dir)
    service.load()
    assert [r.rule.alert for r in service.ruleset.rules] == ["High"]  # type: ignore[union-attr]
    rule_file.write_text(rule_file.read_text() + """\
      - {alert: Low, indicator: burglary, when: {level: {below: 1}}}
""")
    os.utime(rule_file, (1, 1))  # a different mtime, whatever the clock's resolution
    service.reload_if_changed()
    assert [r.rule.alert for r in service.ruleset.rules] == ["High", "Low"]  # type: ignore[union-attr]
    assert service.metrics.reload_ok._value.get() == 1
    rule_file.write_text("groups: [ {name: g, rules: [ {alert: Bad, when: {levle: {}}} ]} ]\n")
    os.utime(rule_file, (2, 2))
    service.reload_if_changed()
    assert [r.rule.alert for r in service.ruleset.rules] == ["High", "Low"]  # type: ignore[union-attr]
    assert service.metrics.reload_ok._value.get() == 0
    service.store.close()


def test_eval_prints_a_label_with_line_breaks_on_its_own_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    data = tmp_path / "kpi.csv"
    data.write_text("indicator,area,period,value\n" + "".join(
        f'kpi_x,"Barnet\r\nBcc: x@y",{year}-{m:02d},{10 + m}\nkpi_x,Camden,{year}-{m:02d},0\n'
        for year in (2007, 2008) for m in range(1, 13)), newline="")
    rules = tmp_path / "rules.yaml"
    rules.write_text("""
indicators:
  - {id: kpi_x, name: "Crimes in an area", reference: "X 1", group: "Crime", unit: count,
     direction: down}
groups:
  - name: g
    rules:
      - alert: HighX
        indicator: kpi_x
        when: {level: {above: 10}}
""")
    config = tmp_path / "config.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'monitor.db'}"
[rules]
paths = ["{rules}"]
[[sources]]
name = "x"
kind = "csv"
path = "{data}"
indicator_column = "indicator"
labels = {{area = "area"}}
""")
    assert main(["eval", "--at", "2008-07", "--poll", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "\r" not in out
    assert not any(line.startswith("Bcc:") for line in out.splitlines())
    assert 'HighX {area="Barnet\\r\\nBcc: x@y"}' in out
    assert 'Crimes in an area {area="Barnet\\r\\nBcc: x@y"}' in out  # the scorecard row
