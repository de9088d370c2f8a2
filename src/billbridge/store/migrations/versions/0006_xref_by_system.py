"""target look-ups: xref by system and canonical id, outbox by target and record

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The dispatcher looks up a target's ids for the records a batch names.
    with op.batch_alter_table('xref', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_xref_system_canonical_id'),
                              ['system', 'canonical_id'], unique=False)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_target_record_id'),
                              ['target', 'record_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_target_record_id'))
    with op.batch_alter_table('xref', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_xref_system_canonical_id'))
