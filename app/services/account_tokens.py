"""One-time tokens mailed to an account: email verification, password reset, email change.

A token is 256 bits from the operating system's CSPRNG (``secrets``), sent once in a link and
stored only as its SHA-256 digest (EM-02, DATA-03): a database dump yields no usable token, and
a digest is enough since the token is too long to guess. Each row names its ``purpose``, so a
reset token can never confirm an email change, and the account and address it is about.

Issuing a token voids the account's earlier live tokens of the same purpose (``superseded_at``).
Redeeming one checks, in order: its shape, that a token of this purpose exists, that it was not
spent, not superseded and not expired, each with its own error code; spending it is a
compare-and-set on ``used_at``, so of two requests racing with one token exactly one wins (EM-03).
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from app.errors import TokenExpired, TokenMalformed, TokenSuperseded, TokenUnknown, TokenUsed
from app.extensions import db
from app.models import AccountToken
from app.runtime import runtime
from app.services.unit_of_work import UnitOfWork

# token_urlsafe(32): 32 random bytes, 43 base64url characters.
TOKEN_BYTES = 32
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


class Purpose(enum.StrEnum):
    """What a token may do; the value is stored with it and names the link's page."""

    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"
    CHANGE_EMAIL = "change_email"

    @property
    def lifetime(self) -> timedelta:
        settings = runtime().settings
        seconds = {
            Purpose.VERIFY_EMAIL: settings.email_verification_token_lifetime_seconds,
            Purpose.RESET_PASSWORD: settings.password_reset_token_lifetime_seconds,
            Purpose.CHANGE_EMAIL: settings.email_change_token_lifetime_seconds,
        }[self]
        return timedelta(seconds=seconds)


# Where each purpose's link leads when no front-end URL is configured: pages Gatehouse serves.
PAGES = {
    Purpose.VERIFY_EMAIL: "/account/verify-email",
    Purpose.RESET_PASSWORD: "/account/reset-password",
    Purpose.CHANGE_EMAIL: "/account/confirm-email",
}


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: the raw value goes into one message and is then forgotten."""

    value: str
    link: str
    expires_at: datetime


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def issue(
    uow: UnitOfWork,
    *,
    account_id: uuid.UUID,
    purpose: Purpose,
    email: str,
    email_key: str,
    lifetime: timedelta | None = None,
) -> IssuedToken:
    """Store a new token's digest in ``uow``; the account's older live ones of ``purpose`` die.

    ``lifetime`` overrides the purpose's (an administrator's invitation is a reset token that
    lives ``INVITATION_TOKEN_LIFETIME_SECONDS``).
    """
    now = runtime().clock.now()
    uow.session.execute(
        update(AccountToken)
        .where(
            AccountToken.account_id == account_id,
            AccountToken.purpose == purpose.value,
            AccountToken.used_at.is_(None),
            AccountToken.superseded_at.is_(None),
        )
        .values(superseded_at=now)
        .execution_options(synchronize_session=False)
    )
    value = secrets.token_urlsafe(TOKEN_BYTES)
    expires_at = now + (lifetime or purpose.lifetime)
    uow.session.add(
        AccountToken(
            id=uuid.uuid4(),
            account_id=account_id,
            purpose=purpose.value,
            token_hash=digest(value),
            email=email,
            email_key=email_key,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return IssuedToken(value=value, link=link(purpose, value), expires_at=expires_at)


def check(token: str, purpose: Purpose) -> AccountToken:
    """The live token of ``purpose`` matching ``token``, read without changing it.

    Raises TokenMalformed, TokenUnknown (never issued, or issued for another purpose),
    TokenUsed, TokenSuperseded, TokenExpired.
    """
    if not _TOKEN_SHAPE.fullmatch(token):
        raise TokenMalformed()
    row = db.session.scalar(
        select(AccountToken).where(
            AccountToken.token_hash == digest(token), AccountToken.purpose == purpose.value
        )
    )
    if row is None:
        raise TokenUnknown()
    if row.used_at is not None:
        raise TokenUsed()
    if row.superseded_at is not None:
        raise TokenSuperseded()
    if runtime().clock.now() >= row.expires_at:
        raise TokenExpired()
    return row


def was_spent(token_id: uuid.UUID) -> bool:
    """Whether the token is used now, read afresh from the database (not the session's copy)."""
    used_at = db.session.scalar(select(AccountToken.used_at).where(AccountToken.id == token_id))
    return used_at is not None


def spend(uow: UnitOfWork, token_id: uuid.UUID) -> None:
    """Mark the token used in ``uow``, if nobody did meanwhile; raises TokenUsed otherwise.

    The conditional update takes the row's lock: a request racing with the same token waits
    for this transaction, then finds ``used_at`` set and loses.
    """
    now = runtime().clock.now()
    spent = uow.session.execute(
        update(AccountToken)
        .where(
            AccountToken.id == token_id,
            AccountToken.used_at.is_(None),
            AccountToken.superseded_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if spent != 1:
        raise TokenUsed()


def void(uow: UnitOfWork, *, account_id: uuid.UUID, purpose: Purpose) -> None:
    """Supersede the account's live tokens of ``purpose`` (their reason to exist has gone)."""
    uow.session.execute(
        update(AccountToken)
        .where(
            AccountToken.account_id == account_id,
            AccountToken.purpose == purpose.value,
            AccountToken.used_at.is_(None),
            AccountToken.superseded_at.is_(None),
        )
        .values(superseded_at=runtime().clock.now())
        .execution_options(synchronize_session=False)
    )


def link(purpose: Purpose, token: str) -> str:
    """The link a message carries: the configured front-end URL, or Gatehouse's own page.

    Built from settings only, never from the request's ``Host`` (EM-05). On Gatehouse's page the
    token travels in the fragment, which browsers send to no server and no ``Referer``.
    """
    settings = runtime().settings
    template = {
        Purpose.VERIFY_EMAIL: settings.mail_link_verify_email,
        Purpose.RESET_PASSWORD: settings.mail_link_reset_password,
        Purpose.CHANGE_EMAIL: settings.mail_link_confirm_email,
    }[purpose]
    if template:
        return template.replace("{token}", token)
    base = (settings.public_url or settings.jwt_issuer or "").rstrip("/")
    return f"{base}{PAGES[purpose]}#token={token}"
