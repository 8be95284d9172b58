"""How many generated inputs each property test fed its parser, for docs/reliability.md.

Every property test calls :func:`tally` once per example. This module is also a pytest
plugin (``tests/conftest.py`` loads it): at the end of the run it prints the totals and,
when ``MONITOR_PROPERTY_REPORT`` names a file, writes them there as JSON. Under
pytest-xdist each worker counts its own tests and hands its counts to the controller,
which adds them up and prints them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

EXAMPLES: Counter[str] = Counter()
# MONITOR_PROPERTY_EXAMPLES raises the examples per test for a long run (random inputs);
# the default keeps the fast suite fast and deterministic.
LONG_RUN = "MONITOR_PROPERTY_EXAMPLES" in os.environ
MAX_EXAMPLES = int(os.environ.get("MONITOR_PROPERTY_EXAMPLES", "60"))

# Applied per test (not as a global profile, which would change other suites' tests).
SETTINGS = settings(
    max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=not LONG_RUN,
    print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.function_scoped_fixture])


def tally(parser: str) -> None:
    """Count one generated input taken by ``parser``."""
    EXAMPLES[parser] += 1


def scaled(share: float) -> settings:
    """Return the suite's settings with ``share`` of its examples (at least 10)."""
    return settings(SETTINGS, max_examples=max(10, int(MAX_EXAMPLES * share)))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand this worker's counts to the controller."""
    workeroutput: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["property_examples"] = dict(EXAMPLES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the xdist controller: add up the counts a finished worker handed over."""
    EXAMPLES.update(getattr(node, "workeroutput", {}).get("property_examples", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not EXAMPLES:
        return
    terminalreporter.section("generated inputs taken without a traceback")
    for parser, count in sorted(EXAMPLES.items()):
        terminalreporter.write_line(f"{count:>8,}  {parser}")
    fuzzed = sum(n for parser, n in EXAMPLES.items() if parser.startswith("API fuzz"))
    if fuzzed:
        terminalreporter.write_line(f"{fuzzed:>8,}  distinct API fuzz requests sent")
    parsed = sum(n for parser, n in EXAMPLES.items() if not parser.startswith("API fuzz"))
    if parsed:
        terminalreporter.write_line(f"{parsed:>8,}  generated inputs, all parsers")
    report = os.environ.get("MONITOR_PROPERTY_REPORT")
    if report:
        Path(report).write_text(json.dumps(dict(sorted(EXAMPLES.items())), indent=2) + "\n")
