"""Sign-up, profile, password change and deletion.

Each public function that writes is one unit of work: it commits once, or raises a domain error
and leaves the database as it was.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.errors import (
    CurrentPasswordIncorrect,
    EmailTaken,
    FieldError,
    InvalidToken,
    ReauthenticationRequired,
    ValidationFailed,
    all_of,
)
from app.models import Account, AuthSession, Role
from app.rate_limits import take_mail_budget
from app.runtime import runtime
from app.services import audit, lockout, mail, personal_tokens
from app.services.emails import normalise_email
from app.services.principal import Principal
from app.services.sessions import announce_ended_sessions, end_sessions
from app.services.unit_of_work import UnitOfWork, release_connection, unit_of_work
from app.services.verification import send_verification

DEFAULT_ROLE = "user"
UNSET: Any = object()
# Bidirectional marks, embeddings, overrides and isolates: in a name they can make what a
# person or an admin screen shows differ from what is stored ("Trojan Source", CVE-2021-42574).
BIDI_CONTROLS = frozenset(
    chr(code) for code in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
)


def signup_problems(
    *, email: object, password: object, display_name: object = None
) -> list[ValidationFailed]:
    """Every rule a sign-up breaks, each field checked (values of the wrong type are skipped).

    So one answer can list them all: a bad email and a short password are two errors.
    """
    problems: list[ValidationFailed] = []
    address = email if isinstance(email, str) else ""
    if isinstance(email, str):
        try:
            address = normalise_email(email)[0]
        except ValidationFailed as problem:
            problems.append(problem)
    name = None
    if isinstance(display_name, str):
        try:
            name = clean_display_name(display_name)
        except ValidationFailed as problem:
            problems.append(problem)
    if isinstance(password, str):
        try:
            runtime().password_policy.check(password, email=address, display_name=name)
        except ValidationFailed as problem:
            problems.append(problem)
    return problems


def register_account(
    *, email: str, password: str, display_name: str | None = None
) -> Account | None:
    """Create an account with the ``user`` role and mail it a verification link.

    The unique index on ``email_key`` decides races between simultaneous sign-ups. A taken
    address raises EmailTaken, or, with ``SIGNUP_GENERIC_ANSWER`` (D-2), creates nothing,
    mails the address's owner a notice and returns None after the same work as a sign-up.
    Raises InvalidEmail, a password-policy error (one, or ValidationFailed listing several),
    EmailTaken, Busy.
    """
    rt = runtime()
    now = rt.clock.now()
    problems = signup_problems(email=email, password=password, display_name=display_name)
    if problems:
        raise all_of(problems)
    email, key = normalise_email(email)
    display_name = clean_display_name(display_name)
    normalised = rt.password_policy.check(password, email=email, display_name=display_name)
    account = Account(
        id=uuid.uuid4(),
        email=email,
        email_key=key,
        display_name=display_name,
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
            owner = uow.session.scalar(select(Account).where(Account.email_key == key))
            if owner is None:
                raise
            if not rt.settings.signup_generic_answer:
                raise EmailTaken() from None
            _tell_owner_of_signup_attempt(uow, owner)
            return None
        send_verification(uow, account)
        audit.record(uow, "user_created", actor_id=account.id, subject_id=account.id)
    return account


def _tell_owner_of_signup_attempt(uow: UnitOfWork, owner: Account) -> None:
    """D-2: someone signed up with an address that has an account; its owner hears of it."""
    owner_id = owner.id
    if take_mail_budget("signup_attempt", str(owner_id)) is None:
        mail.enqueue(
            uow,
            to=owner.email,
            template="signup_attempt",
            account_id=owner_id,
            context={"display_name": owner.display_name},
        )
    audit.record(
        uow,
        "user_create_fail",
        subject_id=owner_id,
        outcome="failure",
        details={"reason": "email_taken"},
    )


def update_profile(principal: Principal, *, display_name: str | None = UNSET) -> Account:
    """Change the fields given; an empty or blank display name clears it."""
    account = principal.account
    with unit_of_work():
        if display_name is not UNSET:
            account.display_name = clean_display_name(display_name)
            account.updated_at = runtime().clock.now()
    return account


def change_password(principal: Principal, *, current_password: str, new_password: str) -> None:
    """Set a new password and end every other session of the account (the caller's survives);
    every personal access token of the account is revoked.

    Raises CurrentPasswordIncorrect, a password-policy error, InvalidToken (the caller's own
    session ended while this request ran).
    """
    rt = runtime()
    display_name = principal.account.display_name
    account_id, verified_hash, email = confirm_password(
        principal, current_password, field="current_password"
    )
    normalised = rt.password_policy.check(
        new_password, email=email, display_name=display_name, field="new_password"
    )
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
        end_sessions(uow, others, reason="password_changed", now=now, account_id=account_id)
        personal_tokens.revoke_all_for_account(uow, account_id, reason="password_changed")
        audit.record(uow, "authn_password_change", actor_id=account_id, subject_id=account_id)


def _lock_live_session(uow: UnitOfWork, session_id: uuid.UUID) -> bool:
    result = uow.session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def delete_account(principal: Principal, *, password: str | None) -> None:
    """Delete the account; its sessions, refresh tokens and personal access tokens go with it
    (ON DELETE CASCADE).

    Without the password, the login must be recent (:func:`confirm_identity`). The last
    enabled administrator cannot delete themselves (ADM-04).
    Raises CurrentPasswordIncorrect, ReauthenticationRequired, LastAdmin.
    """
    from app.services.admin import ensure_admin_remains  # admin builds on this module

    account_id, _, _ = confirm_identity(principal, password, field="password")
    with unit_of_work() as uow:
        ensure_admin_remains(uow, account_id)
        session_ids = list(
            uow.session.scalars(select(AuthSession.id).where(AuthSession.account_id == account_id))
        )
        account = uow.session.get_one(Account, account_id)
        # Its mail goes too, sent or waiting (DATA-04): links in it die with the account.
        mail.forget(uow, to=account.email, account_id=account_id)
        # Revoked first, so each says so in the log; the rows then go with the account.
        personal_tokens.revoke_all_for_account(uow, account_id, reason="account_deleted")
        uow.session.delete(account)
        announce_ended_sessions(uow, session_ids, reason="account_deleted", account_id=account_id)
        audit.record(uow, "user_deleted", actor_id=account_id, subject_id=account_id)


def confirm_password(
    principal: Principal, password: str, *, field: str
) -> tuple[uuid.UUID, str, str]:
    """The caller's password, checked again before a sensitive change: ``(id, hash, email)``.

    A wrong one counts towards the lockout like a failed login, and a locked account refuses
    every password, right or wrong, until the lock ends (RL-06, PWD-08: 400, never 401).
    Raises CurrentPasswordIncorrect, Busy.
    """
    rt = runtime()
    account = principal.account
    account_id, verified_hash, email = account.id, account.password_hash, account.email
    now = rt.clock.now()
    locked = lockout.is_locked(account, now)
    release_connection()  # no pooled connection held while hashing (REL-10)
    correct = rt.hasher.verify(verified_hash, password)
    if locked:
        raise CurrentPasswordIncorrect(field)
    if not correct:
        with unit_of_work() as uow:
            lockout.record_failure(uow, account_id, now)
            audit.record(
                uow,
                "authn_password_check_fail",
                actor_id=account_id,
                subject_id=account_id,
                outcome="failure",
            )
        raise CurrentPasswordIncorrect(field)
    return account_id, verified_hash, email


def confirm_identity(
    principal: Principal, password: str | None, *, field: str
) -> tuple[uuid.UUID, str, str]:
    """The caller, proved again before a sensitive change (SES-09): ``(id, hash, email)``.

    With ``password``, it is checked (:func:`confirm_password`); without, the caller's login
    (``auth_time``) must be at most ``REAUTHENTICATION_WINDOW_SECONDS`` old. Raises
    CurrentPasswordIncorrect, ReauthenticationRequired, Busy.
    """
    if password is not None:
        return confirm_password(principal, password, field=field)
    rt = runtime()
    window = timedelta(seconds=rt.settings.reauthentication_window_seconds)
    if rt.clock.now() - principal.auth_time > window:
        raise ReauthenticationRequired()
    account = principal.account
    return account.id, account.password_hash, account.email


def swap_password_hash(uow: UnitOfWork, account_id: uuid.UUID, expected: str, new: str) -> bool:
    """Set the hash if it is still ``expected`` (locking the row); False when it is not."""
    result = uow.session.execute(
        update(Account)
        .where(Account.id == account_id, Account.password_hash == expected)
        .values(password_hash=new)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def clean_display_name(display_name: str | None) -> str | None:
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
