"""Two-factor authentication: TOTP factors, recovery codes and the login challenges between a
correct password and a second factor (``app/services/mfa.py`` has the workflows)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import UTCDateTime, db


class TotpFactor(db.Model):
    """An account's TOTP authenticator (RFC 6238): at most one per account.

    ``secret`` holds the base32 secret Fernet-encrypted under a key derived from ``SECRET_KEY``
    (HKDF-SHA256, info ``gatehouse totp``), never in clear. The factor is pending until a code
    confirms it (``confirmed_at``); only a confirmed factor guards logins. ``last_used_step``
    is the RFC 6238 time step of the last accepted code: a code is accepted only for a later
    step, set by compare-and-set, so no code is accepted twice (MFA-03).
    """

    __tablename__ = "totp_factors"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), unique=True
    )
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_step: Mapped[int | None] = mapped_column()


class RecoveryCode(db.Model):
    """A single-use recovery code, stored only as the SHA-256 digest of its canonical form.

    A plain digest is enough, unlike for passwords: each code has 80 random bits (16 base32
    characters from the CSPRNG), so there is nothing to guess from a leaked digest and no
    slow hash or salt would add anything. Codes are found by digest, never compared one by
    one; ``used_at`` spends one by compare-and-set.
    """

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MfaChallenge(db.Model):
    """What a correct password earns an account with a second factor: an ``mfa_token``.

    The token is 256 random bits, stored as its SHA-256 digest; it is not a JWT, so it can
    never pass as a Bearer token, nor an access token as it. It completes one login
    (``used_at``), before ``expires_at`` (``MFA_TOKEN_LIFETIME_SECONDS``), and dies after
    ``MFA_TOKEN_MAX_ATTEMPTS`` wrong codes (``failed_attempts``).
    """

    __tablename__ = "mfa_challenges"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
