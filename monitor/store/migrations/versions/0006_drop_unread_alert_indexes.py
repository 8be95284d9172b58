"""drop the indexes no query reads: alert.rule, alert.state, alert_transition.alert_id;
alert_transition.group_name

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 18:00:00

No statement of the daemon, its commands or its API looks an alert up by rule or by
state (alerts are read whole, or by rule group), nor a transition by alert (the
notifier claims by id, the retention prunes by id and time). Yet each index took an
entry for every new alert or transition, at a random place in a large B-tree: at
100,000 series the first cycle wrote 157,000 of each, and a claim on PostgreSQL,
which changes an indexed column, wrote them again. The history (``alert_event``) keeps
its indexes by rule, alert and time: its reader uses all three.

Transitions also keep their rule group (``group_name``, empty for older rows), as the
history does: the history's copy of a save's transitions is then made from their rows
by the database (``INSERT … SELECT``), not a second row sent per transition.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_alert_rule", table_name="alert")
    op.drop_index("ix_alert_state", table_name="alert")
    op.drop_index("ix_alert_transition_alert_id", table_name="alert_transition")
    with op.batch_alter_table("alert_transition") as batch:
        batch.add_column(sa.Column("group_name", sa.String(length=200), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("alert_transition") as batch:
        batch.drop_column("group_name")
    op.create_index("ix_alert_transition_alert_id", "alert_transition", ["alert_id"])
    op.create_index("ix_alert_state", "alert", ["state"])
    op.create_index("ix_alert_rule", "alert", ["rule"])
