"""Two-factor authentication: TOTP (RFC 6238) and recovery codes (SECURITY.md MFA-01…MFA-05).

Enrolment. :func:`enrol` makes a new secret (160 random bits, base32) and answers it with its
``otpauth://`` URI and a QR code of that URI (SVG); the factor is pending, and guards nothing,
until :func:`confirm` receives a code from it. Confirming answers 10 recovery codes, shown that
once (only their digests are stored). Enrolling again while a factor is active is refused; a
pending enrolment is replaced by the next. The secret is never shown again.

Codes. A TOTP code is 6 digits, SHA-1, 30-second steps (what every authenticator app makes),
computed by pyotp for the server's clock only (``runtime().clock``, never the client's), and
accepted for the current step or one either side (clock drift). A code is accepted once: the
factor keeps the step of the last accepted code and takes a new one only for a later step,
by compare-and-set (``UPDATE … WHERE last_used_step < :step``), so two requests racing with one
code get one success (MFA-03). A recovery code (16 base32 characters, 80 bits, written
``abcd-efgh-ijkl-mnop``; case, spaces and hyphens do not matter) is spent the same way.

Login. ``services/auth.py`` asks :func:`has_active_factor` once the password is right and, if
so, answers an ``mfa_token`` (:func:`open_challenge`) instead of tokens; ``complete_mfa_login``
there takes the token and a code. The token is opaque, 256 random bits stored as a digest,
lives ``MFA_TOKEN_LIFETIME_SECONDS``, completes one login and dies after
``MFA_TOKEN_MAX_ATTEMPTS`` wrong codes, each of which also counts towards the lockout.

At rest. The TOTP secret is Fernet-encrypted under a key derived from ``SECRET_KEY`` with
HKDF-SHA256 (info ``gatehouse totp``, distinct from the outbox's), so a copy of the database
alone yields no secret. Changing ``SECRET_KEY`` therefore turns every enrolled factor off in
effect: its codes no longer verify (recovery codes still work, and re-enrolment after them).

Every write is one unit of work; a refused request changes nothing but the failure counters.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
import segno
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from app.errors import (
    FieldRuleBroken,
    InvalidToken,
    MfaAlreadyEnabled,
    MfaCodeInvalid,
    MfaCodeReused,
    MfaEnrolmentNotStarted,
    MfaNotEnabled,
    MfaTokenExhausted,
    MfaTokenExpired,
    MfaTokenInvalid,
    MfaTokenUsed,
    RecoveryCodeInvalid,
    RecoveryCodeUsed,
)
from app.extensions import db
from app.models import Account, MfaChallenge, RecoveryCode, TotpFactor
from app.runtime import runtime
from app.services import audit, lockout
from app.services.account import confirm_password
from app.services.principal import Principal
from app.services.tokens import load_secret_key
from app.services.unit_of_work import UnitOfWork, unit_of_work

HKDF_INFO = b"gatehouse totp"
TOTP_DIGITS = 6
TOTP_INTERVAL_SECONDS = 30
# Steps either side of the current one whose codes are still accepted (RFC 6238 §5.2).
DRIFT_STEPS = 1
SECRET_LENGTH = 32  # base32 characters: 160 bits, RFC 4226's recommended key length
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_LENGTH = 16  # base32 characters: 80 bits
RECOVERY_CODE_GROUP = 4
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
CODE_PATTERN = re.compile(r"[0-9]{6}")
_RECOVERY_PATTERN = re.compile(r"[a-z2-7]{16}")
_RECOVERY_SEPARATORS = re.compile(r"[\s-]")
# mfa_tokens we issue are 43 URL-safe characters; anything else is not worth a query.
_MFA_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Enrolment:
    """A pending TOTP factor as the caller sees it, once."""

    secret: str
    otpauth_uri: str
    qr_code_svg: str


@dataclass(frozen=True)
class MfaRequired:
    """What a correct password earns an account with TOTP on: the second step's token."""

    mfa_token: str
    mfa_required: bool = True


@dataclass(frozen=True)
class RecoveryCodes:
    recovery_codes: list[str]


# --- TOTP -----------------------------------------------------------------------------------


