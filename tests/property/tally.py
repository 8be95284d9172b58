"""How many generated inputs each property test fed its parser, for docs/reliability.md.

Every property test calls :func:`tally` once per example; the property suite's
conftest prints the totals at the end of the run and, when ``MONITOR_PROPERTY_REPORT``
names a file, writes them there as JSON.
"""

from __future__ import annotations

import os
from collections import Counter

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
