"""Sign-up, profile, password change and deletion.

Each public function is one transaction: it commits once, or raises a domain error and leaves
the database as it was.
"""

from __future__ import annotations

import uuid
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import CurrentPasswordIncorrect, EmailTaken, InvalidEmail
from app.extensions import db
from app.models import Account, AuthSession, Role
from app.runtime import runtime
from app.services.passwords import check_password_policy
from app.services.sessions import end_sessions

DEFAULT_ROLE = "user"
UNSET: Any = object()


def normalise_email(raw: str) -> tuple[str, str]:
    """Return ``(email, key)``: the normalised address and the case-folded key unique per account.

    Syntax only, no DNS look-ups. Raises InvalidEmail.
    """
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail("email", str(exc)) from None
    return result.normalized, result.normalized.lower()


def email_lookup_key(raw: str) -> str | None:
    """The account key for a login address, or None when it cannot belong to any account."""
    try:
        return normalise_email(raw)[1]
    except InvalidEmail:
        return None


def register_account(*, email: str, password: str, display_name: str | None = None) -> Account:
    """Create an account with the ``user`` role.

    The unique index on ``email_key`` decides races between simultaneous sign-ups.
    Raises InvalidEmail, a password-policy error, EmailTaken.
    """
    rt = runtime()
    now = rt.clock.now()
    email, key = normalise_email(email)
    normalised = check_password_policy(password, email=email)
    account = Account(
        id=uuid.uuid4(),
        email=email,
        email_key=key,
        display_name=_clean_display_name(display_name),
        password_hash=rt.hasher.hash(normalised),
        email_verified=False,
        created_at=now,
        updated_at=now,
        password_changed_at=now,
    )
    account.roles = [db.session.get_one(Role, DEFAULT_ROLE)]
    db.session.add(account)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if db.session.scalar(select(Account.id).where(Account.email_key == key)) is not None:
            raise EmailTaken() from None
        raise
    return account


def update_profile(account: Account, *, display_name: str | None = UNSET) -> Account:
    """Change the fields given; an empty or blank display name clears it."""
    if display_name is not UNSET:
        account.display_name = _clean_display_name(display_name)
        account.updated_at = runtime().clock.now()
        db.session.commit()
    return account


def change_password(
    account: Account, *, current_session_id: uuid.UUID, current_password: str, new_password: str
) -> None:
    """Set a new password and end every other session of the account (the caller's survives).

    Raises CurrentPasswordIncorrect, a password-policy error.
    """
    rt = runtime()
    if not rt.hasher.verify(account.password_hash, current_password):
        raise CurrentPasswordIncorrect("current_password")
    normalised = check_password_policy(new_password, email=account.email, field="new_password")
    now = rt.clock.now()
    account.password_hash = rt.hasher.hash(normalised)
    account.password_changed_at = account.updated_at = now
    others = db.session.scalars(
        select(AuthSession.id).where(
            AuthSession.account_id == account.id,
            AuthSession.id != current_session_id,
            AuthSession.revoked_at.is_(None),
        )
    ).all()
    ended = end_sessions(list(others), reason="password_changed", now=now)
    db.session.commit()
    rt.revocations.publish(ended)


def delete_account(account: Account, *, password: str) -> None:
    """Delete the account; its sessions and refresh tokens go with it (ON DELETE CASCADE).

    Raises CurrentPasswordIncorrect.
    """
    rt = runtime()
    if not rt.hasher.verify(account.password_hash, password):
        raise CurrentPasswordIncorrect("password")
    session_ids = list(
        db.session.scalars(select(AuthSession.id).where(AuthSession.account_id == account.id))
    )
    db.session.delete(account)
    db.session.commit()
    rt.revocations.publish(session_ids)


def _clean_display_name(display_name: str | None) -> str | None:
    if display_name is None:
        return None
    return display_name.strip() or None