def totp(secret: str, *, digits: int = TOTP_DIGITS) -> pyotp.TOTP:
    """The RFC 6238 generator of ``secret`` (base32): HMAC-SHA1, 30-second steps."""
    return pyotp.TOTP(secret, digits=digits, digest=hashlib.sha1, interval=TOTP_INTERVAL_SECONDS)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step within ``DRIFT_STEPS`` of ``now`` whose code is ``code``, or None.

    Every candidate is computed and compared in constant time, whichever matches.
    """
    generator = totp(secret)
    current = generator.timecode(now)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(generator.generate_otp(step), code):
            found = step
    return found


@functools.lru_cache(maxsize=4)
def _cipher_for(secret_key: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret_key)
    return Fernet(base64.urlsafe_b64encode(key))


def totp_cipher() -> Fernet:
    """The Fernet cipher of TOTP secrets: a key of its own, derived from ``SECRET_KEY``."""
    return _cipher_for(load_secret_key(runtime().settings))


def _seal(secret: str) -> str:
    return totp_cipher().encrypt(secret.encode()).decode()


def _unseal(sealed: str) -> str:
    return totp_cipher().decrypt(sealed.encode()).decode()


# --- Recovery codes ---------------------------------------------------------------------------


def new_recovery_code() -> str:
    """80 bits from the CSPRNG, in four groups of four: ``abcd-efgh-ijkl-mnop``."""
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return "-".join(
        raw[start : start + RECOVERY_CODE_GROUP]
        for start in range(0, RECOVERY_CODE_LENGTH, RECOVERY_CODE_GROUP)
    )


def canonical_recovery_code(text: str) -> str | None:
    """The code without case, spaces or hyphens; None when it cannot be one of ours."""
    cleaned = _RECOVERY_SEPARATORS.sub("", text[:64]).lower()
    return cleaned if _RECOVERY_PATTERN.fullmatch(cleaned) else None


def digest_recovery_code(canonical: str) -> str:
    """SHA-256 is enough: a code has 80 random bits, nothing a fast hash makes guessable."""
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replace_recovery_codes(uow: UnitOfWork, account_id: uuid.UUID, now: datetime) -> list[str]:
    uow.session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account_id))
    codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    uow.session.add_all(
        RecoveryCode(
            account_id=account_id,
            code_hash=digest_recovery_code(canonical_recovery_code(code) or ""),
            created_at=now,
        )
        for code in codes
    )
    return codes


# --- Enrolment, recovery codes, disabling -----------------------------------------------------


def has_active_factor(session: Session, account_id: uuid.UUID) -> bool:
    return active_factor(session, account_id) is not None


def active_factor(session: Session, account_id: uuid.UUID) -> TotpFactor | None:
    return session.scalar(
        select(TotpFactor).where(
            TotpFactor.account_id == account_id, TotpFactor.confirmed_at.is_not(None)
        )
    )


def _lock_account(uow: UnitOfWork, account_id: uuid.UUID, now: datetime) -> None:
    """Take the account's row first: enrolments and disables of one account run one at a time."""
    touched = uow.session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if touched.rowcount != 1:
        raise InvalidToken("The session has ended.")


def enrol(principal: Principal) -> Enrolment:
    """Start (or restart) a TOTP enrolment. Raises MfaAlreadyEnabled."""
    rt = runtime()
    now = rt.clock.now()
    account_id, email = principal.account_id, principal.account.email
    secret = pyotp.random_base32(SECRET_LENGTH)
    with unit_of_work() as uow:
        _lock_account(uow, account_id, now)
        factor = uow.session.scalar(select(TotpFactor).where(TotpFactor.account_id == account_id))
        if factor is not None and factor.confirmed_at is not None:
            raise MfaAlreadyEnabled()
        if factor is None:
            factor = TotpFactor(account_id=account_id)
            uow.session.add(factor)
        factor.secret = _seal(secret)
        factor.created_at = now
        factor.last_used_step = None
        audit.record(uow, "authn_mfa_enrolment_started", actor_id=account_id, subject_id=account_id)
    uri = totp(secret).provisioning_uri(name=email, issuer_name=rt.settings.totp_issuer)
    svg = segno.make(uri, error="m").svg_inline(scale=4, title="TOTP enrolment")
    return Enrolment(secret=secret, otpauth_uri=uri, qr_code_svg=svg)


