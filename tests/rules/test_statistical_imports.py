"""A daemon imports what its rules' statistical tests call (scipy) when it loads the
rules, not in its first cycle after a poll, where ``scipy.stats`` alone took 0.86 CPU-s;
rules that run no such test never load scipy (a distributed worker's memory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RULES = """
indicators:
  - {{id: burglary, name: Burglary, direction: down}}
groups:
  - name: crime
    rules:
      - alert: BurglaryUp
        indicator: burglary
        when:
          {when}
"""
LOADED = """
import json, sys
from monitor.rules.cycle import Evaluator
from monitor.rules.loader import load_rules
Evaluator(load_rules([{folder!r}]))
print(json.dumps(sorted(m for m in ("scipy.stats", "scipy.special") if m in sys.modules)))
"""


def _loaded_with(tmp_path: Path, when: str) -> list[str]:
    """Return which scipy modules a fresh interpreter holds once an Evaluator of a rule
    ``when`` is made (nothing evaluated)."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES.format(when=when), encoding="utf-8")
    out = subprocess.run([sys.executable, "-c", LOADED.format(folder=str(tmp_path / "rules"))],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(("when", "loaded"), [
    ("{significance: {test: poisson, compare: last_year}}", ["scipy.special", "scipy.stats"]),
    ("{trend: {test: mann_kendall, periods: 12, direction: rising}}", ["scipy.special"]),
    ("{trend: {test: consecutive, run: 3, direction: rising}}", []),
    ("{change: {window: 12, above: 5}}", []),
])
def test_the_rules_statistical_tests_are_imported_with_the_rules_and_only_theirs(
        tmp_path: Path, when: str, loaded: list[str]) -> None:
    assert _loaded_with(tmp_path, when) == loaded
