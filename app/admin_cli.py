"""``flask users …`` and ``flask roles …``: administration for operators (ADM-05).

The first administrator comes only from here (``flask users create-admin``): no account exists
by default. Each command calls the same service as the admin API (``services/admin.py``), so
the same rules hold (the last administrator stays, the password policy); an operator at the
command line is trusted with every permission, and is recorded in the audit log as no account.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
from flask.cli import AppGroup

from app.errors import DomainError, ValidationFailed
from app.services import admin

users = AppGroup("users", help="Accounts: the first administrator, disabling, roles.")
roles = AppGroup("roles", help="Roles and their permissions.")


def _run(action: Callable[[], Any]) -> Any:
    """Run a service call; a domain error becomes a one-line message and exit status 1."""
    try:
        return action()
    except ValidationFailed as error:
        reasons = "; ".join(f"{e.field}: {e.code} ({e.detail})" for e in error.errors)
        raise click.ClickException(f"{error.code}: {reasons}") from None
    except DomainError as error:
        raise click.ClickException(f"{error.code}: {error.detail}") from None


def _user_line(user: admin.UserView) -> str:
    return f"{user.id}  {user.email}  {user.status}  {','.join(user.roles)}"


@users.command("create-admin")
@click.option("--email", required=True, help="The administrator's address.")
@click.option("--display-name", default=None, help="Optional name shown to others.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (one line) instead of prompting twice.",
)
def create_admin(email: str, display_name: str | None, password_stdin: bool) -> None:
    """Create an administrator (roles user and admin, address verified).

    The password is prompted for twice (not echoed), or read from standard input; the same
    policy as at sign-up applies. Administrators then need two-factor authentication for the
    admin API (ADMIN_REQUIRES_MFA): log in, turn on TOTP, log in again.
    """
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = _run(
        lambda: admin.create_admin(email=email, password=password, display_name=display_name)
    )
    click.echo(f"created administrator {user.id} ({user.email})")


@users.command("list")
@click.option("--role", default=None, help="Only accounts holding this role.")
@click.option("--status", type=click.Choice(["active", "disabled", "locked"]), default=None)
@click.option("--email-contains", default=None, help="Part of the address.")
def list_users(role: str | None, status: str | None, email_contains: str | None) -> None:
    """List accounts, oldest first: id, address, status, roles."""
    cursor = None
    while True:
        page = _run(
            lambda cursor=cursor: admin.list_users(
                role=role,
                status=status,
                email_contains=email_contains,
                cursor=cursor,
                limit=admin.MAX_PAGE_SIZE,
            )
        )
        for user in page.items:
            click.echo(_user_line(user))
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


@users.command("disable")
@click.argument("email")
def disable_user(email: str) -> None:
    """Disable an account: its sessions end, its tokens are revoked, its logins fail."""
    user = _run(lambda: admin.disable_user(None, user_id=admin.user_id_by_email(email)))
    click.echo(f"disabled {_user_line(user)}")


@users.command("enable")
@click.argument("email")
def enable_user(email: str) -> None:
    """Enable a disabled account."""
    user = _run(lambda: admin.enable_user(None, user_id=admin.user_id_by_email(email)))
    click.echo(f"enabled {_user_line(user)}")


@users.command("grant")
@click.argument("email")
@click.argument("role")
def grant_role(email: str, role: str) -> None:
    """Give an account a role (e.g. admin)."""
    user = _run(lambda: admin.assign_role(None, user_id=admin.user_id_by_email(email), role=role))
    click.echo(f"granted {role}: {_user_line(user)}")


@users.command("revoke")
@click.argument("email")
@click.argument("role")
def revoke_role(email: str, role: str) -> None:
    """Take a role from an account (never the last administrator's admin)."""
    user = _run(lambda: admin.revoke_role(None, user_id=admin.user_id_by_email(email), role=role))
    click.echo(f"revoked {role}: {_user_line(user)}")


@roles.command("list")
def list_roles() -> None:
    """List roles: name, members, permissions."""
    for role in _run(admin.list_roles):
        permissions = " ".join(role.permissions) or "-"
        click.echo(f"{role.name}  members={role.members}  {permissions}")
