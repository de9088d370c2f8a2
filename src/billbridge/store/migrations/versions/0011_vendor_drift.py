"""vendor drift: fields a vendor sent that its connector's contract does not
know, optional fields missing, types changed, per connection; and each
connection's reviewed baseline

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'vendor_drift',
        sa.Column('connection', sa.String(length=100), nullable=False),
        sa.Column('record_type', sa.String(length=100), nullable=False),
        sa.Column('field', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=30), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('expected', sa.String(length=30), nullable=False),
        sa.Column('seen', sa.String(length=30), nullable=False),
        sa.Column('api_version', sa.String(length=30), nullable=False),
        sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sample', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('connection', 'record_type', 'field', 'kind',
                                name=op.f('pk_vendor_drift')))
    op.create_table(
        'vendor_baselines',
        sa.Column('connection', sa.String(length=100), nullable=False),
        sa.Column('api_version', sa.String(length=30), nullable=False),
        sa.Column('shape', sa.Text(), nullable=False),
        sa.Column('recorded_by', sa.String(length=200), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('connection', name=op.f('pk_vendor_baselines')))


def downgrade() -> None:
    op.drop_table('vendor_baselines')
    op.drop_table('vendor_drift')