def confirm(principal: Principal, *, code: str) -> RecoveryCodes:
    """Activate the pending factor with a code from it; answer fresh recovery codes.

    Raises MfaEnrolmentNotStarted, MfaAlreadyEnabled, MfaCodeInvalid.
    """
    now = runtime().clock.now()
    account_id = principal.account_id
    with unit_of_work() as uow:
        _lock_account(uow, account_id, now)
        factor = uow.session.scalar(select(TotpFactor).where(TotpFactor.account_id == account_id))
        if factor is None:
            raise MfaEnrolmentNotStarted()
        if factor.confirmed_at is not None:
            raise MfaAlreadyEnabled()
        step = matching_step(_unseal(factor.secret), code, now)
        if step is None:
            raise MfaCodeInvalid("code")
        factor.confirmed_at = now
        factor.last_used_step = step  # the confirming code cannot log in as well
        codes = _replace_recovery_codes(uow, account_id, now)
        audit.record(uow, "authn_mfa_enabled", actor_id=account_id, subject_id=account_id)
    return RecoveryCodes(codes)


def regenerate_recovery_codes(principal: Principal, *, password: str) -> RecoveryCodes:
    """New recovery codes for the password; the old ones stop working.

    Raises MfaNotEnabled, CurrentPasswordIncorrect, Busy.
    """
    account_id = principal.account_id
    if not has_active_factor(db.session, account_id):
        raise MfaNotEnabled()
    confirm_password(principal, password, field="password")
    now = runtime().clock.now()
    with unit_of_work() as uow:
        _lock_account(uow, account_id, now)
        if not has_active_factor(uow.session, account_id):
            raise MfaNotEnabled()
        codes = _replace_recovery_codes(uow, account_id, now)
        audit.record(
            uow,
            "authn_mfa_recovery_codes_regenerated",
            actor_id=account_id,
            subject_id=account_id,
        )
    return RecoveryCodes(codes)


def disable(
    principal: Principal,
    *,
    password: str,
    code: str | None = None,
    recovery_code: str | None = None,
) -> None:
    """Turn TOTP off: the factor, its recovery codes and pending challenges go (MFA-05).

    Needs the password and a current code or a recovery code; a wrong one counts towards the
    lockout like a wrong password. Raises MfaNotEnabled, CurrentPasswordIncorrect, Busy, or the
    code's error (MfaCodeInvalid, MfaCodeReused, RecoveryCodeInvalid, RecoveryCodeUsed).
    """
    account_id = principal.account_id
    if not has_active_factor(db.session, account_id):
        raise MfaNotEnabled()
    confirm_password(principal, password, field="password")
    now = runtime().clock.now()
    with unit_of_work() as uow:
        _lock_account(uow, account_id, now)
        factor = active_factor(uow.session, account_id)
        if factor is None:
            raise MfaNotEnabled()
        failure = spend_second_factor(uow, factor, code=code, recovery_code=recovery_code, now=now)
        if failure is not None:
            uow.rollback()  # nothing of the above stays; only the failure is counted
            lockout.record_failure(uow, account_id, now)
            audit.record(
                uow,
                "authn_mfa_check_fail",
                actor_id=account_id,
                subject_id=account_id,
                outcome="failure",
                details={"reason": failure.code},
            )
            uow.commit()
            raise failure
        uow.session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account_id))
        uow.session.execute(delete(MfaChallenge).where(MfaChallenge.account_id == account_id))
        uow.session.execute(delete(TotpFactor).where(TotpFactor.id == factor.id))
        audit.record(uow, "authn_mfa_disabled", actor_id=account_id, subject_id=account_id)


