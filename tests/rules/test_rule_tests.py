"""`monitor test`: the series notation and the runner, on the shipped rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.rules.testing import Point, parse_series, run_test_file

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("120", [Point(120, None, False)], id="value"),
    pytest.param("120/400", [Point(120, 400, False)], id="proportion"),
    pytest.param("120p", [Point(120, None, True)], id="provisional"),
    pytest.param("_ 5", [None, Point(5, None, False)], id="missing"),
    pytest.param("100+5x3", [Point(v, None, False) for v in (100, 105, 110, 115)],
                 id="rising"),
    pytest.param("100-5x2", [Point(v, None, False) for v in (100, 95, 90)], id="falling"),
    pytest.param("7x2", [Point(7, None, False)] * 3, id="repeated"),
    pytest.param("_x2", [None, None, None], id="missing-run"),
    pytest.param("77/100x1", [Point(77, 100, False)] * 2, id="repeated-proportion"),
])
def test_it_expands_the_series_notation(text: str, expected: list[Point | None]) -> None:
    assert parse_series(text) == expected


@pytest.mark.parametrize("text", ["abc", "1+x3", "5+2", "1x99999"])
def test_it_names_the_token_that_is_not_notation(text: str) -> None:
    with pytest.raises(ValueError, match=r"notation|count|at most"):
        parse_series(text)


def test_the_shipped_rule_tests_pass() -> None:
    result = subprocess.run([sys.executable, "-m", "monitor", "test",
                             *map(str, sorted((REPO / "rules" / "tests").glob("*.test.yaml")))],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("passed, 0 failed")


def test_a_wrong_expectation_fails_with_the_difference(tmp_path: Path) -> None:
    shipped = (REPO / "rules" / "tests" / "mps-2008-09.test.yaml").read_text()
    wrong = shipped.replace('"Victim satisfaction 77.0% against a target of 78.9%"',
                            '"Victim satisfaction 70.0% against a target of 78.9%"')
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "mps-2008-09.yaml").write_text(
        (REPO / "rules" / "mps-2008-09.yaml").read_text())
    tests_dir = tmp_path / "rules" / "tests"
    tests_dir.mkdir()
    path = tests_dir / "wrong.test.yaml"
    path.write_text(wrong)
    report = run_test_file(path)
    assert report.tests == 4
    assert len(report.failures) == 1
    assert "annotation 'summary': expected 'Victim satisfaction 70.0%" in \
        report.failures[0].message
    assert report.failures[0].message.startswith(f"{path}:")


def test_an_alert_that_should_not_fire_is_reported(tmp_path: Path) -> None:
    shipped = (REPO / "rules" / "tests" / "mps-2008-09.test.yaml").read_text()
    wrong = shipped.replace("""      - eval_at: 2008-07
        alertname: CounterTerrorismMilestoneOverdue
        exp_alerts:
          - exp_labels: {milestone: CT-1, owner: SO15}
            exp_annotations:
              summary: "CT milestone CT-1 overdue by 31 days\"""", """      - eval_at: 2008-07
        alertname: CounterTerrorismMilestoneOverdue
        exp_alerts: []""")
    assert wrong != shipped
    rules_dir = tmp_path / "rules"
    (rules_dir / "tests").mkdir(parents=True)
    (rules_dir / "mps-2008-09.yaml").write_text((REPO / "rules" / "mps-2008-09.yaml").read_text())
    path = rules_dir / "tests" / "none.test.yaml"
    path.write_text(wrong)
    report = run_test_file(path)
    assert len(report.failures) == 1
    assert "unexpected firing alerts" in report.failures[0].message
    assert "'milestone', 'CT-1'" in report.failures[0].message
