"""Account lockout after repeated wrong passwords, without a denial-of-service lever (D-5).

Failures are counted per account in the database with one atomic statement
(``failed_login_count = failed_login_count + 1 … RETURNING``), so parallel wrong logins keep an
exact count (RL-07). The one that reaches ``LOCKOUT_FAILURES`` locks the account for
``LOCKOUT_SECONDS``, doubled for each lock that follows without a success, capped at
``LOCKOUT_MAX_SECONDS``: never for good. While locked, a login answers exactly like a wrong
password (RL-02) after the same work, and the attempt neither counts nor extends the lock
(RL-03). A success resets it all. Unknown emails have no row, so nothing is stored for them
(RL-04); they are throttled by the rate limits like real ones. Password checks of a logged-in
caller (change, deletion) count the same way (RL-06). What keeps the lock from being a lever
against the owner: a device that logged in before is not locked out (``services/devices.py``),
the password-reset flow unlocks (email issue), and an admin can call :func:`unlock`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, update

from app.models import Account
from app.runtime import runtime
from app.services import audit
from app.services.unit_of_work import UnitOfWork, unit_of_work


def is_locked(account: Account, now: datetime) -> bool:
    return account.locked_until is not None and now < account.locked_until


def record_failure(uow: UnitOfWork, account_id: uuid.UUID, now: datetime) -> bool:
    """Count a wrong password; lock the account when the count reaches the threshold.

    A failure while the account is locked is not counted. Returns whether this failure locked
    the account.
    """
    settings = runtime().settings
    counted = uow.session.execute(
        update(Account)
        .where(
            Account.id == account_id,
            or_(Account.locked_until.is_(None), Account.locked_until <= now),
        )
        .values(failed_login_count=Account.failed_login_count + 1)
        .returning(Account.failed_login_count, Account.lock_count)
        .execution_options(synchronize_session=False)
    ).first()
    if counted is None or counted.failed_login_count < settings.lockout_failures:
        return False
    seconds = min(
        settings.lockout_seconds * 2 ** min(counted.lock_count, 20), settings.lockout_max_seconds
    )
    locked = uow.session.execute(
        update(Account)
        .where(
            Account.id == account_id,
            Account.failed_login_count >= settings.lockout_failures,
        )
        .values(
            locked_until=now + timedelta(seconds=seconds),
            lock_count=Account.lock_count + 1,
            failed_login_count=0,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if locked:
        audit.record(
            uow,
            "authn_login_lock",
            subject_id=account_id,
            outcome="failure",
            details={"seconds": seconds},
        )
    return bool(locked)


def clear(uow: UnitOfWork, account_id: uuid.UUID) -> None:
    """A success: the count, the lock and the growth of the next lock start over."""
    uow.session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(failed_login_count=0, lock_count=0, locked_until=None)
        .execution_options(synchronize_session=False)
    )


def unlock(account_id: uuid.UUID, *, actor_id: uuid.UUID | None = None) -> None:
    """Lift a lock now (an admin, ``actor_id``, or a completed password reset)."""
    with unit_of_work() as uow:
        clear(uow, account_id)
        audit.record(uow, "authn_login_unlock", actor_id=actor_id, subject_id=account_id)


def lock(account_id: uuid.UUID, *, seconds: int, actor_id: uuid.UUID | None = None) -> None:
    """Lock an account now for ``seconds`` (an admin's decision, ``actor_id``; logins answer as
    for any lock)."""
    until = runtime().clock.now() + timedelta(seconds=seconds)
    with unit_of_work() as uow:
        uow.session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(locked_until=until, failed_login_count=0)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            uow,
            "authn_login_lock",
            actor_id=actor_id,
            subject_id=account_id,
            details={"seconds": seconds},
        )
