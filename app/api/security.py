"""The one place a request's credential is resolved.

Only the ``Authorization: Bearer`` header is read: tokens in query strings, bodies or cookies
are never looked at.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request

from app.errors import AuthenticationRequired, InvalidToken
from app.services import auth
from app.services.auth import Principal

# RFC 6750 b64token, bounded; anything else is not a token of ours.
_BEARER = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]+=*) *", re.IGNORECASE)
MAX_AUTHORIZATION_LENGTH = 4096

F = TypeVar("F", bound=Callable[..., Any])


def resolve_principal() -> Principal:
    """Authenticate the request's Bearer token. Raises AuthenticationRequired, InvalidToken."""
    header = request.headers.get("Authorization")
    if header is None:
        raise AuthenticationRequired()
    match = _BEARER.fullmatch(header) if len(header) <= MAX_AUTHORIZATION_LENGTH else None
    if match is None:
        raise InvalidToken("The Authorization header is not a Bearer token.")
    return auth.authenticate(match.group(1))


def bearer_required(method: F) -> F:
    """Resolve the caller before the resource method runs; it reads ``current_principal()``."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.principal = resolve_principal()
        return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def current_principal() -> Principal:
    return g.principal
