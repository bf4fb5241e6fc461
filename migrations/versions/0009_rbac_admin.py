"""rbac: permissions of roles, disabled accounts

Revision ID: a9e6c7d8b0f1
Revises: f8d5b6c7a9e0
Create Date: 2026-11-26 03:30:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = 'a9e6c7d8b0f1'
down_revision = 'f8d5b6c7a9e0'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
