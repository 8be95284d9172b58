"""alert history (alert_event) and KPI silences (silence.until_period)

Revision ID: 0003
Revises: 0002
Create Date: 2027-01-10 10:00:00

``alert_event`` keeps every alert episode: transitions with their value and explanation,
the notifications sent and the messages silences or inhibitions muted. It starts with
every transition the store already holds, so an upgraded daemon's history begins where
its records do. ``silence.until_period`` makes a silence last until a newer period's
data arrives.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'alert_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('alert_id', sa.String(length=40), nullable=False),
        sa.Column('rule', sa.String(length=200), nullable=False),
        sa.Column('group_name', sa.String(length=200), nullable=False),
        sa.Column('labels', sa.Text(), nullable=False),
        sa.Column('kind', sa.String(length=12), nullable=False),
        sa.Column('from_state', sa.String(length=10), nullable=False),
        sa.Column('to_state', sa.String(length=10), nullable=False),
        sa.Column('value', sa.Float(), nullable=True),
        sa.Column('explanation', sa.Text(), nullable=False),
        sa.Column('period', sa.String(length=20), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('alert_event', schema=None) as batch_op:
        batch_op.create_index('ix_alert_event_alert_at', ['alert_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_event_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_event_rule'), ['rule'], unique=False)
    with op.batch_alter_table('silence', schema=None) as batch_op:
        batch_op.add_column(sa.Column('until_period', sa.String(length=20), nullable=True))
    op.execute(
        "INSERT INTO alert_event (alert_id, rule, group_name, labels, kind, from_state, "
        "to_state, value, explanation, period, detail, at) "
        "SELECT alert_id, rule, '', labels, 'transition', from_state, to_state, value, "
        "explanation, '', '{}', at FROM alert_transition ORDER BY id")


def downgrade() -> None:
    with op.batch_alter_table('silence', schema=None) as batch_op:
        batch_op.drop_column('until_period')
    with op.batch_alter_table('alert_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_event_rule'))
        batch_op.drop_index(batch_op.f('ix_alert_event_at'))
        batch_op.drop_index('ix_alert_event_alert_at')
    op.drop_table('alert_event')
