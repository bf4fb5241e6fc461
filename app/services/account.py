"""Sign-up, profile, password change and deletion.

Each public function is one transaction: it commits once, or raises a domain error and leaves
the database as it was.
"""

from __future__ import annotations

import uuid
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.errors import (
    CurrentPasswordIncorrect,
    EmailTaken,
    FieldError,
    InvalidEmail,
    InvalidToken,
    ValidationFailed,
)
from app.extensions import db
from app.models import Account, AuthSession, Role
from app.runtime import runtime
from app.services.passwords import check_password_policy
from app.services.sessions import end_sessions

DEFAULT_ROLE = "user"
UNSET: Any = object()
# Bidirectional marks, embeddings, overrides and isolates: in a name they can make what a
# person or an admin screen shows differ from what is stored ("Trojan Source", CVE-2021-42574).
BIDI_CONTROLS = frozenset(
    chr(code) for code in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
)


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

    Raises CurrentPasswordIncorrect, a password-policy error, InvalidToken (the caller's own
    session ended while this request ran).
    """
    rt = runtime()
    verified_hash, account_id = account.password_hash, account.id
    if not rt.hasher.verify(verified_hash, current_password):
        raise CurrentPasswordIncorrect("current_password")
    normalised = check_password_policy(new_password, email=account.email, field="new_password")
    now = rt.clock.now()
    # Only over the hash just verified: of two racing changes one wins, the other is told the
    # current password is wrong. The row stays locked, so a login racing this one either sees
    # the new hash or commits its session before the sessions are read below.
    if not swap_password_hash(account_id, verified_hash, rt.hasher.hash(normalised)):
        db.session.rollback()
        raise CurrentPasswordIncorrect("current_password")
    if not _lock_live_session(current_session_id):
        db.session.rollback()
        raise InvalidToken("The session has ended.")
    db.session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(password_changed_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    others = db.session.scalars(
        select(AuthSession.id).where(
            AuthSession.account_id == account_id,
            AuthSession.id != current_session_id,
            AuthSession.revoked_at.is_(None),
        )
    ).all()
    ended = end_sessions(list(others), reason="password_changed", now=now)
    db.session.commit()
    rt.revocations.publish(ended)


def _lock_live_session(session_id: uuid.UUID) -> bool:
    result = db.session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


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


def swap_password_hash(account_id: uuid.UUID, expected: str, new: str) -> bool:
    """Set the hash if it is still ``expected`` (locking the row); False when it is not."""
    result = db.session.execute(
        update(Account)
        .where(Account.id == account_id, Account.password_hash == expected)
        .values(password_hash=new)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _clean_display_name(display_name: str | None) -> str | None:
    """Trimmed; blank means none. Raises ValidationFailed for bidirectional controls."""
    if display_name is None:
        return None
    if not BIDI_CONTROLS.isdisjoint(display_name):
        raise ValidationFailed(
            [
                FieldError(
                    "display_name",
                    "invalid_characters",
                    "contains bidirectional control characters",
                )
            ]
        )
    return display_name.strip() or None
