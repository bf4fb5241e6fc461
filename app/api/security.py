"""The one place a request's credential becomes a :class:`Principal`.

Authenticators are tried in a fixed order; each knows one way a credential travels (today the
``Authorization: Bearer`` header carrying an access token, or a personal access token told
from it by its ``gh_pat_`` prefix; the cookie session of a later issue joins the list here).
A request that carries credentials of two kinds, or two Authorization headers, is refused:
which one speaks for the caller would be a guess. Tokens in query strings, bodies or other
headers are never read (SECURITY.md JWT-08).

Resources declare what they need with one decorator, :func:`auth_required`; it resolves the
caller, checks scopes, roles and freshness, and documents all of it in the OpenAPI document.
A personal access token reaches only operations that name a scope it holds; every other
operation is for interactive logins only (403 ``interactive_login_required``).
When a credential fails, this module, not the domain error, chooses the ``WWW-Authenticate``
challenge the answer carries (RFC 6750 §3), for the authenticator whose credential failed.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from flask import (
    Request,
    Response,
    after_this_request,
    current_app,
    g,
    has_request_context,
    request,
)
from flask_restx.utils import merge

from app.api.bodies import raises
from app.errors import (
    AuthenticationRequired,
    CsrfTokenInvalid,
    CsrfTokenMissing,
    DomainError,
    Forbidden,
    InsufficientScope,
    InteractiveLoginRequired,
    InvalidToken,
    MultipleCredentials,
    Problem,
    ReauthenticationRequired,
    SecondFactorRequired,
)
from app.runtime import runtime
from app.services import auth, cookie_sessions, personal_tokens, sessions
from app.services.permissions import PERMISSIONS
from app.services.principal import CredentialKind, Principal
from app.services.scopes import SCOPES

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("gatehouse.security")
_EXTENSION_KEY = "gatehouse.authenticators"


class Authenticator(Protocol):
    """One way a credential travels in a request, and how to check it."""

    kind: CredentialKind

    def extract(self, request: Request) -> str | None:
        """The raw credential if the request carries one of this kind, else None.

        Raises MultipleCredentials when it carries several, InvalidToken when it is malformed.
        """

    def authenticate(self, credential: str) -> Principal:
        """Raises an Unauthenticated error when the credential is not good."""

    def challenge(self, problem: Problem) -> str | None:
        """The ``WWW-Authenticate`` value for ``problem`` (None: no challenge)."""


class BearerAccessToken:
    """``Authorization: Bearer <access token>`` (RFC 6750 §2.1), the header and nothing else.

    A Bearer token with the personal-access-token prefix is left to
    :class:`BearerPersonalAccessToken`.
    """

    kind = CredentialKind.ACCESS_TOKEN
    # RFC 6750 b64token, bounded; anything else is not a token of ours.
    _BEARER = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]+=*) *", re.IGNORECASE)
    _CREDENTIAL = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]* +\S+")
    MAX_HEADER_LENGTH = 4096

    def extract(self, request: Request) -> str | None:
        token = self.bearer_token(request)
        return None if token is None or _is_personal_token(token) else token

    def bearer_token(self, request: Request) -> str | None:
        """The Bearer token of the one Authorization header, whatever its kind."""
        headers = request.headers.getlist("Authorization")
        if not headers:
            return None
        # A server joins repeated headers with commas, which no token contains.
        parts = [part.strip() for header in headers for part in header.split(",")]
        if len(parts) > 1 and all(self._CREDENTIAL.fullmatch(part) for part in parts):
            raise MultipleCredentials("The request has more than one Authorization header.")
        header = headers[0]
        match = self._BEARER.fullmatch(header) if len(header) <= self.MAX_HEADER_LENGTH else None
        if match is None:
            raise InvalidToken("The Authorization header is not a Bearer token.")
        return match.group(1)

    def authenticate(self, credential: str) -> Principal:
        return auth.authenticate_access_token(credential)

    def challenge(self, problem: Problem) -> str | None:
        if problem.code == InvalidToken.code:
            return 'Bearer error="invalid_token"'
        if problem.code == MultipleCredentials.code:
            return 'Bearer error="invalid_request"'
        if problem.code == InsufficientScope.code:
            scope = problem.extra.get("required_scopes", [])
            return f'Bearer error="insufficient_scope", scope="{" ".join(scope)}"'
        if problem.code == InteractiveLoginRequired.code:
            # No scope would do (RFC 6750 §3.1 lets the scope attribute go unsaid).
            return (
                'Bearer error="insufficient_scope", error_description="interactive login required"'
            )
        if problem.status == 401:
            return "Bearer"
        return None


class BearerPersonalAccessToken(BearerAccessToken):
    """``Authorization: Bearer gh_pat_…``: a personal access token, told by its prefix.

    The same header, so the same refusals (two headers, a malformed one) and challenges.
    """

    kind = CredentialKind.PERSONAL_ACCESS_TOKEN

    def extract(self, request: Request) -> str | None:
        token = self.bearer_token(request)
        return token if token is not None and _is_personal_token(token) else None

    def authenticate(self, credential: str) -> Principal:
        principal = personal_tokens.authenticate(credential)
        _record_token_use(principal)
        return principal


def _is_personal_token(token: str) -> bool:
    return token.startswith(personal_tokens.PREFIX)


def _record_token_use(principal: Principal) -> None:
    """Move the token's ``last_used_at`` once a successful answer is built, once a minute."""
    now = runtime().clock.now()
    if not personal_tokens.use_is_stale(principal, now):
        return
    token_id = principal.claims["pat_id"]
    record = functools.partial(personal_tokens.record_use, token_id, now)
    _after_success(record, f"token {token_id}")


