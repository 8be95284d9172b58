"""alert group as a column; alert identity without the poll-order ``source`` label

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 21:00:00

Before this revision the rule group travelled inside an alert's labels as the hidden
``__group__`` label, and a KPI alert carried a ``source`` label only while one source
fed its indicator — so the same alert could be stored twice, with and without
``source``, depending on which source was polled first. This revision moves the group
into its own column and migrates every KPI alert to its one identity (group, rule and
the series' labels), once:

- ``source`` is dropped from the labels of KPI alerts (those with an ``indicator``
  label); milestone and source-health alerts keep it (it is their series' own label);
- when two stored records become one alert, the one that matters more is kept (firing,
  then pending, then resolved, then inactive; the latest evaluated first), the other is
  deleted; the notifier's copy of the alert follows the same rule.

Alert ids are unchanged for every alert that had no ``source`` label (the id hashes the
group under ``__group__`` as before; see ``monitor.model.alert_id``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

HEALTH_GROUP = "monitor:source-health"
RANK = {"firing": 0, "pending": 1, "resolved": 2, "inactive": 3}


def _fingerprint(labels: dict[str, str]) -> str:
    # A frozen copy of monitor.model.fingerprint: a migration must not change when the
    # code does.
    text = "\xfe".join(f"{k}\xff{v}" for k, v in sorted(labels.items()))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _new_identity(labels: dict[str, str], group: str) -> dict[str, str]:
    if group != HEALTH_GROUP and "indicator" in labels and "milestone" not in labels:
        return {k: v for k, v in labels.items() if k != "source"}
    return dict(labels)


def _priority(row: Any) -> tuple[int, str]:
    when = row.last_evaluated.isoformat() if row.last_evaluated is not None else ""
    inverted = "".join(chr(0x10FFFF - ord(c)) for c in when)  # latest first
    return RANK.get(row.state, 9), inverted


def upgrade() -> None:
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_name', sa.String(length=200), nullable=False,
                                      server_default=''))
    conn = op.get_bind()
    alert = sa.table('alert', sa.column('id', sa.String), sa.column('labels', sa.Text),
                     sa.column('group_name', sa.String), sa.column('state', sa.String),
                     sa.column('last_evaluated', sa.DateTime(timezone=True)))
    notify_alert = sa.table('notify_alert', sa.column('alert_id', sa.String),
                            sa.column('labels', sa.Text))
    rows = conn.execute(sa.select(alert)).all()
    wanted: dict[str, list[Any]] = {}
    plans: dict[str, tuple[str, dict[str, str], str]] = {}  # old id -> new id, labels, group
    for row in rows:
        labels = json.loads(row.labels)
        group = str(labels.pop("__group__", ""))
        labels = _new_identity(labels, group)
        new_id = _fingerprint({**labels, "__group__": group})
        plans[row.id] = (new_id, labels, group)
        wanted.setdefault(new_id, []).append(row)
    notified = {r.alert_id for r in conn.execute(sa.select(notify_alert.c.alert_id))}
    for new_id, candidates in wanted.items():
        keep, *drop = sorted(candidates, key=_priority)
        for row in drop:
            conn.execute(sa.delete(alert).where(alert.c.id == row.id))
            if row.id in notified and row.id != new_id:
                conn.execute(sa.delete(notify_alert).where(notify_alert.c.alert_id == row.id))
        _, labels, group = plans[keep.id]
        conn.execute(sa.update(alert).where(alert.c.id == keep.id).values(
            id=new_id, labels=json.dumps(labels, sort_keys=True), group_name=group))
        if keep.id != new_id and keep.id in notified:
            if new_id in notified:
                conn.execute(sa.delete(notify_alert).where(notify_alert.c.alert_id == keep.id))
            else:
                public = {k: v for k, v in labels.items() if not k.startswith("__")}
                conn.execute(sa.update(notify_alert).where(
                    notify_alert.c.alert_id == keep.id).values(
                    alert_id=new_id, labels=json.dumps(public, sort_keys=True)))


def downgrade() -> None:
    conn = op.get_bind()
    alert = sa.table('alert', sa.column('id', sa.String), sa.column('labels', sa.Text),
                     sa.column('group_name', sa.String))
    for row in conn.execute(sa.select(alert)).all():
        labels = json.loads(row.labels)
        labels["__group__"] = row.group_name
        conn.execute(sa.update(alert).where(alert.c.id == row.id).values(
            labels=json.dumps(labels, sort_keys=True)))
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_column('group_name')
