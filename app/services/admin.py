"""Administration: accounts and roles managed by administrators (API) and operators (CLI).

Every function takes the ``actor``: the :class:`Principal` of the administrator calling through
the API, or None for an operator at the CLI (``flask users …``), who may do anything the rules
below allow. Each write is one unit of work and records one audit event in it (ADM-06); the
details name roles and fields, never an address, password, token or hash (D-8).

The rules, whoever calls:

- **The last administrator stays** (ADM-04): demoting, disabling or deleting the last enabled
  account with the ``admin`` role raises LastAdmin. Every change that can shrink that set first
  locks the built-in ``admin`` role's row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite
  serialises writers itself), then counts the others afresh: of two administrators demoting
  each other at once, the second waits for the first and then finds itself alone.
- **Nobody grants what they do not hold**: an administrator may assign a role, or give a role
  a permission, only if they hold every permission involved, and may change an account only if
  they hold every permission it holds (PermissionNotHeld). ``admin`` holds them all.
- **Not one's own account** through the admin API (OwnAccount): no administrator disables,
  demotes or deletes themselves by accident; their own account has ``/accounts/me``.
- **No one sets another's password** (D-7): an administrator starts a reset, the person
  finishes it. A new account gets an unusable password and a mailed invitation to choose one.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import selectinload

from app.errors import (
    BuiltInRole,
    EmailTaken,
    InvalidCursor,
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
from app.extensions import db
from app.models import Account, AuthSession, Role, RolePermission, account_roles
from app.runtime import runtime
from app.services import account_tokens, audit, lockout, mail, personal_tokens
from app.services.account import UNSET, clean_display_name
from app.services.account_tokens import Purpose
from app.services.emails import normalise_email
from app.services.permissions import ADMIN_ROLE, BUILT_IN_ROLES, PERMISSIONS, USER_ROLE
from app.services.principal import Principal
from app.services.sessions import announce_ended_sessions, end_sessions
from app.services.unit_of_work import UnitOfWork, unit_of_work
from app.services.verification import expiry_minutes

Status = Literal["active", "disabled", "locked"]
Sort = Literal["created_at", "-created_at", "email", "-email"]
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class UserView:
    """An account as administrators see it: no hash, counter or lock time (DATA-04)."""

    id: uuid.UUID
    email: str
    display_name: str | None
    email_verified: bool
    roles: list[str]
    permissions: list[str]
    status: Status
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True)
class UserPage:
    items: list[UserView]
    next_cursor: str | None


@dataclass(frozen=True)
class RoleView:
    name: str
    description: str
    permissions: list[str]
    built_in: bool
    members: int


def _view(account: Account, now: datetime) -> UserView:
    if account.disabled_at is not None:
        status: Status = "disabled"
    elif lockout.is_locked(account, now):
        status = "locked"
    else:
        status = "active"
    return UserView(
        id=account.id,
        email=account.email,
        display_name=account.display_name,
        email_verified=account.email_verified,
        roles=account.role_names,
        permissions=sorted(account.permissions),
        status=status,
        created_at=account.created_at,
        updated_at=account.updated_at,
        disabled_at=account.disabled_at,
    )


def _actor_id(actor: Principal | None) -> uuid.UUID | None:
    return actor.account_id if actor is not None else None


# --- Users: reading -------------------------------------------------------------------------


def list_users(
    *,
    email_contains: str | None = None,
    role: str | None = None,
    status: Status | None = None,
    verified: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    sort: Sort = "created_at",
    cursor: str | None = None,
    limit: int = 50,
) -> UserPage:
    """One page of accounts, filtered, in a stable order (the sort key, then the id).

    ``cursor`` is the ``next_cursor`` of the previous page, opaque to the caller and bound to
    its sort order. ``email_contains`` matches the case-folded address. Raises InvalidCursor.
    """
    now = runtime().clock.now()
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    column = Account.email_key if sort.lstrip("-") == "email" else Account.created_at
    descending = sort.startswith("-")
    query = select(Account).options(selectinload(Account.roles))
    if email_contains:
        needle = unicodedata.normalize("NFKC", email_contains).casefold()
        query = query.where(Account.email_key.contains(needle, autoescape=True))
    if role is not None:
        query = query.where(
            exists().where(
                account_roles.c.account_id == Account.id, account_roles.c.role_name == role
            )
        )
    if status == "disabled":
        query = query.where(Account.disabled_at.is_not(None))
    elif status == "locked":
        query = query.where(Account.disabled_at.is_(None), Account.locked_until > now)
    elif status == "active":
        query = query.where(
            Account.disabled_at.is_(None),
            or_(Account.locked_until.is_(None), Account.locked_until <= now),
        )
    if verified is not None:
        query = query.where(Account.email_verified.is_(verified))
    if created_after is not None:
        query = query.where(Account.created_at >= created_after)
    if created_before is not None:
        query = query.where(Account.created_at < created_before)
    if cursor is not None:
        key, last_id = _decode_cursor(cursor, sort)
        if descending:
            query = query.where(or_(column < key, and_(column == key, Account.id < last_id)))
        else:
            query = query.where(or_(column > key, and_(column == key, Account.id > last_id)))
    order = (column.desc(), Account.id.desc()) if descending else (column.asc(), Account.id.asc())
    accounts = list(db.session.scalars(query.order_by(*order).limit(limit + 1)))
    next_cursor = None
    if len(accounts) > limit:
        accounts = accounts[:limit]
        last = accounts[-1]
        next_cursor = _encode_cursor(
            sort,
            last.email_key if column is Account.email_key else (last.created_at.isoformat()),
            last.id,
        )
    return UserPage([_view(account, now) for account in accounts], next_cursor)


def _encode_cursor(sort: str, key: str, last_id: uuid.UUID) -> str:
    raw = json.dumps([sort, key, str(last_id)], separators=(",", ":"), ensure_ascii=False)
    raw = raw.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, key, last_id = json.loads(raw)
        if cursor_sort != sort or not isinstance(key, str):
            raise ValueError("another listing's cursor")
        parsed_key: Any = key if sort.lstrip("-") == "email" else datetime.fromisoformat(key)
        return parsed_key, uuid.UUID(last_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("cursor") from None


def get_user(*, user_id: uuid.UUID) -> UserView:
    """Raises UserNotFound."""
    account = db.session.get(Account, user_id)
    if account is None:
        raise UserNotFound()
    return _view(account, runtime().clock.now())


# --- Users: changing ------------------------------------------------------------------------


def _load(uow: UnitOfWork, user_id: uuid.UUID) -> Account:
    """The account as the database has it now (read after any lock this unit took)."""
    account = uow.session.scalar(
        select(Account)
        .where(Account.id == user_id)
        .options(selectinload(Account.roles))
        .execution_options(populate_existing=True)
    )
    if account is None:
        raise UserNotFound()
    return account


def _find_by_email(uow: UnitOfWork, email: str) -> Account:
    _, key = normalise_email(email)
    account = uow.session.scalar(
        select(Account).where(Account.email_key == key).options(selectinload(Account.roles))
    )
    if account is None:
        raise UserNotFound()
    return account


def _roles(uow: UnitOfWork, names: Sequence[str], *, field: str = "roles") -> list[Role]:
    """The roles named, each once; raises UnknownRole naming ``field``."""
    wanted = sorted(set(names))
    found = list(uow.session.scalars(select(Role).where(Role.name.in_(wanted))))
    if len(found) != len(wanted):
        missing = sorted(set(wanted) - {role.name for role in found})
        raise UnknownRole(field, f"No role named {', '.join(missing)}.")
    return found


def _check_grantable(actor: Principal | None, permissions: Sequence[str] | frozenset[str]) -> None:
    if actor is not None and not set(permissions) <= actor.account.permissions:
        raise PermissionNotHeld()


def _check_target(actor: Principal | None, account: Account) -> None:
    """The actor may act on ``account``: not their own, none of its permissions beyond theirs."""
    if actor is None:
        return
    if account.id == actor.account_id:
        raise OwnAccount()
    _check_grantable(actor, account.permissions)


def _lock_admin_set(uow: UnitOfWork) -> None:
    """Serialise every change that can shrink the set of enabled administrators.

    The built-in ``admin`` role's row is the one lock they all take, first; the counts read
    after it see every such change committed before it (READ COMMITTED reads afresh per
    statement). Locking the admins' own rows would not do: a demotion deletes an
    ``account_roles`` row, which a waiting ``FOR UPDATE`` on ``accounts`` would not re-read.
    """
    uow.session.execute(select(Role.name).where(Role.name == ADMIN_ROLE).with_for_update())


def _is_enabled_admin(account: Account) -> bool:
    return account.disabled_at is None and ADMIN_ROLE in account.role_names


def _ensure_another_admin(uow: UnitOfWork, account: Account) -> None:
    """Raise LastAdmin if ``account`` is the only enabled administrator (after the lock)."""
    if not _is_enabled_admin(account):
        return
    others = uow.session.scalar(
        select(func.count())
        .select_from(Account)
        .join(account_roles, account_roles.c.account_id == Account.id)
        .where(
            account_roles.c.role_name == ADMIN_ROLE,
            Account.disabled_at.is_(None),
            Account.id != account.id,
        )
    )
    if not others:
        raise LastAdmin()


def _unusable_password_hash() -> str:
    """A real Argon2 hash of a secret nobody keeps: logins verify it like any other (LOG-02)."""
    return runtime().hasher.hash(secrets.token_urlsafe(32))


def create_user(
    actor: Principal | None,
    *,
    email: str,
    display_name: str | None = None,
    roles: Sequence[str] | None = None,
) -> UserView:
    """Create an account and mail it an invitation to choose its password.

    The account has an unusable password until the invitation's link (a password-reset token
    living ``INVITATION_TOKEN_LIFETIME_SECONDS``) is followed; following it also verifies the
    address. ``roles`` defaults to ``user``.
    Raises InvalidEmail, ValidationFailed (display name), UnknownRole, PermissionNotHeld,
    EmailTaken.
    """
    rt = runtime()
    now = rt.clock.now()
    email, key = normalise_email(email)
    display_name = clean_display_name(display_name)
    password_hash = _unusable_password_hash()
    with unit_of_work() as uow:
        granted = _roles(uow, [USER_ROLE] if roles is None else roles)
        _check_grantable(actor, {p for role in granted for p in role.permissions})
        account = Account(
            id=uuid.uuid4(),
            email=email,
            email_key=key,
            display_name=display_name,
            password_hash=password_hash,
            email_verified=False,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
            roles=granted,
        )
        uow.flush_unique(EmailTaken(), account)
        lifetime = timedelta(seconds=rt.settings.invitation_token_lifetime_seconds)
        token = account_tokens.issue(
            uow,
            account_id=account.id,
            purpose=Purpose.RESET_PASSWORD,
            email=email,
            email_key=key,
            lifetime=lifetime,
        )
        mail.enqueue(
            uow,
            to=email,
            template="invite",
            account_id=account.id,
            context={
                "display_name": display_name,
                "link": token.link,
                "expires_days": max(1, round(lifetime.total_seconds() / 86400)),
            },
        )
        audit.record(
            uow,
            "admin_user_create",
            actor_id=_actor_id(actor),
            subject_id=account.id,
            details={"roles": account.role_names},
        )
        view = _view(account, now)
    return view


def update_user(
    actor: Principal | None,
    *,
    user_id: uuid.UUID,
    display_name: str | None = UNSET,
    email: str = UNSET,
    email_verified: bool = UNSET,
    roles: Sequence[str] = UNSET,
) -> UserView:
    """Change the fields given. A new address is unverified unless ``email_verified`` is given
    as true with it (the administrator vouches for it); its pending links die.

    ``roles`` replaces the account's roles; removing ``admin`` from the last enabled
    administrator raises LastAdmin.
    Raises UserNotFound, OwnAccount, PermissionNotHeld, UnknownRole, InvalidEmail,
    ValidationFailed, EmailTaken, LastAdmin.
    """
    now = runtime().clock.now()
    with unit_of_work() as uow:
        if roles is not UNSET:
            _lock_admin_set(uow)
        account = _load(uow, user_id)
        _check_target(actor, account)
        changed: list[str] = []
        details: dict[str, Any] = {}
        if display_name is not UNSET:
            account.display_name = clean_display_name(display_name)
            changed.append("display_name")
        if email is not UNSET:
            address, key = normalise_email(email)
            if key != account.email_key or address != account.email:
                account.email, account.email_key = address, key
                account.email_verified = False
                for purpose in (Purpose.VERIFY_EMAIL, Purpose.CHANGE_EMAIL, Purpose.RESET_PASSWORD):
                    account_tokens.void(uow, account_id=account.id, purpose=purpose)
                changed.append("email")
        if email_verified is not UNSET:
            account.email_verified = email_verified
            changed.append("email_verified")
        if roles is not UNSET:
            granted = _roles(uow, roles)
            before, after = set(account.role_names), {role.name for role in granted}
            _check_grantable(actor, {p for role in granted for p in role.permissions})
            if ADMIN_ROLE in before - after:
                _ensure_another_admin(uow, account)
            account.roles = granted
            details["roles_added"] = sorted(after - before)
            details["roles_removed"] = sorted(before - after)
            for name in details["roles_added"]:
                audit.record(
                    uow, "role_assign", actor_id=_actor_id(actor), subject_id=account.id,
                    details={"role": name},
                )  # fmt: skip
            for name in details["roles_removed"]:
                audit.record(
                    uow, "role_revoke", actor_id=_actor_id(actor), subject_id=account.id,
                    details={"role": name},
                )  # fmt: skip
            changed.append("roles")
        account.updated_at = now
        uow.flush_unique(EmailTaken())
        audit.record(
            uow,
            "admin_user_update",
            actor_id=_actor_id(actor),
            subject_id=account.id,
            details={"fields": changed, **details},
        )
        view = _view(account, now)
    return view


def _end_everything(
    uow: UnitOfWork,
    account_id: uuid.UUID,
    *,
    reason: str,
    now: datetime,
    actor_id: uuid.UUID | None,
) -> int:
    """End every live session and revoke every personal access token of the account."""
    session_ids = uow.session.scalars(
        select(AuthSession.id).where(
            AuthSession.account_id == account_id, AuthSession.revoked_at.is_(None)
        )
    ).all()
    end_sessions(uow, session_ids, reason=reason, now=now, account_id=account_id, actor_id=actor_id)
    personal_tokens.revoke_all_for_account(uow, account_id, reason=reason)
    return len(session_ids)


def disable_user(actor: Principal | None, *, user_id: uuid.UUID) -> UserView:
    """Disable the account: every session ends and every personal access token is revoked in
    the same transaction; its logins answer the generic 401 until it is enabled again.

    Disabling a disabled account changes nothing. Raises UserNotFound, OwnAccount,
    PermissionNotHeld, LastAdmin.
    """
    now = runtime().clock.now()
    with unit_of_work() as uow:
        _lock_admin_set(uow)
        account = _load(uow, user_id)
        _check_target(actor, account)
        if account.disabled_at is None:
            _ensure_another_admin(uow, account)
            # The row update comes first: a login racing this one waits on the row, then
            # finds the account disabled (services/auth.login), or its session is ended here.
            account.disabled_at = account.updated_at = now
            uow.session.flush()
            ended = _end_everything(
                uow, account.id, reason="account_disabled", now=now, actor_id=_actor_id(actor)
            )
            audit.record(
                uow,
                "admin_user_disable",
                actor_id=_actor_id(actor),
                subject_id=account.id,
                details={"sessions_ended": ended},
            )
        view = _view(account, now)
    return view


def enable_user(actor: Principal | None, *, user_id: uuid.UUID) -> UserView:
    """Enable a disabled account (its old sessions stay ended). Raises UserNotFound,
    OwnAccount, PermissionNotHeld."""
    now = runtime().clock.now()
    with unit_of_work() as uow:
        account = _load(uow, user_id)
        _check_target(actor, account)
        if account.disabled_at is not None:
            account.disabled_at = None
            account.updated_at = now
            audit.record(uow, "admin_user_enable", actor_id=_actor_id(actor), subject_id=account.id)
        view = _view(account, now)
    return view


def unlock_user(actor: Principal | None, *, user_id: uuid.UUID) -> UserView:
    """Lift the account's lockout now (RL-03). Raises UserNotFound, OwnAccount,
    PermissionNotHeld."""
    now = runtime().clock.now()
    with unit_of_work() as uow:
        account = _load(uow, user_id)
        _check_target(actor, account)
        lockout.clear(uow, account.id)
        audit.record(uow, "admin_user_unlock", actor_id=_actor_id(actor), subject_id=account.id)
        view = _view(_load(uow, user_id), now)
    return view


def end_user_sessions(actor: Principal | None, *, user_id: uuid.UUID) -> int:
    """End every session of the account (its access and refresh tokens die at once); its
    personal access tokens are left alone. Returns how many ended. Raises UserNotFound,
    OwnAccount, PermissionNotHeld."""
    now = runtime().clock.now()
    with unit_of_work() as uow:
        account = _load(uow, user_id)
        _check_target(actor, account)
        session_ids = uow.session.scalars(
            select(AuthSession.id).where(
                AuthSession.account_id == account.id, AuthSession.revoked_at.is_(None)
            )
        ).all()
        end_sessions(
            uow,
            session_ids,
            reason="ended_by_admin",
            now=now,
            account_id=account.id,
            actor_id=_actor_id(actor),
        )
        audit.record(
            uow,
            "admin_sessions_end",
            actor_id=_actor_id(actor),
            subject_id=account.id,
            details={"sessions_ended": len(session_ids)},
        )
    return len(session_ids)


def start_password_reset(actor: Principal | None, *, user_id: uuid.UUID) -> None:
    """Mail the account a password-reset link (D-7: the person sets the password, nobody
    else). Earlier links die; nothing else changes until the link is followed.
    Raises UserNotFound, OwnAccount, PermissionNotHeld."""
    with unit_of_work() as uow:
        account = _load(uow, user_id)
        _check_target(actor, account)
        token = account_tokens.issue(
            uow,
            account_id=account.id,
            purpose=Purpose.RESET_PASSWORD,
            email=account.email,
            email_key=account.email_key,
        )
        mail.enqueue(
            uow,
            to=account.email,
            template="reset_password",
            account_id=account.id,
            context={
                "display_name": account.display_name,
                "link": token.link,
                "expires_minutes": expiry_minutes(Purpose.RESET_PASSWORD),
            },
        )
        audit.record(
            uow, "admin_password_reset_start", actor_id=_actor_id(actor), subject_id=account.id
        )


def delete_user(actor: Principal | None, *, user_id: uuid.UUID) -> None:
    """Delete the account with its sessions, tokens and mail (DATA-04). Raises UserNotFound,
    OwnAccount, PermissionNotHeld, LastAdmin."""
    with unit_of_work() as uow:
        _lock_admin_set(uow)
        account = _load(uow, user_id)
        _check_target(actor, account)
        _ensure_another_admin(uow, account)
        account_id = account.id
        session_ids = list(
            uow.session.scalars(select(AuthSession.id).where(AuthSession.account_id == account_id))
        )
        mail.forget(uow, to=account.email, account_id=account_id)
        personal_tokens.revoke_all_for_account(uow, account_id, reason="account_deleted")
        audit.record(uow, "admin_user_delete", actor_id=_actor_id(actor), subject_id=account_id)
        uow.session.delete(account)
        announce_ended_sessions(
            uow,
            session_ids,
            reason="account_deleted",
            account_id=account_id,
            actor_id=_actor_id(actor),
        )


def ensure_admin_remains(uow: UnitOfWork, account_id: uuid.UUID) -> None:
    """For an account's own deletion: refuse (LastAdmin) when it is the last administrator."""
    _lock_admin_set(uow)
    _ensure_another_admin(uow, _load(uow, account_id))


