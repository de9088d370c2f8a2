"""api tokens: the sources and event types a token may submit

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

An ingest token could submit any event from any source, ERP-origin events
included (an invoice marked paid, a project's ERP id rewritten). A token that
may submit events now names its sources and event types; tokens made before
have neither and submit nothing until replaced by one that does.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('sources', sa.Text(), nullable=True))
        batch.add_column(sa.Column('event_types', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('event_types')
        batch.drop_column('sources')
