"""Email verification: proving an account owns its address.

Sign-up mails a link (:func:`send_verification`, in the sign-up's own transaction, so an account
never exists without its message waiting in the outbox). Following it calls
:func:`verify_email`; a logged-in account without one asks for a fresh link with
:func:`resend_verification`, and, where logins require a verified address (D-9), a login with
the right password mails one too, since such an account cannot log in to ask.
"""

from __future__ import annotations

import uuid

from sqlalchemy import update

from app.errors import EmailAlreadyVerified, RateLimited, TokenSuperseded
from app.models import Account
from app.rate_limits import take_mail_budget
from app.runtime import runtime
from app.services import account_tokens, audit, mail
from app.services.account_tokens import Purpose
from app.services.principal import Principal
from app.services.unit_of_work import UnitOfWork, unit_of_work


def send_verification(uow: UnitOfWork, account: Account) -> None:
    """Issue a verification token for the account's address and queue its message in ``uow``."""
    token = account_tokens.issue(
        uow,
        account_id=account.id,
        purpose=Purpose.VERIFY_EMAIL,
        email=account.email,
        email_key=account.email_key,
    )
    mail.enqueue(
        uow,
        to=account.email,
        template="verify_email",
        account_id=account.id,
        context={
            # No display name: the address is not proven yet, and a name typed by whoever
            # signed up must not reach a stranger's inbox.
            "display_name": None,
            "link": token.link,
            "expires_minutes": expiry_minutes(Purpose.VERIFY_EMAIL),
        },
    )


def verify_email(*, token: str) -> None:
    """Mark the address the token was sent to as verified; the token is spent.

    A token for an address the account no longer has (it changed since) is superseded.
    Raises TokenMalformed, TokenUnknown, TokenUsed, TokenSuperseded, TokenExpired.
    """
    row = account_tokens.check(token, Purpose.VERIFY_EMAIL)
    token_id, account_id, email_key = row.id, row.account_id, row.email_key
    now = runtime().clock.now()
    with unit_of_work() as uow:
        account_tokens.spend(uow, token_id)
        verified = uow.session.execute(
            update(Account)
            .where(Account.id == account_id, Account.email_key == email_key)
            .values(email_verified=True, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not verified:
            raise TokenSuperseded()
        audit.record(uow, "user_email_verified", actor_id=account_id, subject_id=account_id)


def resend_verification(principal: Principal) -> None:
    """Mail a fresh link to the caller's address; earlier links stop working.

    Raises EmailAlreadyVerified, RateLimited (``MAIL_RATE_LIMIT_PER_ACCOUNT``).
    """
    account = principal.account
    if account.email_verified:
        raise EmailAlreadyVerified()
    wait = take_mail_budget(Purpose.VERIFY_EMAIL, str(account.id))
    if wait is not None:
        raise RateLimited(retry_after=wait)
    with unit_of_work() as uow:
        send_verification(uow, account)


def send_verification_after_refused_login(account_id: uuid.UUID) -> None:
    """A correct password on an unverified account (D-9): mail a fresh link, within budget.

    Silent when over budget: the login answers the same either way.
    """
    if take_mail_budget(Purpose.VERIFY_EMAIL, str(account_id)) is not None:
        return
    with unit_of_work() as uow:
        account = uow.session.get(Account, account_id)
        if account is not None and not account.email_verified:
            send_verification(uow, account)


def expiry_minutes(purpose: Purpose) -> int:
    """How long a link of ``purpose`` lives, in minutes, as messages say it."""
    return max(1, round(purpose.lifetime.total_seconds() / 60))
