"""series.part: each series' position under the partition key, indexed

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 07:00:00

A distributed evaluation's partition read every series' key labels out of its JSON to
find its own (every partition scanned the whole series table). Each series now holds
its position under the stored partition key (``monitor/store/partkey.py``), indexed
with its indicator, so a partition reads a range. Old rows get none here: the first
distributed cycle stores its key and computes every series' position once; until then
reads take the old way. The key's row is created empty, so an ingest always has a row
to share-lock on PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("series") as batch:
        batch.add_column(sa.Column("part", sa.BigInteger(), nullable=True))
    op.create_index("ix_series_part", "series", ["indicator_id", "part"])
    op.execute("INSERT INTO monitor_meta (key, value) VALUES ('partition_key', '') "
               "ON CONFLICT (key) DO NOTHING")


def downgrade() -> None:
    op.execute("DELETE FROM monitor_meta WHERE key = 'partition_key'")
    op.drop_index("ix_series_part", table_name="series")
    with op.batch_alter_table("series") as batch:
        batch.drop_column("part")
