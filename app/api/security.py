"""The one place a request's credential becomes a :class:`Principal`.

Authenticators are tried in a fixed order; each knows one way a credential travels (today the
``Authorization: Bearer`` header carrying an access token; a personal access token, recognised
by its prefix, and the cookie session of later issues join the list here). A request that
carries credentials of two kinds, or two Authorization headers, is refused: which one speaks
for the caller would be a guess. Tokens in query strings, bodies or other headers are never
read (SECURITY.md JWT-08).

Resources declare what they need with one decorator, :func:`auth_required`; it resolves the
caller, checks scopes, roles and freshness, and documents all of it in the OpenAPI document.
When a credential fails, this module, not the domain error, chooses the ``WWW-Authenticate``
challenge the answer carries (RFC 6750 §3), for the authenticator whose credential failed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from flask import Request, current_app, g, has_request_context, request
from flask_restx.utils import merge

from app.api.bodies import raises
from app.errors import (
    AuthenticationRequired,
    DomainError,
    Forbidden,
    InsufficientScope,
    InvalidToken,
    MultipleCredentials,
    Problem,
    ReauthenticationRequired,
)
from app.runtime import runtime
from app.services import auth
from app.services.principal import CredentialKind, Principal

F = TypeVar("F", bound=Callable[..., Any])
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
    """``Authorization: Bearer <access token>`` (RFC 6750 §2.1), the header and nothing else."""

    kind = CredentialKind.ACCESS_TOKEN
    # RFC 6750 b64token, bounded; anything else is not a token of ours.
    _BEARER = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]+=*) *", re.IGNORECASE)
    _CREDENTIAL = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]* +\S+")
    MAX_HEADER_LENGTH = 4096

    def extract(self, request: Request) -> str | None:
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
        if problem.status == 401:
            return "Bearer"
        return None


def init_app(app: Any, authenticators: Sequence[Authenticator] | None = None) -> None:
    """Install the authenticators of ``app``, in the order they are tried."""
    app.extensions[_EXTENSION_KEY] = list(authenticators or [BearerAccessToken()])


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
    scopes: Sequence[str] = (),
) -> Callable[[F], F]:
    """Resolve the caller before the resource method runs; it reads ``current_principal()``.

    ``scopes``: every one must be granted to the credential (403 ``insufficient_scope``).
    ``roles``: the account must hold every one, read live from the database (403
    ``forbidden``). ``fresh_within``: the person must have proved who they are that recently
    (403 ``reauthentication_required``). Checked in that order, after authentication (401).
    """
    required_scopes, required_roles = tuple(scopes), tuple(roles)

    def decorator(method: F) -> F:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = resolve_principal()
            g.principal = principal
            if required_scopes and not principal.has_scopes(required_scopes):
                raise InsufficientScope(required_scopes)
            if required_roles and not principal.has_roles(required_roles):
                raise Forbidden()
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
        if required_scopes:
            errors.append(InsufficientScope)
        if required_roles:
            errors.append(Forbidden)
        if fresh_within is not None:
            errors.append(ReauthenticationRequired)
        wrapper.__apidoc__ = merge(  # type: ignore[attr-defined]
            getattr(wrapper, "__apidoc__", {}), {"security": "Bearer"}
        )
        raises(*errors)(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorator


def current_principal() -> Principal:
    """The caller resolved by :func:`auth_required` for this request."""
    return g.principal