def spend_second_factor(
    uow: UnitOfWork,
    factor: TotpFactor,
    *,
    code: str | None,
    recovery_code: str | None,
    now: datetime,
) -> FieldRuleBroken | None:
    """Accept ``code`` (or ``recovery_code``) and spend it, or answer why not.

    Writes only when it accepts: the factor's last step, or the recovery code's ``used_at``,
    each by compare-and-set, so of two requests with one code exactly one succeeds.
    """
    if code is not None:
        step = matching_step(_unseal(factor.secret), code, now)
        if step is None:
            return MfaCodeInvalid("code")
        spent = uow.session.execute(
            update(TotpFactor)
            .where(
                TotpFactor.id == factor.id,
                or_(TotpFactor.last_used_step.is_(None), TotpFactor.last_used_step < step),
            )
            .values(last_used_step=step)
            .execution_options(synchronize_session=False)
        )
        return None if spent.rowcount == 1 else MfaCodeReused("code")
    canonical = canonical_recovery_code(recovery_code or "")
    row = (
        uow.session.scalar(
            select(RecoveryCode).where(
                RecoveryCode.account_id == factor.account_id,
                RecoveryCode.code_hash == digest_recovery_code(canonical),
            )
        )
        if canonical
        else None
    )
    if row is None:
        return RecoveryCodeInvalid("recovery_code")
    spent = uow.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return None if spent.rowcount == 1 else RecoveryCodeUsed("recovery_code")


# --- Login challenges -------------------------------------------------------------------------


def digest_mfa_token(token: str) -> str:
    """SHA-256 is enough: the token has 256 random bits."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def open_challenge(uow: UnitOfWork, account_id: uuid.UUID, now: datetime) -> MfaRequired:
    """A new ``mfa_token`` for the account; its expired ones are cleared away."""
    settings = runtime().settings
    uow.session.execute(
        delete(MfaChallenge).where(
            MfaChallenge.account_id == account_id, MfaChallenge.expires_at <= now
        )
    )
    raw = secrets.token_urlsafe(32)
    lifetime = settings.mfa_token_lifetime_seconds
    uow.session.add(
        MfaChallenge(
            account_id=account_id,
            token_hash=digest_mfa_token(raw),
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime),
            failed_attempts=0,
        )
    )
    return MfaRequired(mfa_token=raw)


def find_challenge(mfa_token: str, now: datetime) -> tuple[MfaChallenge, Account]:
    """The live challenge of ``mfa_token`` and its account (a read).

    Raises MfaTokenInvalid (not ours, or the password changed since), MfaTokenUsed,
    MfaTokenExpired, MfaTokenExhausted.
    """
    if not _MFA_TOKEN_PATTERN.fullmatch(mfa_token):
        raise MfaTokenInvalid()
    row = db.session.execute(
        select(MfaChallenge, Account)
        .join(Account, MfaChallenge.account_id == Account.id)
        .where(MfaChallenge.token_hash == digest_mfa_token(mfa_token))
    ).first()
    if row is None:
        raise MfaTokenInvalid()
    challenge, account = row
    if challenge.used_at is not None:
        raise MfaTokenUsed()
    if now >= challenge.expires_at:
        raise MfaTokenExpired()
    if challenge.failed_attempts >= runtime().settings.mfa_token_max_attempts:
        raise MfaTokenExhausted()
    if account.password_changed_at > challenge.created_at:
        raise MfaTokenInvalid("The password changed since this mfa_token was issued.")
    return challenge, account


def spend_challenge(uow: UnitOfWork, challenge_id: uuid.UUID, now: datetime) -> bool:
    """Mark the challenge used if it is still live (compare-and-set); False if it was not."""
    spent = uow.session.execute(
        update(MfaChallenge)
        .where(
            MfaChallenge.id == challenge_id,
            MfaChallenge.used_at.is_(None),
            MfaChallenge.expires_at > now,
            MfaChallenge.failed_attempts < runtime().settings.mfa_token_max_attempts,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return spent.rowcount == 1


def record_failed_attempt(uow: UnitOfWork, challenge_id: uuid.UUID) -> None:
    uow.session.execute(
        update(MfaChallenge)
        .where(MfaChallenge.id == challenge_id, MfaChallenge.used_at.is_(None))
        .values(failed_attempts=MfaChallenge.failed_attempts + 1)
        .execution_options(synchronize_session=False)
    )
