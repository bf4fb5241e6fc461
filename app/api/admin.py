"""``/admin``: accounts and roles, for administrators (SECURITY.md ADM-01…ADM-05, MFA-06).

Every operation names the permission it needs (``services/permissions.PERMISSIONS``), read live
from the database on each request (D-6): a missing one answers 403 ``forbidden`` and changes
nothing. They are interactive-only (a personal access token gets 403
``interactive_login_required``), and with ``ADMIN_REQUIRES_MFA`` (on by default) the login must
have used a second factor (403 ``mfa_required``). The rules themselves (the last
administrator, no escalation, not one's own account) live in ``services/admin.py``.
"""

from __future__ import annotations

import uuid

from flask import url_for
from flask_restx import Namespace, Resource

from app.api.bodies import body, query, raises, returns
from app.api.schemas import (
    Accepted,
    AdminUserCreateRequest,
    AdminUserListQuery,
    AdminUserListResponse,
    AdminUserResponse,
    AdminUserUpdateRequest,
    PermissionListResponse,
    RoleCreateRequest,
    RoleDeleteQuery,
    RoleListResponse,
    RoleResponse,
    RoleUpdateRequest,
    SessionsEndedResponse,
)
from app.api.security import auth_required, current_principal
from app.errors import (
    BuiltInRole,
    EmailMixesScripts,
    EmailTaken,
    InvalidCursor,
    InvalidEmail,
    LastAdmin,
    OwnAccount,
    PermissionNotHeld,
    RoleExists,
    RoleInUse,
    RoleNotFound,
    UnknownPermission,
    UnknownRole,
    UserNotFound,
)
from app.services import admin
from app.services.permissions import PERMISSIONS

ns = Namespace("admin", description="Administration: accounts, roles and permissions")

RESET_STARTED = {
    "detail": "A password-reset link is on its way to the account's address; the password "
    "changes only when its owner follows it."
}


def _fields(model) -> dict:
    """The fields the body sent, so that leaving one out and sending null differ."""
    return {name: getattr(model, name) for name in model.model_fields_set}


# --- Users ------------------------------------------------------------------------------------


@ns.route("/users")
class UserList(Resource):
    @auth_required(permissions=("users:read",))
    @query(AdminUserListQuery)
    @returns(AdminUserListResponse, 200, "One page of accounts and the cursor of the next")
    @raises(InvalidCursor)
    def get(self, query: AdminUserListQuery):
        """List accounts: filtered, sorted, a page at a time (`users:read`)."""
        return admin.list_users(**query.model_dump())

    @auth_required(permissions=("users:write",))
    @body(AdminUserCreateRequest)
    @returns(
        AdminUserResponse,
        201,
        "Created with an unusable password; an invitation to choose one is mailed",
        headers={"Location": "The account's address"},
    )
    @raises(InvalidEmail, EmailMixesScripts, UnknownRole, PermissionNotHeld, EmailTaken)
    def post(self, body: AdminUserCreateRequest):
        """Create an account and mail it an invitation to choose its password (`users:write`).

        Nobody sets another's password (D-7): the invitation is a password-reset link that
        lives `INVITATION_TOKEN_LIFETIME_SECONDS`; following it sets the password and verifies
        the address. Roles given must hold only permissions the caller holds.
        """
        created = admin.create_user(
            current_principal(),
            email=body.email,
            display_name=body.display_name,
            roles=body.roles,
        )
        return created, {"Location": url_for("api.admin_user", user_id=created.id)}


@ns.route("/users/<uuid:user_id>")
@ns.param("user_id", "The account's id")
class User(Resource):
    @auth_required(permissions=("users:read",))
    @returns(AdminUserResponse, 200, "The account")
    @raises(UserNotFound)
    def get(self, user_id: uuid.UUID):
        """Read one account (`users:read`)."""
        return admin.get_user(user_id=user_id)

    @auth_required(permissions=("users:write",))
    @body(AdminUserUpdateRequest)
    @returns(AdminUserResponse, 200, "The account as changed")
    @raises(
        InvalidEmail,
        EmailMixesScripts,
        UnknownRole,
        PermissionNotHeld,
        UserNotFound,
        EmailTaken,
        LastAdmin,
        OwnAccount,
    )
    def patch(self, user_id: uuid.UUID, body: AdminUserUpdateRequest):
        """Change an account's display name, address, verified flag or roles (`users:write`).

        Removing `admin` from the last enabled administrator answers 409 `last_admin`; an
        administrator's own account answers 409 `own_account`.
        """
        return admin.update_user(current_principal(), user_id=user_id, **_fields(body))

    @auth_required(permissions=("users:write",))
    @returns(None, 204, "Deleted, with its sessions, tokens and mail")
    @raises(PermissionNotHeld, UserNotFound, LastAdmin, OwnAccount)
    def delete(self, user_id: uuid.UUID):
        """Delete an account (`users:write`)."""
        admin.delete_user(current_principal(), user_id=user_id)


