"""sessions: last_used_at, the cookie of cookie-session mode, an index on expires_at for the
purge; outbox_messages: the account a message is about (deleted with it)

Revision ID: f8d5b6c7a9e0
Revises: e7c4a5b6f8d9
Create Date: 2026-11-26 03:25:00

A nullable column (no table rewrite, no default to backfill: the listing falls back to the
last refresh) and an index (OPS-04: on PostgreSQL built CONCURRENTLY, outside the transaction,
so sign-ups and logins are not blocked while it builds).
"""
from alembic import op
import sqlalchemy as sa


revision = 'f8d5b6c7a9e0'
down_revision = 'e7c4a5b6f8d9'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outbox_messages') as batch_op:
        batch_op.add_column(sa.Column('account_id', sa.Uuid(), nullable=True))
        batch_op.create_index('ix_outbox_messages_account_id', ['account_id'])
        batch_op.create_foreign_key(
            'fk_outbox_messages_account_id_accounts', 'accounts', ['account_id'], ['id'],
            ondelete='CASCADE',
        )
    with op.batch_alter_table('sessions') as batch_op:
        batch_op.add_column(sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cookie_hash', sa.String(length=64), nullable=True))
    # Indexes on a table that may be large and busy: CONCURRENTLY on PostgreSQL (OPS-04).
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            op.create_index(
                'ix_sessions_expires_at', 'sessions', ['expires_at'],
                postgresql_concurrently=True, if_not_exists=True,
            )
            op.create_index(
                'ix_sessions_cookie_hash', 'sessions', ['cookie_hash'], unique=True,
                postgresql_concurrently=True, if_not_exists=True,
            )
    else:
        op.create_index('ix_sessions_expires_at', 'sessions', ['expires_at'])
        op.create_index('ix_sessions_cookie_hash', 'sessions', ['cookie_hash'], unique=True)


def downgrade():
    op.drop_index('ix_sessions_cookie_hash', table_name='sessions')
    op.drop_index('ix_sessions_expires_at', table_name='sessions')
    with op.batch_alter_table('sessions') as batch_op:
        batch_op.drop_column('cookie_hash')
        batch_op.drop_column('last_used_at')
    with op.batch_alter_table('outbox_messages') as batch_op:
        batch_op.drop_constraint('fk_outbox_messages_account_id_accounts', type_='foreignkey')
        batch_op.drop_index('ix_outbox_messages_account_id')
        batch_op.drop_column('account_id')
