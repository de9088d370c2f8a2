"""console sessions held server-side

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

The console's cookie carried the API token itself, so logging out revoked
nothing and an eight-hour cookie carried a ninety-day token. A session is now
a row: the browser holds a random id, the store its SHA-256, with who it is,
its role, when it expires and whether it was revoked.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('console_sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_console_sessions'))
    )


def downgrade() -> None:
    op.drop_table('console_sessions')
