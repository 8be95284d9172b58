"""Regenerate migrations/versions/0001 from store/tables.py (pre-release only).

Until the first release there is one migration; a schema change regenerates it. After a
release, add a new revision instead: `alembic revision --autogenerate` against a store
at the previous head.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from monitor.store.db import MIGRATIONS, _alembic_config, make_engine


def main() -> None:
    for old in (MIGRATIONS / "versions").glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'empty.db'}")
        command.revision(_alembic_config(engine), message="initial schema", autogenerate=True,
                         rev_id="0001")
        engine.dispose()


if __name__ == "__main__":
    main()
