"""audit_events: a hash-chained, tamper-evident audit log

Revision ID: b0f7d8e9c1a2
Revises: a9e6c7d8b0f1
Create Date: 2026-11-26 03:30:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = 'b0f7d8e9c1a2'
down_revision = 'a9e6c7d8b0f1'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
