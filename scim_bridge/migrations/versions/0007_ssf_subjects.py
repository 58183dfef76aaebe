"""SSF subjects: the users a stream removed, and the email an event names its user by

Revision ID: 0007_ssf_subjects
Revises: 0006_ssf_streams

A stream that removes a subject (SSF 1.0 §8.1.3.3) gets no more of that user's events until it
adds them again: one row per (stream, user), which the outbox's fan-out looks up by its primary
key; it goes with the stream and with the user. A stream of format ``email`` names users by
the address they had when the event was recorded (``events.user_email``), so a retry sends the
same SET and a deleted user's ``account-purged`` still names them; older events have none and
fall back to ``iss_sub``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import scim_bridge.db

revision = "0007_ssf_subjects"
down_revision = "0006_ssf_streams"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("user_email", sa.String(length=512), nullable=True))
    op.create_table(
        "stream_removed_subjects",
        sa.Column("receiver_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("removed_at", scim_bridge.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["receiver_id"], ["receivers.id"],
            name=op.f("fk_stream_removed_subjects_receiver_id_receivers"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name=op.f("fk_stream_removed_subjects_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("receiver_id", "user_id", name=op.f("pk_stream_removed_subjects")),
    )
    op.create_index(op.f("ix_stream_removed_subjects_user_id"), "stream_removed_subjects",
                    ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_stream_removed_subjects_user_id"),
                  table_name="stream_removed_subjects")
    op.drop_table("stream_removed_subjects")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("user_email")
