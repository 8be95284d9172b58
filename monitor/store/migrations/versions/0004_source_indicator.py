"""source_indicator: which sources have fed which indicators, kept at write time

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 23:55:00

Which sources feed an indicator is read at every dataset read (an alert's ``sources``
annotation, the source-health holds). Computed from the observations it joined every
stored value to its series: seconds at millions of observations. This revision keeps
the answer in a small table that ingestion adds to, filled here once from the join.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_indicator",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("indicator_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("source", "indicator_id"),
    )
    op.execute("INSERT INTO source_indicator (source, indicator_id) "
               "SELECT DISTINCT o.source, s.indicator_id FROM observation o "
               "JOIN series s ON s.id = o.series_id")


def downgrade() -> None:
    op.drop_table("source_indicator")
