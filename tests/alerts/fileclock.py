"""A clock a test moves from outside the process: the daemon of tests/alerts/test_restart.py
runs on it, so the time its restart takes on a loaded machine is no time to its alerts."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path


class FileClock:
    """Reads the time from ``path`` (an ISO 8601 timestamp) each time it is asked."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def now(self) -> datetime:
        return datetime.fromisoformat(self.path.read_text(encoding="utf-8"))


def set_time(path: Path, at: datetime) -> None:
    """Move the clock in ``path`` to ``at`` in one step (a reader never sees half a time)."""
    part = path.with_suffix(".part")
    part.write_text(at.isoformat(), encoding="utf-8")
    os.replace(part, path)


if __name__ == "__main__":  # python -m tests.alerts.fileclock CLOCK_FILE COMMAND ARGS...
    from monitor.cli import main

    raise SystemExit(main(sys.argv[2:], clock=FileClock(Path(sys.argv[1]))))