def _after_success(record: Callable[[], None], what: str) -> None:
    """Run ``record`` once the answer is built, if it succeeded (a refused request leaves the
    database as it was); a failure is logged, never the answer's."""

    def run(response: Response) -> Response:
        if response.status_code >= 400:
            return response
        try:
            record()
        except Exception:  # a missed timestamp must not fail the answer
            log.warning("could not record the use of %s", what, exc_info=True)
        return response

    after_this_request(run)


class SessionCookie:
    """The session cookie of cookie-session mode (``POST /api/v1/auth/session``).

    Its name is ``__Host-gatehouse_session`` (Secure, Path=/, no Domain: a sibling subdomain
    cannot set or shadow it) outside development, where plain-HTTP ``make run`` needs a cookie
    without Secure and therefore without the prefix: ``gatehouse_session``.
    """

    kind = CredentialKind.COOKIE_SESSION

    def extract(self, request: Request) -> str | None:
        return request.cookies.get(cookie_name()) or None

    def authenticate(self, credential: str) -> Principal:
        return cookie_sessions.authenticate_cookie(credential)

    def challenge(self, problem: Problem) -> str | None:
        # RFC 9110 §11.6.1: a 401 names a scheme; a client may always present a Bearer token.
        return "Bearer" if problem.status == 401 else None


def cookie_secure() -> bool:
    return runtime().settings.env_name != "development"


def cookie_name() -> str:
    return "__Host-gatehouse_session" if cookie_secure() else "gatehouse_session"


def init_app(app: Any, authenticators: Sequence[Authenticator] | None = None) -> None:
    """Install the authenticators of ``app``, in the order they are tried."""
    app.extensions[_EXTENSION_KEY] = list(
        authenticators or [BearerAccessToken(), BearerPersonalAccessToken(), SessionCookie()]
    )


def authenticators() -> list[Authenticator]:
    return current_app.extensions[_EXTENSION_KEY]


def resolve_principal() -> Principal:
    """Find the request's one credential and authenticate it.

    Raises AuthenticationRequired (none), MultipleCredentials (more than one), or the failed
    authenticator's Unauthenticated error.
    """
    found: list[tuple[Authenticator, str]] = []
    for authenticator in authenticators():
        g.credential_authenticator = authenticator  # a malformed credential fails here
        credential = authenticator.extract(request)
        if credential is not None:
            found.append((authenticator, credential))
    g.credential_authenticator = None
    if not found:
        raise AuthenticationRequired()
    if len(found) > 1:
        raise MultipleCredentials("Send one credential: a token or a session cookie, not both.")
    authenticator, credential = found[0]
    # Stays set once it succeeds: a scope the credential lacks is its challenge too.
    g.credential_authenticator = authenticator
    return authenticator.authenticate(credential)


def challenge_for(problem: Problem) -> str | None:
    """The ``WWW-Authenticate`` challenge an error answer carries, if any.

    The authenticator of the credential in play picks it; an error with no credential in
    play (no token at all, two of them, a failed login or refresh) gets the first one's.
    """
    in_play = getattr(g, "credential_authenticator", None) if has_request_context() else None
    return (in_play or authenticators()[0]).challenge(problem)


