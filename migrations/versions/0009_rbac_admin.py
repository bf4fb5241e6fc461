"""rbac: permissions of roles, disabled accounts

Revision ID: a9e6c7d8b0f1
Revises: f8d5b6c7a9e0
Create Date: 2026-11-26 03:30:00

A new table, ``role_permissions``, seeded for the built-in ``admin`` role (every permission of
``services/permissions.PERMISSIONS`` as it stands in this release; ``user`` holds none). On
``accounts``: a nullable ``disabled_at`` (no default, so no table rewrite on PostgreSQL) and an
index on ``(created_at, id)`` for the admin listing's order and cursor, built CONCURRENTLY on
PostgreSQL outside the transaction so sign-ups and logins are not blocked while it builds
(OPS-04). The previous release ignores both: it never reads ``disabled_at`` or the table.
"""
from alembic import op
import sqlalchemy as sa


revision = 'a9e6c7d8b0f1'
down_revision = 'f8d5b6c7a9e0'
branch_labels = None
depends_on = None

# Frozen here: a permission added later is granted to admin by the migration that adds it.
ADMIN_PERMISSIONS = (
    'users:read', 'users:write', 'sessions:write', 'roles:read', 'roles:write', 'audit:read',
)


def upgrade():
    role_permissions = op.create_table(
        'role_permissions',
        sa.Column('role_name', sa.String(length=50), nullable=False),
        sa.Column('permission', sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ['role_name'], ['roles.name'],
            name=op.f('fk_role_permissions_role_name_roles'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('role_name', 'permission', name=op.f('pk_role_permissions')),
    )
    op.bulk_insert(
        role_permissions,
        [{'role_name': 'admin', 'permission': permission} for permission in ADMIN_PERMISSIONS],
    )
    with op.batch_alter_table('accounts') as batch_op:
        batch_op.add_column(sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            op.create_index(
                'ix_accounts_created_at_id', 'accounts', ['created_at', 'id'],
                postgresql_concurrently=True, if_not_exists=True,
            )
    else:
        op.create_index('ix_accounts_created_at_id', 'accounts', ['created_at', 'id'])


def downgrade():
    op.drop_index('ix_accounts_created_at_id', table_name='accounts')
    with op.batch_alter_table('accounts') as batch_op:
        batch_op.drop_column('disabled_at')
    op.drop_table('role_permissions')
