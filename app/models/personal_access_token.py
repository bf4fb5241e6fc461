"""Personal access tokens: opaque, scoped, long-lived credentials for scripts and CI."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import UTCDateTime, db


class PersonalAccessToken(db.Model):
    """A token an account made for itself, stored only as its SHA-256 digest (DATA-03).

    ``scopes`` is a space-separated subset of ``services/scopes.SCOPES``. Dead once
    ``revoked_at`` is set (by its owner, or by a password change or reset) or ``expires_at``
    has passed; deleted with its account (ON DELETE CASCADE, DATA-04).
    """

    __tablename__ = "personal_access_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Moved at most once a minute (services/personal_tokens.TOUCH_INTERVAL).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()