@ns.route("/users/<uuid:user_id>/disable")
@ns.param("user_id", "The account's id")
class UserDisable(Resource):
    @auth_required(permissions=("users:write",))
    @returns(AdminUserResponse, 200, "Disabled: its sessions ended and tokens revoked at once")
    @raises(PermissionNotHeld, UserNotFound, LastAdmin, OwnAccount)
    def post(self, user_id: uuid.UUID):
        """Disable an account (`users:write`).

        Every session ends and every personal access token is revoked at once; its logins
        answer the same 401 `invalid_credentials` as a wrong password until it is enabled.
        """
        return admin.disable_user(current_principal(), user_id=user_id)


@ns.route("/users/<uuid:user_id>/enable")
@ns.param("user_id", "The account's id")
class UserEnable(Resource):
    @auth_required(permissions=("users:write",))
    @returns(AdminUserResponse, 200, "Enabled: it may log in again")
    @raises(PermissionNotHeld, UserNotFound, OwnAccount)
    def post(self, user_id: uuid.UUID):
        """Enable a disabled account (`users:write`)."""
        return admin.enable_user(current_principal(), user_id=user_id)


@ns.route("/users/<uuid:user_id>/unlock")
@ns.param("user_id", "The account's id")
class UserUnlock(Resource):
    @auth_required(permissions=("users:write",))
    @returns(AdminUserResponse, 200, "Unlocked: its failure count starts over")
    @raises(PermissionNotHeld, UserNotFound, OwnAccount)
    def post(self, user_id: uuid.UUID):
        """Lift an account's lockout now (`users:write`)."""
        return admin.unlock_user(current_principal(), user_id=user_id)


@ns.route("/users/<uuid:user_id>/sessions")
@ns.param("user_id", "The account's id")
class UserSessions(Resource):
    @auth_required(permissions=("sessions:write",))
    @returns(SessionsEndedResponse, 200, "Every session ended; their tokens fail at once")
    @raises(PermissionNotHeld, UserNotFound, OwnAccount)
    def delete(self, user_id: uuid.UUID):
        """End every session of an account (`sessions:write`)."""
        return {"ended": admin.end_user_sessions(current_principal(), user_id=user_id)}


@ns.route("/users/<uuid:user_id>/password-reset")
@ns.param("user_id", "The account's id")
class UserPasswordReset(Resource):
    @auth_required(permissions=("users:write",))
    @returns(Accepted, 202, "A reset link is mailed to the account's address")
    @raises(PermissionNotHeld, UserNotFound, OwnAccount)
    def post(self, user_id: uuid.UUID):
        """Mail an account a password-reset link (`users:write`); its owner sets the password."""
        admin.start_password_reset(current_principal(), user_id=user_id)
        return RESET_STARTED


# --- Roles and permissions --------------------------------------------------------------------


@ns.route("/permissions")
class PermissionList(Resource):
    @auth_required(permissions=("roles:read",))
    @returns(PermissionListResponse, 200, "The closed list of permissions")
    def get(self):
        """List the permissions a role may hold (`roles:read`)."""
        return {
            "permissions": [
                {"name": name, "description": text} for name, text in PERMISSIONS.items()
            ]
        }


@ns.route("/roles")
class RoleList(Resource):
    @auth_required(permissions=("roles:read",))
    @returns(RoleListResponse, 200, "Every role, by name")
    def get(self):
        """List roles with their permissions and member counts (`roles:read`)."""
        return {"roles": admin.list_roles()}

    @auth_required(permissions=("roles:write",))
    @body(RoleCreateRequest)
    @returns(RoleResponse, 201, "Created", headers={"Location": "The role's address"})
    @raises(UnknownPermission, PermissionNotHeld, RoleExists)
    def post(self, body: RoleCreateRequest):
        """Create a custom role (`roles:write`); only with permissions the caller holds."""
        role = admin.create_role(
            current_principal(),
            name=body.name,
            description=body.description,
            permissions=body.permissions,
        )
        return role, {"Location": url_for("api.admin_role", name=role.name)}


@ns.route("/roles/<string:name>")
@ns.param("name", "The role's name")
class Role(Resource):
    @auth_required(permissions=("roles:read",))
    @returns(RoleResponse, 200, "The role")
    @raises(RoleNotFound)
    def get(self, name: str):
        """Read one role (`roles:read`)."""
        return admin.get_role(name=name)

    @auth_required(permissions=("roles:write",))
    @body(RoleUpdateRequest)
    @returns(RoleResponse, 200, "The role as changed; its members feel it on their next request")
    @raises(UnknownPermission, PermissionNotHeld, RoleNotFound, BuiltInRole)
    def patch(self, name: str, body: RoleUpdateRequest):
        """Change a custom role's description or permissions (`roles:write`)."""
        return admin.update_role(current_principal(), name=name, **_fields(body))

    @auth_required(permissions=("roles:write",))
    @query(RoleDeleteQuery)
    @returns(None, 204, "Deleted")
    @raises(UnknownRole, PermissionNotHeld, RoleNotFound, BuiltInRole, RoleInUse)
    def delete(self, name: str, query: RoleDeleteQuery):
        """Delete a custom role (`roles:write`).

        While accounts hold it, 409 `role_in_use`, unless `?reassign_to=<role>` moves them to
        another role first (one whose permissions the caller holds).
        """
        admin.delete_role(current_principal(), name=name, reassign_to=query.reassign_to)
