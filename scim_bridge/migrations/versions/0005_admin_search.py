"""indexes for the admin's prefix search over names and emails

Revision ID: 0005_admin_search
Revises: 0004_outbox

The search compares in code-point order (store/user_search.py). SQLite's existing indexes on
``user_name_key`` and ``user_values (attribute, value_key)`` already are in that order; it needs
only the lowered display, given and family names. PostgreSQL needs every one in ``COLLATE "C"``,
since its default collation orders differently and a prefix range would be inexact there.
"""

from __future__ import annotations

from alembic import op

revision = "0005_admin_search"
down_revision = "0004_outbox"
branch_labels = None
depends_on = None

_LOWERED = ("display_name", "name_given", "name_family")


def _indexes(dialect: str) -> dict[str, str]:
    collate = ' COLLATE "C"' if dialect == "postgresql" else ""
    indexes = {
        f"ix_users_tenant_lower_{column}": f"users (tenant_id, (lower({column}){collate}))"
        for column in _LOWERED
    }
    if dialect == "postgresql":
        indexes["ix_users_tenant_user_name_key_c"] = f"users (tenant_id, (user_name_key{collate}))"
        indexes["ix_user_values_attribute_value_key_c"] = (
            f"user_values (attribute, (value_key{collate}))"
        )
    return indexes


def upgrade() -> None:
    for name, target in _indexes(op.get_bind().dialect.name).items():
        op.execute(f"CREATE INDEX {name} ON {target}")


def downgrade() -> None:
    for name in _indexes(op.get_bind().dialect.name):
        op.execute(f"DROP INDEX {name}")
