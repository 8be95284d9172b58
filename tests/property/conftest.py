"""The property suite: a shared hypothesis profile and the tally of generated inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.property.tally import EXAMPLES


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
