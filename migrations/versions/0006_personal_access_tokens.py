"""personal_access_tokens: opaque, scoped tokens for scripts, stored only as digests

Revision ID: d6b3f4a5e7c8
Revises: c5a2e3f4d6b7
Create Date: 2026-11-26 03:25:00

A new table: only SHA-256 digests of the tokens are stored (DATA-03); rows go with their
account (ON DELETE CASCADE, DATA-04). Nothing existing is rewritten or locked beyond the
catalogue change (OPS-04).
"""
from alembic import op
import sqlalchemy as sa


revision = 'd6b3f4a5e7c8'
down_revision = 'c5a2e3f4d6b7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'personal_access_tokens',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('account_id', sa.Uuid(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('scopes', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('personal_access_tokens', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_personal_access_tokens_account_id'), ['account_id'], unique=False
        )


def downgrade():
    with op.batch_alter_table('personal_access_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_personal_access_tokens_account_id'))
    op.drop_table('personal_access_tokens')
