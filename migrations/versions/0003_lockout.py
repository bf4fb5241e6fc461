"""accounts: failed-login count, lock and lock count (lockout, D-5)

Revision ID: 7d1c0e5b9a34
Revises: 88b98afca4eb
Create Date: 2026-11-26 01:10:00

Three columns with constant defaults: on PostgreSQL 11+ adding them rewrites nothing and holds
the table's lock only for the catalogue change (OPS-04); SQLite rebuilds the table in batch mode.
"""
from alembic import op
import sqlalchemy as sa


revision = '7d1c0e5b9a34'
down_revision = '88b98afca4eb'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_login_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lock_count', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('lock_count')
        batch_op.drop_column('locked_until')
        batch_op.drop_column('failed_login_count')