# --- The CLI's doors (an operator: no actor) -------------------------------------------------


def create_admin(*, email: str, password: str, display_name: str | None = None) -> UserView:
    """Create an administrator with a password the operator chose (ADM-05: the only way the
    first one comes to be). The address counts as verified: the operator vouches for it.
    Raises InvalidEmail, a password-policy error, EmailTaken, Busy."""
    rt = runtime()
    now = rt.clock.now()
    email, key = normalise_email(email)
    display_name = clean_display_name(display_name)
    normalised = rt.password_policy.check(password, email=email, display_name=display_name)
    password_hash = rt.hasher.hash(normalised)
    with unit_of_work() as uow:
        account = Account(
            id=uuid.uuid4(),
            email=email,
            email_key=key,
            display_name=display_name,
            password_hash=password_hash,
            email_verified=True,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
            roles=_roles(uow, [USER_ROLE, ADMIN_ROLE]),
        )
        uow.flush_unique(EmailTaken(), account)
        audit.record(
            uow,
            "admin_user_create",
            subject_id=account.id,
            details={"roles": account.role_names, "via": "cli"},
        )
        view = _view(account, now)
    return view


def user_id_by_email(email: str) -> uuid.UUID:
    """Raises InvalidEmail, UserNotFound."""
    with unit_of_work() as uow:
        return _find_by_email(uow, email).id


