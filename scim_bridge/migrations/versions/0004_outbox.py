"""outbox: receivers, subscriptions, deliveries and their attempts

Revision ID: 0004_outbox
Revises: 0003_event_feed
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import scim_bridge.db

revision = '0004_outbox'
down_revision = '0003_event_feed'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('receivers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', scim_bridge.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_receivers_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receivers'))
    )
    with op.batch_alter_table('receivers', schema=None) as batch_op:
        batch_op.create_index('ix_receivers_tenant_kind', ['tenant_id', 'kind'], unique=False)

    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('receiver_id', sa.String(length=64), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', scim_bridge.db.UTCDateTime(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', scim_bridge.db.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', scim_bridge.db.UTCDateTime(), nullable=False),
    sa.Column('replayed_at', scim_bridge.db.UTCDateTime(), nullable=True),
    sa.Column('delivered_at', scim_bridge.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_deliveries_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['receiver_id'], ['receivers.id'], name=op.f('fk_deliveries_receiver_id_receivers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_due', ['next_attempt_at', 'id'], unique=False,
                              sqlite_where=sa.text("state IN ('pending', 'retrying')"),
                              postgresql_where=sa.text("state IN ('pending', 'retrying')"))
        batch_op.create_index('ix_deliveries_event', ['event_id'], unique=False)
        batch_op.create_index('ix_deliveries_order', ['receiver_id', 'subject', 'id'], unique=False)

    op.create_table('receiver_event_types',
    sa.Column('receiver_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['receiver_id'], ['receivers.id'], name=op.f('fk_receiver_event_types_receiver_id_receivers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('receiver_id', 'event_type', name=op.f('pk_receiver_event_types'))
    )
    op.create_table('delivery_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('at', scim_bridge.db.UTCDateTime(), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('latency_ms', sa.Double(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_delivery_attempts_delivery_id_deliveries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_attempts'))
    )
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_attempts_delivery_id'), ['delivery_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_attempts_delivery_id'))

    op.drop_table('delivery_attempts')
    op.drop_table('receiver_event_types')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_order')
        batch_op.drop_index('ix_deliveries_event')
        batch_op.drop_index('ix_deliveries_due')

    op.drop_table('deliveries')
    with op.batch_alter_table('receivers', schema=None) as batch_op:
        batch_op.drop_index('ix_receivers_tenant_kind')

    op.drop_table('receivers')
