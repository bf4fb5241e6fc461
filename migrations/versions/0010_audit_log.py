"""audit_events: a hash-chained, tamper-evident audit log

Revision ID: b0f7d8e9c1a2
Revises: a9e6c7d8b0f1
Create Date: 2026-11-26 03:30:00

Three new tables, nothing existing touched (OPS-04): ``audit_events`` (the records, keyed by
their sequence; no foreign key to ``accounts``, so deleting an account keeps the chain whole,
D-8), ``audit_chain_head`` (one row, created by the first append: the sequence and hash of the
last record, locked by each append) and ``audit_checkpoints`` (where purges cut the chain).
The previous release never reads them.
"""
from alembic import op
import sqlalchemy as sa


revision = 'b0f7d8e9c1a2'
down_revision = 'a9e6c7d8b0f1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'audit_events',
        sa.Column('sequence', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('event', sa.String(length=64), nullable=False),
        sa.Column('actor_id', sa.Uuid(), nullable=True),
        sa.Column('subject_id', sa.Uuid(), nullable=True),
        sa.Column('outcome', sa.String(length=32), nullable=False),
        sa.Column('client_ip', sa.String(length=45), nullable=True),
        sa.Column('user_agent', sa.String(length=255), nullable=True),
        sa.Column('request_id', sa.String(length=128), nullable=True),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('prev_hash', sa.String(length=64), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('sequence', name=op.f('pk_audit_events')),
    )
    op.create_index(
        'ix_audit_events_subject_id_sequence', 'audit_events', ['subject_id', 'sequence']
    )
    op.create_index('ix_audit_events_actor_id_sequence', 'audit_events', ['actor_id', 'sequence'])
    op.create_index('ix_audit_events_event_sequence', 'audit_events', ['event', 'sequence'])
    op.create_index('ix_audit_events_occurred_at', 'audit_events', ['occurred_at'])
    op.create_table(
        'audit_chain_head',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('sequence', sa.BigInteger(), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head')),
    )
    op.create_table(
        'audit_checkpoints',
        sa.Column('sequence', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('purged', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('sequence', name=op.f('pk_audit_checkpoints')),
    )


def downgrade():
    op.drop_table('audit_checkpoints')
    op.drop_table('audit_chain_head')
    op.drop_index('ix_audit_events_occurred_at', table_name='audit_events')
    op.drop_index('ix_audit_events_event_sequence', table_name='audit_events')
    op.drop_index('ix_audit_events_actor_id_sequence', table_name='audit_events')
    op.drop_index('ix_audit_events_subject_id_sequence', table_name='audit_events')
    op.drop_table('audit_events')