def auth_required(
    *,
    fresh_within: timedelta | None = None,
    roles: Sequence[str] = (),
    permissions: Sequence[str] = (),
    scopes: Sequence[str] = (),
    interactive_only: bool = False,
) -> Callable[[F], F]:
    """Resolve the caller before the resource method runs; it reads ``current_principal()``.

    ``scopes`` (from ``services/scopes.SCOPES``): a credential restricted to scopes (a personal
    access token) must hold every one (403 ``insufficient_scope``); an interactive login holds
    them all. ``interactive_only``: no scope allows the operation, and a credential no person
    logged in for gets 403 ``interactive_login_required``; an operation naming no scopes is
    interactive-only whether it says so or not (fail closed), the keyword says it out loud.
    ``roles``: the account must hold every one, read live from the database (403
    ``forbidden``). ``permissions`` (from ``services/permissions.PERMISSIONS``): the account's
    roles must hold every one, read live (403 ``forbidden``); such an operation is
    administrative, so it is interactive-only (no scope allows it) and, with
    ``ADMIN_REQUIRES_MFA``, needs a login that used a second factor (403 ``mfa_required``,
    MFA-06). ``fresh_within``: the person must have proved who they are that recently
    (403 ``reauthentication_required``). Checked in that order, after authentication (401).
    """
    required_scopes, required_roles = tuple(scopes), tuple(roles)
    required_permissions = tuple(permissions)
    if interactive_only and required_scopes:
        raise ValueError("an interactive-only operation names no scopes")
    if required_permissions and required_scopes:
        raise ValueError("no scope allows an administrative operation")
    unknown = set(required_scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    unknown_permissions = set(required_permissions) - set(PERMISSIONS)
    if unknown_permissions:
        raise ValueError(f"unknown permissions: {sorted(unknown_permissions)}")

    def decorator(method: F) -> F:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = resolve_principal()
            g.principal = principal
            cookie_sessions.check_csrf(
                principal, request.method, request.headers.get(cookie_sessions.CSRF_HEADER)
            )
            _record_session_use(principal)
            if not required_scopes and not principal.kind.interactive:
                raise InteractiveLoginRequired()
            if required_scopes and not principal.has_scopes(required_scopes):
                raise InsufficientScope(required_scopes)
            if required_roles and not principal.has_roles(required_roles):
                raise Forbidden()
            if required_permissions:
                if not principal.has_permissions(required_permissions):
                    raise Forbidden(f"Needs the permissions: {' '.join(required_permissions)}.")
                if runtime().settings.admin_requires_mfa and "otp" not in principal.amr:
                    raise SecondFactorRequired()
            if fresh_within is not None and (
                runtime().clock.now() - principal.auth_time > fresh_within
            ):
                raise ReauthenticationRequired()
            return method(*args, **kwargs)

        errors: list[type[DomainError]] = [
            AuthenticationRequired,
            InvalidToken,
            MultipleCredentials,
        ]
        errors.append(InsufficientScope if required_scopes else InteractiveLoginRequired)
        # A resource method is named for its HTTP method: the unsafe ones can meet the check.
        if method.__name__ in ("post", "put", "patch", "delete"):
            errors.extend([CsrfTokenMissing, CsrfTokenInvalid])
        if required_roles or required_permissions:
            errors.append(Forbidden)
        if required_permissions:
            errors.append(SecondFactorRequired)
        if fresh_within is not None:
            errors.append(ReauthenticationRequired)
        wrapper.__apidoc__ = merge(  # type: ignore[attr-defined]
            getattr(wrapper, "__apidoc__", {}), {"security": "Bearer"}
        )
        raises(*errors)(wrapper)
        wrapper.required_scopes = required_scopes  # type: ignore[attr-defined]
        wrapper.required_permissions = required_permissions  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def _record_session_use(principal: Principal) -> None:
    """Move the session's ``last_used_at`` once the answer is built, at most once a minute."""
    session, now = principal.session, runtime().clock.now()
    if session is None or not sessions.touch(session, now):
        return
    session_id = session.id
    _after_success(functools.partial(sessions.record_use, session_id, now), f"session {session_id}")


def current_principal() -> Principal:
    """The caller resolved by :func:`auth_required` for this request."""
    return g.principal
