"""Sign-up, profile, password change and deletion.

Each public function that writes is one unit of work: it commits once, or raises a domain error
and leaves the database as it was.
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
from app.models import Account, AuthSession, Role
from app.runtime import runtime
from app.services.events import security_event
from app.services.principal import Principal
from app.services.sessions import announce_ended_sessions, end_sessions
from app.services.unit_of_work import UnitOfWork, unit_of_work

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
    normalised = rt.password_policy.check(password, email=email)
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
    with unit_of_work() as uow:
        account.roles = [uow.session.get_one(Role, DEFAULT_ROLE)]
        try:
            with uow.savepoint():
                uow.session.add(account)
                uow.session.flush()
        except IntegrityError:
            # Only the insert is undone, so a caller's enclosing work survives the refusal.
            if uow.session.scalar(select(Account.id).where(Account.email_key == key)) is not None:
                raise EmailTaken() from None
            raise
        account_id = account.id
        uow.after_commit(lambda: security_event("user_created", account_id=account_id))
    return account


def update_profile(principal: Principal, *, display_name: str | None = UNSET) -> Account:
    """Change the fields given; an empty or blank display name clears it."""
    account = principal.account
    with unit_of_work():
        if display_name is not UNSET:
            account.display_name = _clean_display_name(display_name)
            account.updated_at = runtime().clock.now()
    return account


def change_password(principal: Principal, *, current_password: str, new_password: str) -> None:
    """Set a new password and end every other session of the account (the caller's survives).

    Raises CurrentPasswordIncorrect, a password-policy error, InvalidToken (the caller's own
    session ended while this request ran).
    """
    rt = runtime()
    account = principal.account
    verified_hash, account_id = account.password_hash, account.id
    if not rt.hasher.verify(verified_hash, current_password):
        raise CurrentPasswordIncorrect("current_password")
    normalised = rt.password_policy.check(new_password, email=account.email, field="new_password")
    new_hash = rt.hasher.hash(normalised)
    now = rt.clock.now()
    current_session_id = principal.session.id if principal.session else None
    with unit_of_work() as uow:
        # Only over the hash just verified: of two racing changes one wins, the other is told
        # the current password is wrong. The row stays locked, so a login racing this one either
        # sees the new hash or commits its session before the sessions are read below.
        if not swap_password_hash(uow, account_id, verified_hash, new_hash):
            raise CurrentPasswordIncorrect("current_password")
        if current_session_id is not None and not _lock_live_session(uow, current_session_id):
            raise InvalidToken("The session has ended.")
        uow.session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(password_changed_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        others = uow.session.scalars(
            select(AuthSession.id).where(
                AuthSession.account_id == account_id,
                AuthSession.id != current_session_id,
                AuthSession.revoked_at.is_(None),
            )
        ).all()
        end_sessions(uow, others, reason="password_changed", now=now)
        uow.after_commit(lambda: security_event("authn_password_change", account_id=account_id))


def _lock_live_session(uow: UnitOfWork, session_id: uuid.UUID) -> bool:
    result = uow.session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def delete_account(principal: Principal, *, password: str) -> None:
    """Delete the account; its sessions and refresh tokens go with it (ON DELETE CASCADE).

    Raises CurrentPasswordIncorrect.
    """
    account = principal.account
    if not runtime().hasher.verify(account.password_hash, password):
        raise CurrentPasswordIncorrect("password")
    account_id = account.id
    with unit_of_work() as uow:
        session_ids = list(
            uow.session.scalars(select(AuthSession.id).where(AuthSession.account_id == account_id))
        )
        uow.session.delete(account)
        announce_ended_sessions(uow, session_ids, reason="account_deleted")
        uow.after_commit(lambda: security_event("user_deleted", account_id=account_id))


def swap_password_hash(uow: UnitOfWork, account_id: uuid.UUID, expected: str, new: str) -> bool:
    """Set the hash if it is still ``expected`` (locking the row); False when it is not."""
    result = uow.session.execute(
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
