"""The closed list of scopes a personal access token may carry, and what each allows.

One place: the API's ``@auth_required(scopes=…)`` names these, the token service refuses any
other (400 ``unknown_scope``), and the README's scope table says the same. An interactive login
(an access token of a session) is not restricted by scopes: it may do everything its account
may. What no scope allows (logout, email and password changes, account deletion, creating or
revoking tokens, MFA) is marked ``@auth_required(interactive_only=True)``.
"""

from __future__ import annotations

# scope → what it allows; the order is the README's.
SCOPES: dict[str, str] = {
    "profile:read": "Read the account: GET /accounts/me",
    "profile:write": "Change the profile: PATCH /accounts/me",
    "sessions:read": "List the account's sessions: GET /accounts/me/sessions",
    "sessions:write": "End sessions: DELETE /accounts/me/sessions and /accounts/me/sessions/{id}",
    "tokens:read": "List the account's personal access tokens: GET /accounts/me/tokens",
    "activity:read": "Read the account's own security events: GET /accounts/me/activity",
}


def unknown(scopes: list[str] | tuple[str, ...] | frozenset[str]) -> list[str]:
    """Those of ``scopes`` that are not in the closed list, in the order given."""
    return [scope for scope in scopes if scope not in SCOPES]
