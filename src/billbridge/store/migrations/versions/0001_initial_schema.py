"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Alembic's order (tables by name), kept so the DDL is the same statement for
    # statement; each table is created with its indexes.
    _aggregates()
    _audit_log()
    _config_versions()
    _cursors()
    _delivery_attempts()
    _exceptions()
    _inbox()
    _outbox()
    _records()
    _target_leases()
    _xref()


def _aggregates() -> None:
    op.create_table('aggregates',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('pending', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_until_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_aggregates'))
    )
    with op.batch_alter_table('aggregates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aggregates_pending_lease_until_ms'), ['pending', 'lease_until_ms'], unique=False)


def _audit_log() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )


def _config_versions() -> None:
    op.create_table('config_versions',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('proposed_by', sa.String(length=100), nullable=False),
    sa.Column('approved_by', sa.String(length=100), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_config_versions'))
    )


def _cursors() -> None:
    op.create_table('cursors',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('source', 'stream', name=op.f('pk_cursors'))
    )


def _delivery_attempts() -> None:
    op.create_table('delivery_attempts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('outbox_id', sa.BigInteger(), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('correlation_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_attempts'))
    )
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_attempts_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_attempts_outbox_id'), ['outbox_id'], unique=False)


def _exceptions() -> None:
    op.create_table('exceptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('inbox_id', sa.BigInteger(), nullable=True),
    sa.Column('outbox_id', sa.BigInteger(), nullable=True),
    sa.Column('record_kind', sa.String(length=32), nullable=True),
    sa.Column('record_id', sa.String(length=200), nullable=True),
    sa.Column('raw', sa.Text(), nullable=True),
    sa.Column('correlation_id', sa.String(length=64), nullable=False),
    sa.Column('config_version', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('resolved_by', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exceptions'))
    )
    with op.batch_alter_table('exceptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exceptions_correlation_id'), ['correlation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exceptions_inbox_id'), ['inbox_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exceptions_outbox_id'), ['outbox_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exceptions_status_reason'), ['status', 'reason'], unique=False)


def _inbox() -> None:
    op.create_table('inbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('aggregate_key', sa.String(length=200), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('raw', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('waiting_on', sa.String(length=200), nullable=True),
    sa.Column('replay', sa.Boolean(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('config_version', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox')),
    sa.UniqueConstraint('source', 'event_id', name=op.f('uq_inbox_source_event_id'))
    )
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_aggregate_key_status_id'), ['aggregate_key', 'status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbox_correlation_id'), ['correlation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbox_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbox_waiting_on'), ['waiting_on'], unique=False)


def _outbox() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('aggregate_key', sa.String(length=200), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=False),
    sa.Column('inbox_id', sa.BigInteger(), nullable=True),
    sa.Column('record_kind', sa.String(length=32), nullable=True),
    sa.Column('record_id', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_ms', sa.BigInteger(), nullable=False),
    sa.Column('depends_on', sa.String(length=128), nullable=True),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('target', 'idempotency_key', name=op.f('uq_outbox_target_idempotency_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_correlation_id'), ['correlation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_record_kind_record_id'), ['record_kind', 'record_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_target_status_id'), ['target', 'status', 'id'], unique=False)


def _records() -> None:
    op.create_table('records',
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=True),
    sa.Column('correlation_id', sa.String(length=64), nullable=False),
    sa.Column('config_version', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'id', name=op.f('pk_records'))
    )
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_records_correlation_id'), ['correlation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_records_kind_status'), ['kind', 'status'], unique=False)


def _target_leases() -> None:
    op.create_table('target_leases',
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('lease_owner', sa.String(length=100), nullable=True),
    sa.Column('lease_until_ms', sa.BigInteger(), nullable=False),
    sa.Column('circuit', sa.String(length=16), nullable=False),
    sa.Column('circuit_until_ms', sa.BigInteger(), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('target', name=op.f('pk_target_leases'))
    )


def _xref() -> None:
    op.create_table('xref',
    sa.Column('system', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('canonical_id', sa.String(length=200), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('system', 'kind', 'external_id', name=op.f('pk_xref'))
    )
    with op.batch_alter_table('xref', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_xref_kind_canonical_id'), ['kind', 'canonical_id'], unique=False)

def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('xref', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_xref_kind_canonical_id'))

    op.drop_table('xref')
    op.drop_table('target_leases')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_records_kind_status'))
        batch_op.drop_index(batch_op.f('ix_records_correlation_id'))

    op.drop_table('records')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_target_status_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_record_kind_record_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_correlation_id'))

    op.drop_table('outbox')
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbox_waiting_on'))
        batch_op.drop_index(batch_op.f('ix_inbox_status'))
        batch_op.drop_index(batch_op.f('ix_inbox_correlation_id'))
        batch_op.drop_index(batch_op.f('ix_inbox_aggregate_key_status_id'))

    op.drop_table('inbox')
    with op.batch_alter_table('exceptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exceptions_status_reason'))
        batch_op.drop_index(batch_op.f('ix_exceptions_outbox_id'))
        batch_op.drop_index(batch_op.f('ix_exceptions_inbox_id'))
        batch_op.drop_index(batch_op.f('ix_exceptions_correlation_id'))

    op.drop_table('exceptions')
    with op.batch_alter_table('delivery_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_attempts_outbox_id'))
        batch_op.drop_index(batch_op.f('ix_delivery_attempts_batch_id'))

    op.drop_table('delivery_attempts')
    op.drop_table('cursors')
    op.drop_table('config_versions')
    op.drop_table('audit_log')
    with op.batch_alter_table('aggregates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_aggregates_pending_lease_until_ms'))

    op.drop_table('aggregates')
    # ### end Alembic commands ###
