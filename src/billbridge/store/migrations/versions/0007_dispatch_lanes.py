"""dispatch lanes: outbox commands by lane, lane leases, shared pacing

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every command written so far is in lane 0, which every target has.
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lane', sa.SmallInteger(), server_default='0',
                                      nullable=False))
        batch_op.drop_index(batch_op.f('ix_outbox_target_status_id'))
        batch_op.create_index(batch_op.f('ix_outbox_target_status_lane_id'),
                              ['target', 'status', 'lane', 'id'], unique=False)
    op.create_table('dispatch_lanes',
                    sa.Column('target', sa.String(length=64), nullable=False),
                    sa.Column('lane', sa.SmallInteger(), autoincrement=False, nullable=False),
                    sa.Column('lease_owner', sa.String(length=100), nullable=True),
                    sa.Column('lease_until_ms', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('target', 'lane', name=op.f('pk_dispatch_lanes')))
    # The target lease becomes lane leases; the row keeps the breaker and pacing.
    with op.batch_alter_table('target_leases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paced_until_us', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.drop_column('lease_owner')
        batch_op.drop_column('lease_until_ms')


def downgrade() -> None:
    with op.batch_alter_table('target_leases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_until_ms', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=100), nullable=True))
        batch_op.drop_column('paced_until_us')
    op.drop_table('dispatch_lanes')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_target_status_lane_id'))
        batch_op.create_index(batch_op.f('ix_outbox_target_status_id'),
                              ['target', 'status', 'id'], unique=False)
        batch_op.drop_column('lane')
