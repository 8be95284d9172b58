"""The bundled examples' configs, rewritten to run in a temp folder, and the daemon on them.

``example_config`` copies a shipped config with its store, notification files and port
moved into ``workdir`` and every relative path made absolute — nothing else changes, so
the daemon runs exactly what a user runs. ``assembled`` builds the daemon's own
subsystems (``App.assemble``) on a movable clock, without the scheduler.
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.clock import FixedClock
from monitor.settings import load
from tests.conftest import REPO, free_port

CONFIGS = {
    "london": REPO / "examples" / "london-boroughs" / "config.toml",
    "mps": REPO / "config.example.toml",
}


def example_config(name: str, workdir: Path) -> Path:
    """Write the example ``name`` ("london" or "mps") to ``workdir/config.toml``."""
    text = CONFIGS[name].read_text(encoding="utf-8")
    text = re.sub(r'^url = "sqlite:///[^"]*"', f'url = "sqlite:///{workdir / "store.db"}"',
                  text, flags=re.MULTILINE)
    text = re.sub(r'^listen = "[^"]*"', f'listen = "127.0.0.1:{free_port()}"', text,
                  flags=re.MULTILINE)
    text = re.sub(r'^path = "var/([^"]*)"', lambda m: f'path = "{workdir / m.group(1)}"',
                  text, flags=re.MULTILINE)
    text = re.sub(r'"((?:examples|rules)[^"]*)"', lambda m: f'"{REPO / m.group(1)}"', text)
    path = workdir / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def assembled(config: Path, clock: FixedClock) -> App:
    """Return the daemon on ``config``, assembled (store migrated, rules loaded) with
    ``clock``, its scheduler not started: the test drives polls and cycles."""
    app = App(load(config, environ={}), config, clock=clock, registry=CollectorRegistry())
    app.assemble()
    return app
