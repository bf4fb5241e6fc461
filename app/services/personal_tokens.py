"""Personal access tokens (PATs): scoped, long-lived credentials for scripts and CI.

A token is ``gh_pat_`` followed by 43 base64url characters: 256 bits from the operating
system's CSPRNG (``secrets``). The prefix lets the Bearer authenticator tell it from an access
token, and lets secret scanners find a leaked one. It is shown once, in the answer that creates
it, and stored only as its SHA-256 digest (DATA-03): a token is looked up by its digest, so no
comparison of secrets happens in Python, and a database dump yields no usable token.

A token may do only what its scopes allow (``services/scopes.py``); what no scope allows
(creating tokens, password, email, deletion, MFA, logout) needs an interactive login. A token
dies when its owner revokes it, when it expires, when the account's password is changed or
reset (:func:`revoke_all_for_account`, in that change's unit of work) and with the account.

As a :class:`Principal` a token has no session, its scopes, ``amr`` empty (nobody proved
anything when it is used; RFC 8176 defines no method for a bearer secret, and claiming ``pwd``
would be false) and ``auth_time`` its creation (the person last proved who they were, at the
latest, when they made it).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from app.errors import (
    InvalidToken,
    InvalidTokenLifetime,
    InvalidTokenName,
    ReauthenticationRequired,
    ScopesRequired,
    TokenLimitReached,
    TokenNotFound,
    UnknownScope,
    ValidationFailed,
    all_of,
)
from app.extensions import db
from app.models import Account, AuthSession, PersonalAccessToken
from app.runtime import runtime
from app.services import audit
from app.services import scopes as scope_catalogue
from app.services.principal import CredentialKind, Principal
from app.services.unit_of_work import UnitOfWork, unit_of_work

PREFIX = "gh_pat_"
TOKEN_BYTES = 32  # token_urlsafe(32): 43 base64url characters
_TOKEN_SHAPE = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9_-]{43}")
NAME_MAX_LENGTH = 100
MIN_LIFETIME_SECONDS = 60
# A use moves ``last_used_at`` at most this often: one write a minute per busy token.
TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class TokenView:
    """A token as its owner sees it: never the secret."""

    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True)
class CreatedToken(TokenView):
    """A token just created: ``token`` is its secret, shown this once."""

    token: str


def _view(row: PersonalAccessToken) -> TokenView:
    return TokenView(
        id=row.id,
        name=row.name,
        scopes=row.scope_list,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
    )


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# --- Creation -----------------------------------------------------------------------------


def creation_problems(
    *, name: object, scopes: object, expires_in: object
) -> list[ValidationFailed]:
    """Every rule a creation request breaks, each field checked (wrong types are skipped).

    So one 400 lists them all; a single broken rule answers with its own code.
    """
    problems: list[ValidationFailed] = []
    if isinstance(name, str):
        try:
            _clean_name(name)
        except ValidationFailed as problem:
            problems.append(problem)
    if isinstance(scopes, list) and all(isinstance(scope, str) for scope in scopes):
        try:
            _clean_scopes(scopes)
        except ValidationFailed as problem:
            problems.append(problem)
    if isinstance(expires_in, int) and not isinstance(expires_in, bool):
        try:
            _lifetime(expires_in)
        except ValidationFailed as problem:
            problems.append(problem)
    return problems


def create_token(
    principal: Principal, *, name: str, scopes: list[str], expires_in: int | None = None
) -> CreatedToken:
    """Make a token for the caller's account; the answer is the only place its secret appears.

    Minting a long-lived credential is a sensitive change (SES-09): the caller's login
    (``auth_time``, which refreshes do not renew) must be at most
    ``REAUTHENTICATION_WINDOW_SECONDS`` old, so a stolen access or refresh token cannot turn
    itself into a year-long one.
    Raises InvalidTokenName, ScopesRequired, UnknownScope, InvalidTokenLifetime (one, or
    ValidationFailed listing several), ReauthenticationRequired, TokenLimitReached.
    """
    problems = creation_problems(name=name, scopes=scopes, expires_in=expires_in)
    if problems:
        raise all_of(problems)
    rt = runtime()
    now = rt.clock.now()
    if now - principal.auth_time > timedelta(seconds=rt.settings.reauthentication_window_seconds):
        raise ReauthenticationRequired()
    lifetime = _lifetime(expires_in)
    account_id = principal.account_id
    value = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    row = PersonalAccessToken(
        id=uuid.uuid4(),
        account_id=account_id,
        name=_clean_name(name),
        token_hash=digest(value),
        scopes=" ".join(_clean_scopes(scopes)),
        created_at=now,
        expires_at=now + lifetime if lifetime is not None else None,
    )
    with unit_of_work() as uow:
        # Lock the account row first: two creations racing for the last free place queue here,
        # and the second counts the first's token; a password change or reset racing this one
        # (it takes the same lock) either revokes this token too or has ended the caller's
        # session by now, which is checked next.
        uow.session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(updated_at=Account.updated_at)
            .execution_options(synchronize_session=False)
        )
        if principal.session_id is not None and not _session_is_live(uow, principal.session_id):
            raise InvalidToken("The session has ended.")
        live = uow.session.scalar(
            select(func.count())
            .select_from(PersonalAccessToken)
            .where(PersonalAccessToken.account_id == account_id, _live(now))
        )
        if live >= rt.settings.pat_max_per_account:
            raise TokenLimitReached(
                f"An account may hold {rt.settings.pat_max_per_account} live tokens; "
                "revoke one first."
            )
        uow.session.add(row)
        view = _view(row)
        audit.record(
            uow,
            "authn_token_created",
            actor_id=account_id,
            subject_id=account_id,
            details={"token_id": row.id, "scopes": row.scopes},
        )
    return CreatedToken(**vars(view), token=value)


def _session_is_live(uow: UnitOfWork, session_id: uuid.UUID) -> bool:
    return (
        uow.session.scalar(
            select(AuthSession.id).where(
                AuthSession.id == session_id, AuthSession.revoked_at.is_(None)
            )
        )
        is not None
    )


def _clean_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > NAME_MAX_LENGTH:
        raise InvalidTokenName("name", "must be 1 to 100 characters, spaces around it trimmed")
    if not cleaned.isprintable():  # control, format (bidirectional marks) or odd spaces
        raise InvalidTokenName("name", "contains control or bidirectional characters")
    return cleaned


def _clean_scopes(scopes: list[str]) -> list[str]:
    """The scopes, each once, in the catalogue's order."""
    if not scopes:
        raise ScopesRequired("scopes", "name at least one scope")
    unknown = scope_catalogue.unknown(scopes)
    if unknown:
        # The closed list is public (README), so naming it tells nobody anything.
        raise UnknownScope(
            "scopes", f"not a scope; choose from: {', '.join(scope_catalogue.SCOPES)}"
        )
    return [scope for scope in scope_catalogue.SCOPES if scope in scopes]