def assign_role(actor: Principal | None, *, user_id: uuid.UUID, role: str) -> UserView:
    """Add ``role`` to the account's roles (nothing if it holds it). Raises UnknownRole, and
    what :func:`update_user` raises."""
    current = get_user(user_id=user_id).roles
    return update_user(actor, user_id=user_id, roles=sorted({*current, role}))


def revoke_role(actor: Principal | None, *, user_id: uuid.UUID, role: str) -> UserView:
    """Remove ``role`` from the account's roles. Raises UnknownRole, LastAdmin, and what
    :func:`update_user` raises."""
    with unit_of_work() as uow:
        _roles(uow, [role], field="role")
    current = get_user(user_id=user_id).roles
    return update_user(actor, user_id=user_id, roles=[name for name in current if name != role])


# --- Roles ----------------------------------------------------------------------------------


def _role_view(role: Role, members: int) -> RoleView:
    return RoleView(
        name=role.name,
        description=role.description,
        permissions=role.permissions,
        built_in=role.name in BUILT_IN_ROLES,
        members=members,
    )


def _members(name: str) -> int:
    return db.session.scalar(
        select(func.count()).select_from(account_roles).where(account_roles.c.role_name == name)
    )


def list_roles() -> list[RoleView]:
    """Every role, by name, with its permissions and how many accounts hold it."""
    counts = dict(
        db.session.execute(
            select(account_roles.c.role_name, func.count()).group_by(account_roles.c.role_name)
        ).all()
    )
    roles = db.session.scalars(select(Role).order_by(Role.name))
    return [_role_view(role, counts.get(role.name, 0)) for role in roles]


