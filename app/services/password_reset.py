"""Password reset by emailed link (EM-01, EM-03, EM-04).

:func:`request_password_reset` answers the same whatever the address and does the same work:
it writes one deferred job to the outbox (at most ``MAIL_RATE_LIMIT_PER_ACCOUNT`` per address).
The sender runs the job: an account with the address gets a link, an unknown address gets
nothing and nothing stays stored for it. :func:`reset_password` spends the token, sets the
password under the full policy, ends every session, lifts a lockout and mails a notice.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from app.errors import TokenSuperseded, TokenUsed
from app.extensions import db
from app.models import Account, AuthSession
from app.rate_limits import take_mail_budget
from app.runtime import runtime
from app.services import account_tokens, audit, lockout, mail, personal_tokens
from app.services.account import swap_password_hash
from app.services.account_tokens import Purpose
from app.services.emails import email_key
from app.services.sessions import end_sessions
from app.services.unit_of_work import release_connection, unit_of_work
from app.services.verification import expiry_minutes


def request_password_reset(*, email: str) -> None:
    """Queue the reset job for this address; return the same way whether an account has it.

    The request's work is the same in every case (EM-01): the address is folded to its key, a
    mail budget is taken for the key, and one deferred job is written and committed. Whether
    an account has the address is decided later, by :func:`_send_reset_link` in the sender,
    where no answer waits on it. Raises InvalidEmail only for what cannot be an address at all.
    """
    key = email_key(email)
    # The address only as a keyed digest (D-8); which account, if any, is not known here.
    reference = audit.email_reference(email)
    if take_mail_budget(Purpose.RESET_PASSWORD, key) is not None:
        audit.record_alone(
            "password_reset_request",
            outcome="failure",
            details={"reason": "throttled", "email_hmac": reference},
        )
        return
    with unit_of_work() as uow:
        mail.defer(uow, job=RESET_JOB, data={"email_key": key})
        audit.record(
            uow, "password_reset_request", outcome="queued", details={"email_hmac": reference}
        )


RESET_JOB = "password_reset"


@mail.job(RESET_JOB)
def _send_reset_link(job_id: uuid.UUID, data: dict[str, Any]) -> None:
    """The deferred half of a reset request: issue a token and mail the link, or nothing.

    An unknown address leaves nothing behind (the job row goes with the same commit).
    """
    with unit_of_work() as uow:
        account = uow.session.scalar(select(Account).where(Account.email_key == data["email_key"]))
        if account is None:
            audit.record(
                uow,
                "password_reset_request",
                outcome="failure",
                details={"reason": "unknown_account"},
            )
        else:
            token = account_tokens.issue(
                uow,
                account_id=account.id,
                purpose=Purpose.RESET_PASSWORD,
                email=account.email,
                email_key=account.email_key,
            )
            # To the address on the account, never the one typed: a look-alike that folds to
            # the same key must not receive the link.
            mail.enqueue(
                uow,
                to=account.email,
                template="reset_password",
                account_id=account.id,
                context=_context(account.display_name, token.link),
            )
            audit.record(uow, "password_reset_link_queued", subject_id=account.id)
        mail.finish_job(uow, job_id)


def reset_password(*, token: str, new_password: str) -> None:
    """Set a new password with a reset token; every session and personal access token of the
    account ends.

    A token issued before the password last changed is void. The lockout is lifted, the address
    counts as verified (the link reached it), and the account is mailed a notice. No tokens are
    returned: the person logs in with the new password (EM-04).
    Raises TokenMalformed, TokenUnknown, TokenUsed, TokenSuperseded, TokenExpired, a
    password-policy error, Busy.
    """
    rt = runtime()
    row = account_tokens.check(token, Purpose.RESET_PASSWORD)
    token_id, account_id, token_key = row.id, row.account_id, row.email_key
    account = db.session.get_one(Account, account_id)
    if row.created_at < account.password_changed_at:
        # A reset racing with this one may have spent the token and changed the password
        # between the two reads above: then it is used (the winner's), not superseded.
        raise TokenUsed() if account_tokens.was_spent(token_id) else TokenSuperseded()
    email, display_name, old_hash = account.email, account.display_name, account.password_hash
    normalised = rt.password_policy.check(
        new_password, email=email, display_name=display_name, field="new_password"
    )
    release_connection()  # no pooled connection held while hashing (REL-10)
    new_hash = rt.hasher.hash(normalised)
    now = rt.clock.now()
    with unit_of_work() as uow:
        account_tokens.spend(uow, token_id)
        # Only over the hash seen above: a password change that committed meanwhile wins.
        if not swap_password_hash(uow, account_id, old_hash, new_hash):
            raise TokenSuperseded()
        account = uow.session.get_one(Account, account_id)
        account.password_changed_at = now
        account.updated_at = now
        if account.email_key == token_key:
            account.email_verified = True
        lockout.clear(uow, account_id)
        account_tokens.void(uow, account_id=account_id, purpose=Purpose.RESET_PASSWORD)
        sessions = uow.session.scalars(
            select(AuthSession.id).where(
                AuthSession.account_id == account_id, AuthSession.revoked_at.is_(None)
            )
        ).all()
        end_sessions(uow, sessions, reason="password_reset", now=now, account_id=account_id)
        personal_tokens.revoke_all_for_account(uow, account_id, reason="password_reset")
        mail.enqueue(
            uow,
            to=account.email,
            template="password_changed",
            account_id=account_id,
            context={"display_name": account.display_name, "changed_at": now.isoformat()},
        )
        audit.record(uow, "authn_password_reset", actor_id=account_id, subject_id=account_id)


def _context(display_name: str | None, link: str) -> dict[str, object]:
    return {
        "display_name": display_name,
        "link": link,
        "expires_minutes": expiry_minutes(Purpose.RESET_PASSWORD),
    }
