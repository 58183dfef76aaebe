"""event feed: each event's causing request (txn) and writing transaction (xid)

``xid`` is filled in by the database: the writing transaction's id on PostgreSQL, 0 on
SQLite, whose writers are serialised so that id order is already commit order. Rows older than
the column get 0 too: they committed before any row that gets a real transaction id.

Revision ID: 0003_event_feed
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_event_feed"
down_revision = "0002"
branch_labels = None
depends_on = None

#: xid8 has no direct cast to bigint; its text form is the 64-bit number (epoch and xid).
CURRENT_TRANSACTION = "(pg_current_xact_id()::text::bigint)"


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("txn", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("xid", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.create_index(
            "ix_events_tenant_commit_order", ["tenant_id", "xid", "id"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("events", "xid", server_default=sa.text(CURRENT_TRANSACTION))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_index("ix_events_tenant_commit_order")
        batch_op.drop_column("xid")
        batch_op.drop_column("txn")