def get_role(*, name: str) -> RoleView:
    """Raises RoleNotFound."""
    role = db.session.get(Role, name)
    if role is None:
        raise RoleNotFound()
    return _role_view(role, _members(name))


def _clean_permissions(permissions: Sequence[str]) -> list[str]:
    unknown = [permission for permission in permissions if permission not in PERMISSIONS]
    if unknown:
        raise UnknownPermission("permissions", f"Not a permission: {', '.join(unknown[:5])}.")
    return sorted(set(permissions))


def create_role(
    actor: Principal | None, *, name: str, description: str = "", permissions: Sequence[str] = ()
) -> RoleView:
    """Create a custom role. Raises UnknownPermission, PermissionNotHeld, RoleExists."""
    granted = _clean_permissions(permissions)
    _check_grantable(actor, granted)
    with unit_of_work() as uow:
        role = Role(
            name=name,
            description=description,
            permission_rows=[RolePermission(permission=p) for p in granted],
        )
        uow.flush_unique(RoleExists(), role)
        audit.record(
            uow,
            "admin_role_create",
            actor_id=_actor_id(actor),
            details={"role": name, "permissions": granted},
        )
        view = _role_view(role, 0)
    return view


def update_role(
    actor: Principal | None,
    *,
    name: str,
    description: str = UNSET,
    permissions: Sequence[str] = UNSET,
) -> RoleView:
    """Change a custom role's description or permissions (the whole list). The accounts that
    hold it gain or lose them on their next request (D-6).
    Raises RoleNotFound, BuiltInRole, UnknownPermission, PermissionNotHeld."""
    with unit_of_work() as uow:
        role = uow.session.get(Role, name)
        if role is None:
            raise RoleNotFound()
        if name in BUILT_IN_ROLES:
            raise BuiltInRole()
        details: dict[str, Any] = {"role": name}
        if description is not UNSET:
            role.description = description
            details["description_changed"] = True
        if permissions is not UNSET:
            granted = _clean_permissions(permissions)
            before = set(role.permissions)
            # Removing a permission one lacks is as much a grant decision as adding one.
            _check_grantable(actor, before ^ set(granted))
            role.permission_rows = [
                row for row in role.permission_rows if row.permission in granted
            ] + [RolePermission(permission=p) for p in granted if p not in before]
            details["permissions_added"] = sorted(set(granted) - before)
            details["permissions_removed"] = sorted(before - set(granted))
        uow.session.flush()
        audit.record(uow, "admin_role_update", actor_id=_actor_id(actor), details=details)
        view = _role_view(role, _members(name))
    return view


