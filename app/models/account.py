"""Accounts and their roles."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Column, ForeignKey, Index, String, Table, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import UTCDateTime, db

if TYPE_CHECKING:
    from app.models.session import AuthSession

account_roles = Table(
    "account_roles",
    db.metadata,
    Column(
        "account_id",
        Uuid,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "role_name",
        String(50),
        ForeignKey("roles.name", ondelete="RESTRICT"),
        primary_key=True,
    ),
)


class RolePermission(db.Model):
    """One permission (from ``services/permissions.PERMISSIONS``) a role holds."""

    __tablename__ = "role_permissions"

    role_name: Mapped[str] = mapped_column(
        String(50), ForeignKey("roles.name", ondelete="CASCADE"), primary_key=True
    )
    permission: Mapped[str] = mapped_column(String(50), primary_key=True)


class Role(db.Model):
    """A named role; built-in ones (``user``, ``admin``) are created by the first migration,
    their permissions by ``0009_rbac_admin``."""

    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    description: Mapped[str] = mapped_column(String(200), default="")

    permission_rows: Mapped[list[RolePermission]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="selectin"
    )

    @property
    def permissions(self) -> list[str]:
        return sorted(row.permission for row in self.permission_rows)


class Account(db.Model):
    """A user account. ``email_key`` is the case-folded address the unique index guards."""

    __tablename__ = "accounts"
    # The admin listing's order and cursor (services/admin.py).
    __table_args__ = (Index("ix_accounts_created_at_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254))
    email_key: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    email_verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Lockout (services/lockout.py): wrong passwords in a row, the lock, and how many locks
    # followed each other without a success (each doubles the next).
    failed_login_count: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lock_count: Mapped[int] = mapped_column(default=0, server_default="0")
    # Set by an administrator: no login, no credential works, until enabled again.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    roles: Mapped[list[Role]] = relationship(secondary=account_roles)
    sessions: Mapped[list[AuthSession]] = relationship(
        back_populates="account", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def role_names(self) -> list[str]:
        return sorted(role.name for role in self.roles)

    @property
    def permissions(self) -> frozenset[str]:
        """Every permission of every role the account holds."""
        return frozenset(row.permission for role in self.roles for row in role.permission_rows)

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None
