"""Login, refresh-token rotation, logout and the resolution of access tokens.

Each public function that writes is one unit of work: it commits once, or raises a domain error
and leaves the database as it was (bar the session it ends on refresh-token reuse, which is the
point).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from app.errors import (
    EmailNotVerified,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidToken,
    MfaCodeInvalid,
    MfaTokenInvalid,
    MfaTokenUsed,
    RefreshTokenReused,
    SessionExpired,
    SessionRevoked,
)
from app.extensions import db
from app.models import Account, AuthSession, RefreshToken, Role
from app.runtime import runtime
from app.services import audit, cookie_sessions, lockout, mfa
from app.services.account import swap_password_hash
from app.services.cookie_sessions import OpenedCookieSession
from app.services.emails import email_lookup_key
from app.services.passwords import normalise_password
from app.services.principal import CredentialKind, Principal
from app.services.sessions import end_sessions
from app.services.tokens import digest_refresh_token, new_refresh_token
from app.services.unit_of_work import UnitOfWork, release_connection, unit_of_work
from app.services.verification import send_verification_after_refused_login

# Refresh tokens we issue are 43 characters; anything far outside is junk, not worth a query.
REFRESH_TOKEN_LENGTHS = range(16, 513)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    token_type: str = "Bearer"
    # After a login: the device token the client sends back on its next logins (devices.py).
    device_token: str | None = None


def login(
    *,
    email: str,
    password: str,
    ip_address: str | None,
    user_agent: str | None,
    device_token: str | None = None,
    cookie: bool = False,
) -> TokenPair | OpenedCookieSession | mfa.MfaRequired:
    """Check the password and open a new session; the pair carries a fresh device token.

    An unknown email, a wrong password and a locked account raise the same InvalidCredentials
    after the same work (a hash verification): only the log says which (LOG-01, RL-02).
    ``device_token`` from an earlier success lets this device past a lock caused by others.
    With ``LOGIN_REQUIRES_VERIFIED_EMAIL``, an unverified account is refused with
    EmailNotVerified, after the password proved right, and mailed a fresh link.
    An account with TOTP on gets no session yet: after all of the above, the answer is an
    ``mfa_token`` for :func:`complete_mfa_login` (MFA-01). Its failure count and lock are left
    as they are until the second factor succeeds, so a known password buys no extra guesses.
    Raises InvalidCredentials, EmailNotVerified, Busy.
    """
    rt = runtime()
    now = rt.clock.now()
    key = email_lookup_key(email)
    account = db.session.scalar(select(Account).where(Account.email_key == key)) if key else None
    if account is None:
        release_connection()
        # Verify against a dummy hash so the answer takes as long as for a real account.
        rt.hasher.verify_dummy(password)
        # No account to name: the address only as a keyed digest (D-8).
        audit.record_alone(
            "authn_login_fail",
            outcome="failure",
            details={"reason": "unknown_account", "email_hmac": audit.email_reference(email)},
        )
        raise InvalidCredentials()
    account_id, verified_hash = account.id, account.password_hash
    email_verified = account.email_verified
    locked = lockout.is_locked(account, now)
    disabled = account.disabled_at is not None
    trusted_device = _trusted_device(device_token, account_id)
    release_connection()  # no pooled connection held while hashing (REL-10)
    correct = rt.hasher.verify(verified_hash, password)
    if locked and trusted_device is None:
        # Verified all the same, so a locked account answers as late as any other (RL-02).
        audit.record_alone(
            "authn_login_fail",
            subject_id=account_id,
            outcome="failure",
            details={"reason": "locked"},
        )
        raise InvalidCredentials()
    if disabled:
        # After the same verification, and the same answer as a wrong password (LOG-01).
        audit.record_alone(
            "authn_login_fail",
            subject_id=account_id,
            outcome="failure",
            details={"reason": "disabled"},
        )
        raise InvalidCredentials()
    if not correct:
        _count_login_failure(account_id, trusted_device, now)
        raise InvalidCredentials()
    if rt.settings.login_requires_verified_email and not email_verified:
        # Only now, after the right password: the refusal tells nobody else anything (D-9).
        # Such an account cannot log in to ask for a link, so the refusal sends one.
        audit.record_alone(
            "authn_login_fail",
            subject_id=account_id,
            outcome="failure",
            details={"reason": "email_not_verified"},
        )
        send_verification_after_refused_login(account_id)
        raise EmailNotVerified()
    new_hash = (
        rt.hasher.hash(normalise_password(password))
        if rt.hasher.needs_rehash(verified_hash)
        else verified_hash
    )
    with unit_of_work() as uow:
        # Take the account row, and only if its hash is still the one just verified: a password
        # change or deletion that committed meanwhile wins, and one that comes later waits for
        # this login and then ends its session. The same statement upgrades an outdated hash.
        if not swap_password_hash(uow, account_id, verified_hash, new_hash):
            uow.rollback()
            audit.record(
                uow,
                "authn_login_fail",
                subject_id=account_id,
                outcome="failure",
                details={"reason": "password_changed_meanwhile"},
            )
            uow.commit()
            raise InvalidCredentials()
        if _disabled_meanwhile(uow, account_id):
            # Read after the row lock just taken: a disable that committed first wins.
            uow.rollback()
            audit.record(
                uow,
                "authn_login_fail",
                subject_id=account_id,
                outcome="failure",
                details={"reason": "disabled"},
            )
            uow.commit()
            raise InvalidCredentials()
        if mfa.has_active_factor(uow.session, account_id):
            challenge = mfa.open_challenge(uow, account_id, now)
            # The password was right; the login waits for the second factor.
            audit.record(uow, "authn_mfa_challenge", actor_id=account_id, subject_id=account_id)
            return challenge
        lockout.clear(uow, account_id)
        pair = _open_session(
            uow,
            account,
            now,
            amr="pwd",
            ip_address=ip_address,
            user_agent=user_agent,
            cookie=cookie,
        )
    device_token = rt.devices.issue(account_id) if rt.devices else None
    return replace(pair, device_token=device_token)


def complete_mfa_login(
    *,
    mfa_token: str,
    code: str | None = None,
    recovery_code: str | None = None,
    ip_address: str | None,
    user_agent: str | None,
    device_token: str | None = None,
    cookie: bool = False,
) -> TokenPair | OpenedCookieSession:
    """The second step of a login with TOTP on: the ``mfa_token`` and a code open the session.

    ``code`` is the authenticator's current code, or ``recovery_code`` one of the account's
    recovery codes; either is spent. The session's ``amr`` is ``pwd otp``. A wrong or reused
    code counts against the ``mfa_token`` (``MFA_TOKEN_MAX_ATTEMPTS``) and, like a wrong
    password, towards the account's lockout (or the recognised device's budget); while the
    account is locked every code is refused, uncounted (RL-03).
    Raises MfaTokenInvalid, MfaTokenExpired, MfaTokenUsed, MfaTokenExhausted, MfaCodeInvalid,
    MfaCodeReused, RecoveryCodeInvalid, RecoveryCodeUsed.
    """
    rt = runtime()
    now = rt.clock.now()
    challenge, account = mfa.find_challenge(mfa_token, now)
    challenge_id, account_id = challenge.id, account.id
    if account.disabled_at is not None:  # disabled since the password step
        raise MfaTokenInvalid()
    locked = lockout.is_locked(account, now)
    trusted_device = _trusted_device(device_token, account_id)
    refused_for_lock = locked and trusted_device is None
    with unit_of_work() as uow:
        if not mfa.spend_challenge(uow, challenge_id, now):
            raise MfaTokenUsed()  # another request with this token got there first
        factor = mfa.active_factor(uow.session, account_id)
        if factor is None:  # turned off since the password step
            raise MfaTokenInvalid()
        if refused_for_lock:
            failure = MfaCodeInvalid("code" if code is not None else "recovery_code")
        else:
            failure = mfa.spend_second_factor(
                uow, factor, code=code, recovery_code=recovery_code, now=now
            )
        if failure is not None:
            uow.rollback()  # the challenge stays live, the code unspent
            if refused_for_lock:
                audit.record(
                    uow,
                    "authn_login_fail",
                    subject_id=account_id,
                    outcome="failure",
                    details={"reason": "locked"},
                )
            else:
                mfa.record_failed_attempt(uow, challenge_id)
                _count_login_failure(account_id, trusted_device, now, reason=failure.code)
            uow.commit()
            raise failure
        lockout.clear(uow, account_id)
        pair = _open_session(
            uow,
            account,
            now,
            amr="pwd otp",
            ip_address=ip_address,
            user_agent=user_agent,
            cookie=cookie,
        )
    device_token = rt.devices.issue(account_id) if rt.devices else None
    return replace(pair, device_token=device_token)


def _open_session(
    uow: UnitOfWork,
    account: Account,
    now: datetime,
    *,
    amr: str,
    ip_address: str | None,
    user_agent: str | None,
    cookie: bool = False,
) -> TokenPair | OpenedCookieSession:
    """A new session for a completed login (``amr``: how, RFC 8176) and its first pair, or,
    with ``cookie``, its session cookie and CSRF token (cookie-session mode: no tokens)."""
    rt = runtime()
    cookie_value, cookie_hash = cookie_sessions.new_cookie() if cookie else (None, None)
    session = AuthSession(
        id=uuid.uuid4(),
        account=account,
        created_at=now,
        last_refreshed_at=now,
        expires_at=now + timedelta(seconds=rt.settings.session_lifetime_seconds),
        auth_time=now,
        amr=amr,
        ip_address=ip_address,
        user_agent=_printable(user_agent, limit=255),
        cookie_hash=cookie_hash,
    )
    uow.session.add(session)
    account_id, session_id, expires_at = account.id, session.id, session.expires_at
    pair: TokenPair | OpenedCookieSession
    if cookie_value is not None and cookie_hash is not None:
        pair = OpenedCookieSession(
            cookie=cookie_value,
            csrf_token=cookie_sessions.csrf_token(session_id),
            session_id=session_id,
            expires_at=expires_at,
        )
        uow.after_commit(lambda: cookie_sessions.remember(session_id, cookie_hash, expires_at))
    else:
        pair = _issue_tokens(uow, account, session, now)
    audit.record(
        uow,
        "authn_login_success",
        actor_id=account_id,
        subject_id=account_id,
        details={"session_id": session_id, "amr": amr},
    )
    return pair


def _disabled_meanwhile(uow: UnitOfWork, account_id: uuid.UUID) -> bool:
    disabled_at = uow.session.scalar(select(Account.disabled_at).where(Account.id == account_id))
    return disabled_at is not None


def _trusted_device(device_token: str | None, account_id: uuid.UUID) -> str | None:
    """The device of a device token this account was given, if it may still pass a lock
    (its own failure budget not spent); else None (RL-03)."""
    devices = runtime().devices
    if devices is None:
        return None
    device = devices.device_id(device_token, account_id)
    return device if devices.trusted(device) else None


def _count_login_failure(
    account_id: uuid.UUID, device: str | None, now: datetime, *, reason: str = "wrong_password"
) -> None:
    """A recognised device's failure counts against it; anyone else's against the account."""
    rt = runtime()
    if device is not None:
        rt.devices.record_failure(device)
        reason = f"{reason}_device"
    with unit_of_work() as uow:
        if device is None:
            lockout.record_failure(uow, account_id, now)
        audit.record(
            uow,
            "authn_login_fail",
            subject_id=account_id,
            outcome="failure",
            details={"reason": reason},
        )


def _printable(text: str | None, *, limit: int) -> str | None:
    """Client-supplied text fit to store and show: no control or other non-printable characters."""
    cleaned = "".join(char for char in (text or "") if char.isprintable())[:limit]
    return cleaned or None


# An account's roles in the statement that reads the account (the answer and the access token
# name them); their permissions are read, live, only by the operations that check them.
_ROLES_JOINED = joinedload(Account.roles).lazyload(Role.permission_rows)


def refresh(*, refresh_token: str) -> TokenPair:
    """Spend ``refresh_token`` and return a new pair for the same session.

    A spent token presented again is treated as stolen: its whole session ends. Of two
    concurrent refreshes of one token exactly one wins (compare-and-set on ``used_at``); the
    loser counts as reuse (strict policy).
    Raises InvalidRefreshToken, RefreshTokenReused, SessionRevoked, SessionExpired.
    """
    rt = runtime()
    now = rt.clock.now()
    if len(refresh_token) not in REFRESH_TOKEN_LENGTHS:
        raise InvalidRefreshToken()
    with unit_of_work() as uow:
        row = (
            uow.session.execute(
                select(RefreshToken, AuthSession)
                .join(AuthSession, RefreshToken.session_id == AuthSession.id)
                .where(RefreshToken.token_hash == digest_refresh_token(refresh_token))
                # The new access token names the account's roles: read with the token.
                .options(joinedload(AuthSession.account).options(_ROLES_JOINED))
            )
            .unique()
            .first()
        )
        if row is None:
            raise InvalidRefreshToken()
        token, session = row
        if token.used_at is not None:
            _end_session_for_reuse(uow, session.id, session.account_id, now)
        if session.revoked_at is not None:
            raise SessionRevoked()
        if now >= session.expires_at or now >= token.expires_at:
            raise SessionExpired()

        # Lock the session row before the token row: the order account deletion's cascade
        # uses, so the two cannot deadlock. A session ended meanwhile stops the refresh here.
        touched = uow.session.execute(
            update(AuthSession)
            .where(AuthSession.id == session.id, AuthSession.revoked_at.is_(None))
            .values(last_refreshed_at=now)
            .execution_options(synchronize_session=False)
        )
        if touched.rowcount != 1:
            raise SessionRevoked()
        spent = uow.session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        session_id, account_id = session.id, session.account_id
        if spent.rowcount != 1:
            uow.rollback()
            _end_session_for_reuse(uow, session_id, account_id, now)
        audit.record(
            uow,
            "authn_token_refresh",
            actor_id=account_id,
            subject_id=account_id,
            details={"session_id": session_id},
        )
        return _issue_tokens(uow, session.account, session, now)


def _end_session_for_reuse(
    uow: UnitOfWork, session_id: uuid.UUID, account_id: uuid.UUID, now: datetime
) -> NoReturn:
    """End the session whose refresh token came back, commit that, and refuse the refresh."""
    end_sessions(uow, [session_id], reason="refresh_token_reused", now=now, account_id=account_id)
    audit.record(
        uow,
        "authn_token_reuse",
        subject_id=account_id,
        outcome="failure",
        details={"session_id": session_id},
    )
    uow.commit()  # the session stays ended though the request fails
    raise RefreshTokenReused()


def logout(principal: Principal) -> None:
    """End the caller's session: its refresh token and every access token die at once."""
    if principal.session is None:
        return
    with unit_of_work() as uow:
        end_sessions(
            uow,
            [principal.session.id],
            reason="logout",
            now=runtime().clock.now(),
            account_id=principal.account_id,
        )