def delete_role(actor: Principal | None, *, name: str, reassign_to: str | None = None) -> None:
    """Delete a custom role. While accounts hold it, refused (RoleInUse) unless
    ``reassign_to`` names the role they are moved to (which the actor must be able to grant).
    Raises RoleNotFound, BuiltInRole, UnknownRole, PermissionNotHeld, RoleInUse."""
    with unit_of_work() as uow:
        role = uow.session.get(Role, name)
        if role is None:
            raise RoleNotFound()
        if name in BUILT_IN_ROLES:
            raise BuiltInRole()
        _check_grantable(actor, role.permissions)
        members = list(
            uow.session.scalars(
                select(account_roles.c.account_id).where(account_roles.c.role_name == name)
            )
        )
        details: dict[str, Any] = {"role": name, "members": len(members)}
        if members:
            if reassign_to is None:
                raise RoleInUse()
            if reassign_to == name:
                raise UnknownRole("reassign_to", "Reassign to another role than the one deleted.")
            (target,) = _roles(uow, [reassign_to], field="reassign_to")
            _check_grantable(actor, target.permissions)
            holders = set(
                uow.session.scalars(
                    select(account_roles.c.account_id).where(
                        account_roles.c.role_name == reassign_to,
                        account_roles.c.account_id.in_(members),
                    )
                )
            )
            missing = [account_id for account_id in members if account_id not in holders]
            if missing:
                uow.session.execute(
                    account_roles.insert(),
                    [{"account_id": a, "role_name": reassign_to} for a in missing],
                )
            details["reassigned_to"] = reassign_to
        uow.session.execute(account_roles.delete().where(account_roles.c.role_name == name))
        uow.session.delete(role)
        audit.record(uow, "admin_role_delete", actor_id=_actor_id(actor), details=details)
