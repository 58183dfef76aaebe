"""token names unique per tenant; deployment settings (the persisted issuer)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.drop_constraint("uq_api_tokens_name", type_="unique")
        batch_op.create_unique_constraint("uq_api_tokens_tenant_name", ["tenant_id", "name"])
    op.create_table(
        "deployment_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_deployment_settings")),
    )


def downgrade() -> None:
    op.drop_table("deployment_settings")
    with op.batch_alter_table("api_tokens") as batch_op:
        batch_op.drop_constraint("uq_api_tokens_tenant_name", type_="unique")
        batch_op.create_unique_constraint("uq_api_tokens_name", ["name"])
