"""Changing an account's address, confirmed from the new mailbox (EM-06).

:func:`request_email_change` checks the password, mails a confirmation link to the new address
and a notice to the old one, and changes nothing else. :func:`confirm_email_change` applies the
change when the link is followed; the unique index on ``email_key`` decides, then, between two
accounts claiming the same address (one wins, the other gets 409 and keeps its address). The
new address counts as verified: the link reached it.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.errors import EmailTaken, EmailUnchanged, RateLimited
from app.extensions import db
from app.models import Account
from app.rate_limits import take_mail_budget
from app.runtime import runtime
from app.services import account_tokens, audit, mail
from app.services.account import confirm_identity
from app.services.account_tokens import Purpose
from app.services.emails import normalise_email
from app.services.principal import Principal
from app.services.unit_of_work import unit_of_work
from app.services.verification import expiry_minutes


def request_email_change(principal: Principal, *, new_email: str, password: str | None) -> None:
    """Mail a confirmation link to ``new_email`` and a notice to the current address.

    An address another account has is refused (409) unless ``SIGNUP_GENERIC_ANSWER`` is on
    (D-2): then the answer is the same as for a free one, nothing is issued, and the owner of
    that address is told someone tried to move an account onto it.
    Without the password, the login must be recent (``confirm_identity``, SES-09).
    Raises InvalidEmail, EmailMixesScripts, EmailUnchanged, CurrentPasswordIncorrect,
    ReauthenticationRequired, EmailTaken, RateLimited (``MAIL_RATE_LIMIT_PER_ACCOUNT``), Busy.
    """
    address, key = normalise_email(new_email, field="new_email")
    if key == principal.account.email_key:
        raise EmailUnchanged("new_email")
    display_name = principal.account.display_name
    account_id, _, old_email = confirm_identity(principal, password, field="password")
    owner = db.session.scalar(select(Account).where(Account.email_key == key))
    if owner is not None and not runtime().settings.signup_generic_answer:
        raise EmailTaken()
    wait = take_mail_budget(Purpose.CHANGE_EMAIL, str(account_id))
    if wait is not None:
        raise RateLimited(retry_after=wait)
    with unit_of_work() as uow:
        if owner is None:
            token = account_tokens.issue(
                uow,
                account_id=account_id,
                purpose=Purpose.CHANGE_EMAIL,
                email=address,
                email_key=key,
            )
            mail.enqueue(
                uow,
                to=address,
                template="email_change_confirm",
                account_id=account_id,
                context={
                    # The new address is not proven yet: no typed name reaches a stranger.
                    "display_name": None,
                    "link": token.link,
                    "expires_minutes": expiry_minutes(Purpose.CHANGE_EMAIL),
                },
            )
        elif take_mail_budget("email_taken_notice", key) is None:
            mail.enqueue(
                uow,
                to=owner.email,
                template="email_change_taken",
                account_id=owner.id,
                context={"display_name": owner.display_name},
            )
        mail.enqueue(
            uow,
            to=old_email,
            template="email_change_requested",
            account_id=account_id,
            context={"display_name": display_name, "new_email": address},
        )
        audit.record(
            uow,
            "user_email_change_request",
            actor_id=account_id,
            subject_id=account_id,
            outcome="success" if owner is None else "failure",
            # The new address only as a keyed digest (D-8).
            details={
                "reason": None if owner is None else "email_taken",
                "new_email_hmac": audit.email_reference(address),
            },
        )


def confirm_email_change(*, token: str) -> None:
    """Give the account the address the token was sent to, now verified; the token is spent.

    The old address is told. Raises TokenMalformed, TokenUnknown, TokenUsed, TokenSuperseded,
    TokenExpired, EmailTaken (another account took the address since).
    """
    row = account_tokens.check(token, Purpose.CHANGE_EMAIL)
    token_id, account_id, address, key = row.id, row.account_id, row.email, row.email_key
    now = runtime().clock.now()
    with unit_of_work() as uow:
        account_tokens.spend(uow, token_id)
        account = uow.session.get_one(Account, account_id)
        old_email, display_name = account.email, account.display_name
        try:
            with uow.savepoint():
                uow.session.execute(
                    update(Account)
                    .where(Account.id == account_id)
                    .values(email=address, email_key=key, email_verified=True, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
        except IntegrityError:
            if uow.session.scalar(select(Account.id).where(Account.email_key == key)) is None:
                raise
            raise EmailTaken() from None
        uow.session.expire(account)
        # Links to verify the old address have nothing left to verify.
        account_tokens.void(uow, account_id=account_id, purpose=Purpose.VERIFY_EMAIL)
        mail.enqueue(
            uow,
            to=old_email,
            template="email_changed",
            account_id=account_id,
            context={"display_name": display_name, "new_email": address},
        )
        audit.record(
            uow,
            "user_email_change",
            actor_id=account_id,
            subject_id=account_id,
            details={"new_email_hmac": audit.email_reference(address)},
        )