def _lifetime(expires_in: int | None) -> timedelta | None:
    """The token's life: as asked, within the bounds; None asks the longest (None: forever)."""
    longest = runtime().settings.pat_max_lifetime_seconds
    if expires_in is None:
        return timedelta(seconds=longest) if longest else None
    if expires_in < MIN_LIFETIME_SECONDS or (longest and expires_in > longest):
        most = f"at most {longest}" if longest else "no upper bound"
        raise InvalidTokenLifetime(
            "expires_in", f"must be at least {MIN_LIFETIME_SECONDS} seconds ({most})"
        )
    return timedelta(seconds=expires_in)


# --- The owner's view ---------------------------------------------------------------------


def _live(now: datetime):
    return PersonalAccessToken.revoked_at.is_(None) & or_(
        PersonalAccessToken.expires_at.is_(None), PersonalAccessToken.expires_at > now
    )


def list_tokens(principal: Principal) -> list[TokenView]:
    """The caller's live tokens (not revoked, not expired), newest first."""
    now = runtime().clock.now()
    rows = db.session.scalars(
        select(PersonalAccessToken)
        .where(PersonalAccessToken.account_id == principal.account_id, _live(now))
        .order_by(PersonalAccessToken.created_at.desc(), PersonalAccessToken.id)
    ).all()
    return [_view(row) for row in rows]


