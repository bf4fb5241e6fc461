"""The closed list of permissions a role may hold, and the built-in roles.

One place: ``@auth_required(permissions=…)`` names these, the role service refuses any other
(400 ``unknown_permission``), and the README's permission table says the same. Permissions are
held by roles (table ``role_permissions``) and roles by accounts; both are read live from the
database on every request (D-6), never from a token's claims.

They are not personal-access-token scopes (``services/scopes.py``): a scope restricts what a
token may do of what its account may; a permission is what an account may do to others. No
scope allows an administrative operation, so a personal access token never reaches one.
"""

from __future__ import annotations

# permission → what it allows; the order is the README's.
PERMISSIONS: dict[str, str] = {
    "users:read": "List and read accounts: GET /admin/users, /admin/users/{id}",
    "users:write": (
        "Create, change, disable, enable, unlock, delete accounts and start their password "
        "resets; assign roles (only roles whose permissions the caller holds)"
    ),
    "sessions:write": "End every session of another account: DELETE /admin/users/{id}/sessions",
    "roles:read": "List and read roles: GET /admin/roles, /admin/roles/{name}",
    "roles:write": "Create, change and delete custom roles",
    "audit:read": "Read the audit log: GET /admin/audit-events",
}

# The built-in roles: ``admin`` holds every permission, ``user`` (every account) none. They
# cannot be deleted, and their permissions cannot be changed. A permission added to the list
# above is granted to ``admin`` by the migration that adds it (a test checks they agree).
ADMIN_ROLE = "admin"
USER_ROLE = "user"
BUILT_IN_ROLES: dict[str, frozenset[str]] = {
    ADMIN_ROLE: frozenset(PERMISSIONS),
    USER_ROLE: frozenset(),
}


def unknown(permissions: list[str] | tuple[str, ...] | frozenset[str]) -> list[str]:
    """Those of ``permissions`` that are not in the closed list, in the order given."""
    return [permission for permission in permissions if permission not in PERMISSIONS]