def authenticate_access_token(token: str) -> Principal:
    """Resolve a Bearer access token to the caller.

    The token must verify and its session must be live in the database (a deleted account has
    no sessions): one indexed read, and nothing cached, so a session ended anywhere stops its
    tokens everywhere at once. The account's roles come in the same statement (the answer and
    the permission checks read them). Raises InvalidToken.
    """
    rt = runtime()
    now = rt.clock.now()
    claims = rt.tokens.verify(token, now=now)
    row = (
        db.session.execute(
            select(AuthSession, Account)
            .join(Account, AuthSession.account_id == Account.id)
            .where(AuthSession.id == claims.session_id, Account.id == claims.account_id)
            .options(_ROLES_JOINED)
        )
        .unique()
        .first()
    )
    if row is None or not row[0].is_active(now) or row[1].disabled_at is not None:
        raise InvalidToken("The session has ended.")
    session, account = row
    return Principal(
        kind=CredentialKind.ACCESS_TOKEN,
        account=account,
        session=session,
        amr=tuple(session.amr_values),
        auth_time=session.auth_time,
        claims=claims.raw,
    )


def _issue_tokens(
    uow: UnitOfWork, account: Account, session: AuthSession, now: datetime
) -> TokenPair:
    rt = runtime()
    raw = new_refresh_token()
    expires_at = min(
        now + timedelta(seconds=rt.settings.refresh_token_lifetime_seconds), session.expires_at
    )
    uow.session.add(
        RefreshToken(
            session=session,
            token_hash=digest_refresh_token(raw),
            created_at=now,
            expires_at=expires_at,
        )
    )
    access = rt.tokens.issue(
        account_id=account.id,
        session_id=session.id,
        roles=account.role_names,
        amr=session.amr_values,
        auth_time=session.auth_time,
        email_verified=account.email_verified,
        now=now,
    )
    return TokenPair(
        access_token=access,
        expires_in=rt.tokens.lifetime_seconds,
        refresh_token=raw,
        refresh_expires_in=int((expires_at - now).total_seconds()),
    )