def revoke_token(principal: Principal, token_id: uuid.UUID) -> None:
    """Revoke one of the caller's live tokens; it stops working at once.

    Raises TokenNotFound for an id that is unknown, revoked, expired or another account's:
    one answer, so ids cannot be probed.
    """
    now = runtime().clock.now()
    account_id = principal.account_id
    with unit_of_work() as uow:
        revoked = uow.session.execute(
            update(PersonalAccessToken)
            .where(
                PersonalAccessToken.id == token_id,
                PersonalAccessToken.account_id == account_id,
                _live(now),
            )
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        if revoked.rowcount != 1:  # type: ignore[attr-defined]
            raise TokenNotFound()
        audit.record(
            uow,
            "authn_token_revoked",
            actor_id=account_id,
            subject_id=account_id,
            details={"token_id": token_id, "reason": "revoked_by_user"},
        )


def revoke_all_for_account(uow: UnitOfWork, account_id: uuid.UUID, *, reason: str) -> None:
    """Revoke every live token of the account in ``uow`` (a password change or reset)."""
    now = runtime().clock.now()
    ids = uow.session.scalars(
        select(PersonalAccessToken.id).where(
            PersonalAccessToken.account_id == account_id,
            PersonalAccessToken.revoked_at.is_(None),
        )
    ).all()
    if not ids:
        return
    uow.session.execute(
        update(PersonalAccessToken)
        .where(PersonalAccessToken.id.in_(ids), PersonalAccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )

    for token_id in ids:
        audit.record(
            uow,
            "authn_token_revoked",
            actor_id=account_id,
            subject_id=account_id,
            details={"token_id": token_id, "reason": reason},
        )


# --- Authentication -----------------------------------------------------------------------


def authenticate(token: str) -> Principal:
    """Resolve a personal access token to the caller, with its scopes.

    One indexed read by digest, no write: a revoked, expired or unknown token, or one whose
    account is gone, raises InvalidToken. The API layer records the use after a successful
    answer (:func:`record_use`), at most once a minute.
    """
    if not _TOKEN_SHAPE.fullmatch(token):
        raise InvalidToken("The personal access token is invalid.")
    now = runtime().clock.now()
    row = db.session.execute(
        select(PersonalAccessToken, Account)
        .join(Account, PersonalAccessToken.account_id == Account.id)
        .where(PersonalAccessToken.token_hash == digest(token))
    ).first()
    if row is None:
        raise InvalidToken("The personal access token is invalid.")
    pat, account = row
    if pat.revoked_at is not None or (pat.expires_at is not None and now >= pat.expires_at):
        raise InvalidToken("The personal access token has been revoked or has expired.")
    if account.disabled_at is not None:
        raise InvalidToken("The personal access token has been revoked or has expired.")
    return Principal(
        kind=CredentialKind.PERSONAL_ACCESS_TOKEN,
        account=account,
        session=None,
        amr=(),
        auth_time=pat.created_at,
        scopes=frozenset(pat.scope_list),
        # What the API layer needs to record the use (:func:`record_use`), not JWT claims.
        claims={"pat_id": pat.id, "last_used_at": pat.last_used_at},
    )


def use_is_stale(principal: Principal, now: datetime) -> bool:
    """Whether the token's recorded last use is old enough for :func:`record_use` to move."""
    last_used_at = principal.claims.get("last_used_at")
    return last_used_at is None or now - last_used_at >= TOUCH_INTERVAL


def record_use(token_id: uuid.UUID, now: datetime) -> None:
    """Record that the token was accepted at ``now``: its own small transaction, after the
    answer; the condition keeps concurrent requests from writing more than once a minute."""
    with unit_of_work() as uow:
        uow.session.execute(
            update(PersonalAccessToken)
            .where(
                PersonalAccessToken.id == token_id,
                PersonalAccessToken.revoked_at.is_(None),
                or_(
                    PersonalAccessToken.last_used_at.is_(None),
                    PersonalAccessToken.last_used_at <= now - TOUCH_INTERVAL,
                ),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
