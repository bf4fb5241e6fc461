"""Who is calling: the account behind a request's credential, and what that credential allows.

``app/api/security.py`` builds a ``Principal`` from whatever credential a request carries; the
services take it as the caller's identity and never look at the request themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.models import Account, AuthSession


class CredentialKind(StrEnum):
    """How the caller proved who they are. The cookie session of a later feature adds its own
    kind here, and to ``INTERACTIVE_KINDS`` if a person logged in to get it."""

    ACCESS_TOKEN = "access_token"
    PERSONAL_ACCESS_TOKEN = "personal_access_token"
    COOKIE_SESSION = "cookie_session"

    @property
    def interactive(self) -> bool:
        """Whether a person logged in to get this credential (not a token made for a script).

        Operations no scope allows (``auth_required(interactive_only=True)``) need one. Listed,
        not excluded, so a kind added later is refused there until it is listed.
        """
        return self in INTERACTIVE_KINDS


INTERACTIVE_KINDS = frozenset({CredentialKind.ACCESS_TOKEN, CredentialKind.COOKIE_SESSION})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller.

    ``session`` is the login session the credential belongs to (None for credentials that have
    none, such as a personal access token). ``scopes`` is None for a credential that may do
    everything its account may (an interactive login); a restricted one lists its scopes.
    ``amr`` and ``auth_time`` say how and when the person last proved who they are (RFC 8176,
    OpenID Connect), which step-up checks compare against.
    """

    kind: CredentialKind
    account: Account
    session: AuthSession | None
    amr: tuple[str, ...]
    auth_time: datetime
    scopes: frozenset[str] | None = None
    claims: dict[str, Any] = field(default_factory=dict, repr=False)
    # Plain copies, read without touching the database (log lines, after a commit or deletion).
    account_id: uuid.UUID = field(init=False)
    session_id: uuid.UUID | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "account_id", self.account.id)
        object.__setattr__(self, "session_id", self.session.id if self.session else None)

    def has_scopes(self, required: Iterable[str]) -> bool:
        return self.scopes is None or self.scopes.issuperset(required)

    def has_roles(self, required: Iterable[str]) -> bool:
        """Every role in ``required``, read live from the account (D-6), not from a token."""
        return set(required).issubset(self.account.role_names)

    def has_permissions(self, required: Iterable[str]) -> bool:
        """Every permission in ``required``, through the account's roles read live (D-6)."""
        return set(required).issubset(self.account.permissions)
