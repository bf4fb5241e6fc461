"""account_tokens: one-time tokens mailed for verification, password reset and email change

Revision ID: c5a2e3f4d6b7
Revises: b4f1c2d3e5a6
Create Date: 2026-11-26 02:05:00

A new table: only digests of the tokens are stored (EM-02, DATA-03). Nothing existing is
rewritten or locked beyond the catalogue change (OPS-04).
"""
from alembic import op
import sqlalchemy as sa


revision = 'c5a2e3f4d6b7'
down_revision = 'b4f1c2d3e5a6'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'account_tokens',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('account_id', sa.Uuid(), nullable=False),
        sa.Column('purpose', sa.String(length=32), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('email_key', sa.String(length=254), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('account_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_tokens_account_id'), ['account_id'], unique=False)


def downgrade():
    with op.batch_alter_table('account_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_tokens_account_id'))
    op.drop_table('account_tokens')
