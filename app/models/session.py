"""Login sessions and the refresh tokens that keep them alive."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import UTCDateTime, db

if TYPE_CHECKING:
    from app.models.account import Account


class AuthSession(db.Model):
    """One login: every access and refresh token carries or belongs to exactly one session.

    Revoking the row (``revoked_at``) ends every token of the session at once.
    """

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When an access token of the session was last accepted, to the minute (see
    # services.sessions.touch); refreshes are use too: the later of the two is shown.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Absolute end of the session, whatever the refreshes.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    # When and how the user last proved who they are (for step-up: auth_time, amr).
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    amr: Mapped[str] = mapped_column(String(64), default="pwd")
    # Cookie-session mode: the SHA-256 digest of the session cookie (None for a token login).
    cookie_hash: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))

    account: Mapped[Account] = relationship(back_populates="sessions")
    refresh_tokens: Mapped[list[RefreshToken]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def last_seen_at(self) -> datetime:
        """The session's last use: an accepted access token or a refresh, whichever is later."""
        return max(self.last_used_at or self.created_at, self.last_refreshed_at)

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    @property
    def amr_values(self) -> list[str]:
        return self.amr.split()


class RefreshToken(db.Model):
    """A refresh token, stored only as its SHA-256 digest. ``used_at`` marks it spent."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    session: Mapped[AuthSession] = relationship(back_populates="refresh_tokens")
