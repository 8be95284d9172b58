"""Rule files: every mistake reported at once, with file:line:column and the rule's name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.errors import RuleFileError
from monitor.rules.loader import load_rules

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def test_it_reports_five_different_mistakes_with_their_lines() -> None:
    path = HERE / "files" / "five-mistakes.bad.yaml"
    with pytest.raises(RuleFileError) as caught:
        load_rules([path])
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:7:5: indicator \"robbery\": direction: Input should be 'up', 'down' or "
        "'neutral'",
        f'{path}:11:23: indicator "acquisitive": unknown indicator "robery"',
        f'{path}:16:9: rule "BurglaryRising": unknown indicator "burglery" '
        '(did you mean "burglary"?)',
        f"{path}:22:11: rule \"Typo\": when: unknown condition 'levle' "
        '(did you mean "level"?)',
        f'{path}:28:11: rule "BadTemplate": annotations.summary: template does not compile: '
        "unexpected end of template, expected 'end of print statement'.",
    ]


def test_monitor_check_prints_them_and_exits_1() -> None:
    result = subprocess.run([sys.executable, "-m", "monitor", "check",
                             str(HERE / "files" / "five-mistakes.bad.yaml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "5 problems found" in result.stderr
    assert 'rule "BurglaryRising": unknown indicator "burglery"' in result.stderr


def test_monitor_check_passes_the_shipped_rules() -> None:
    result = subprocess.run([sys.executable, "-m", "monitor", "check", str(REPO / "rules")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ")


def test_it_finds_cycles_between_derived_indicators(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text("""\
indicators:
  - {id: a, name: A, derived: {sum: [b, c]}}
  - {id: b, name: B, derived: {sum: [a, c]}}
  - {id: c, name: C}
""")
    with pytest.raises(RuleFileError, match=r"cycle\.yaml:2:5: indicator \"a\": derived "
                                            r"indicators form a cycle: a -> b -> a"):
        load_rules([path])


def test_it_reads_on_as_a_key_not_a_boolean(tmp_path: Path) -> None:
    path = tmp_path / "on.yaml"
    path.write_text("""\
indicators:
  - {id: a, name: A}
  - {id: b, name: B}
  - id: c
    name: C
    derived: {sum: [a, b], on: [borough]}
""")
    ruleset = load_rules([path])
    derived = ruleset.indicators["c"].derived
    assert derived is not None and derived.on == ["borough"]


def test_it_reports_bad_yaml_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("groups:\n  - name: x\n    rules: [\n")
    with pytest.raises(RuleFileError, match=r"broken\.yaml:4:1: not valid YAML"):
        load_rules([path])
