"""Cookie-session mode: a browser holds an HttpOnly cookie instead of tokens (HTTP-09).

The cookie names a session row (the durable record, as for a token login): it carries 256
random bits whose SHA-256 digest is the row's ``cookie_hash``. With Redis configured, the
cookie's digest maps to its session id there, so a request finds its session by primary key;
whether the session is live is always read from the database, as for a Bearer token, so a
session ended anywhere stops its cookie at once on every instance, whatever Redis holds (a
Redis restarted with old data, or flushed, costs a lookup, never a revoked session back).
Without Redis the digest is looked up in the database.

State-changing requests made with the cookie must carry the session's CSRF token in the
``X-CSRF-Token`` header: an HMAC of the session id under a key derived from ``SECRET_KEY``,
so nothing needs storing, it dies with the session, and it cannot be computed from the cookie.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import redis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select

from app.errors import CsrfTokenInvalid, CsrfTokenMissing, InvalidToken
from app.extensions import db
from app.models import Account, AuthSession
from app.runtime import runtime
from app.services.principal import CredentialKind, Principal
from app.services.tokens import load_secret_key

COOKIE_BYTES = 32
CSRF_HEADER = "X-CSRF-Token"
# Methods that change nothing; every other one needs the CSRF header (RFC 9110 §9.2.1).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_HKDF_INFO = b"gatehouse csrf"
_COOKIE_LENGTH = 43


@dataclass(frozen=True)
class OpenedCookieSession:
    """What a cookie login hands the API layer: the cookie (once) and the CSRF token."""

    cookie: str
    csrf_token: str
    session_id: uuid.UUID
    expires_at: datetime
    device_token: str | None = None


def new_cookie() -> tuple[str, str]:
    """A fresh cookie value and its digest (what the session row keeps)."""
    value = secrets.token_urlsafe(COOKIE_BYTES)
    return value, digest(value)


def digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def csrf_token(session_id: uuid.UUID) -> str:
    """The session's CSRF token: HMAC-SHA256 of its id under a key of its own."""
    mac = hmac.new(_csrf_key(), session_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def check_csrf(principal: Principal, method: str, header: str | None) -> None:
    """Refuse a state-changing request made with the cookie unless it carries the token.

    Raises CsrfTokenMissing, CsrfTokenInvalid.
    """
    if principal.kind is not CredentialKind.COOKIE_SESSION or method in SAFE_METHODS:
        return
    if not header:
        raise CsrfTokenMissing()
    assert principal.session_id is not None
    if not hmac.compare_digest(header.encode(), csrf_token(principal.session_id).encode()):
        raise CsrfTokenInvalid()


def remember(session_id: uuid.UUID, cookie_hash: str, expires_at: datetime) -> None:
    """Map the cookie to its session in Redis until the session's end (after the commit)."""
    store = runtime().redis
    if not store.configured or not store.available:
        return
    ttl = int((expires_at - runtime().clock.now()).total_seconds())
    if ttl <= 0:
        return
    try:
        store.client.set(store.key("cookie", cookie_hash), str(session_id), ex=ttl)
        store.report_success()
    except redis.RedisError as exc:
        store.report_failure("cookie session store", exc)


def forget(cookie_hash: str) -> None:
    """Drop the cookie's mapping (logout); a mapping left behind only costs a lookup."""
    store = runtime().redis
    if not store.configured or not store.available:
        return
    try:
        store.client.delete(store.key("cookie", cookie_hash))
        store.report_success()
    except redis.RedisError as exc:
        store.report_failure("cookie session store", exc)


def authenticate_cookie(cookie: str) -> Principal:
    """Resolve a session cookie to the caller. Raises InvalidToken."""
    if len(cookie) != _COOKIE_LENGTH:
        raise InvalidToken("The session cookie is not valid.")
    cookie_hash = digest(cookie)
    now = runtime().clock.now()
    session_id = _cached_session_id(cookie_hash)
    query = select(AuthSession, Account).join(Account, AuthSession.account_id == Account.id)
    if session_id is not None:
        query = query.where(AuthSession.id == session_id, AuthSession.cookie_hash == cookie_hash)
    else:
        query = query.where(AuthSession.cookie_hash == cookie_hash)
    row = db.session.execute(query).first()
    if row is None or not row[0].is_active(now) or row[1].disabled_at is not None:
        raise InvalidToken("The session has ended.")
    session, account = row
    if session_id is None:
        remember(session.id, cookie_hash, session.expires_at)
    return Principal(
        kind=CredentialKind.COOKIE_SESSION,
        account=account,
        session=session,
        amr=tuple(session.amr_values),
        auth_time=session.auth_time,
    )


def _cached_session_id(cookie_hash: str) -> uuid.UUID | None:
    store = runtime().redis
    if not store.configured or not store.available:
        return None
    try:
        value = store.client.get(store.key("cookie", cookie_hash))
        store.report_success()
    except redis.RedisError as exc:
        store.report_failure("cookie session store", exc)
        return None
    try:
        return uuid.UUID(value.decode()) if value else None
    except ValueError:
        return None


def _csrf_key() -> bytes:
    return _derive_csrf_key(load_secret_key(runtime().settings))


@functools.lru_cache(maxsize=4)
def _derive_csrf_key(secret: bytes) -> bytes:
    """A key of its own (HKDF-SHA256, info ``gatehouse csrf``): no other use of SECRET_KEY
    can stand in for it."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret)
