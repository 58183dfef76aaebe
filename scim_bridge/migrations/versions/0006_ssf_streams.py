"""SSF poll acknowledgements: the jtis of a delivery's SETs a receiver acknowledged

Revision ID: 0006_ssf_streams
Revises: 0005_admin_search

SSF streams are receivers of kind ``ssf_stream`` (push) or ``ssf_poll`` (RFC 8936 poll), whose
configuration is the receiver's ``config`` JSON: no new table. A delivery carries one SET per
ended session, and a poll receiver acknowledges SETs one ``jti`` at a time, so the row keeps the
acknowledged ones until all are (then it is delivered).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_ssf_streams"
down_revision = "0005_admin_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("acked", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("acked")
