"""``python -m monitor`` and the ``monitor`` console script.

The CLI is imported when the command runs, not with this module: a Dask
``LocalCluster`` spawns its workers by running the daemon's script again, and a worker
must not load the CLI, the sources and the pages it never uses (``monitor.rules.worker``).
"""

from __future__ import annotations


def main() -> int:
    """Run the ``monitor`` command; return its exit status."""
    from monitor.cli import main as run

    return run()


if __name__ == "__main__":
    raise SystemExit(main())
