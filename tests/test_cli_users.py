"""``flask users …`` and ``flask roles …``: the first administrator, disabling, roles, and the
same rules as the API (SECURITY.md ADM-04, ADM-05, PWD-01, PWD-05)."""

from __future__ import annotations

import pytest

from tests.admin_helpers import ADMIN, account, account_id, create_admin, roles_of, state
from tests.helpers import STRONG_PASSWORD, assert_problem, count_rows

EMAIL = "root@example.com"


@pytest.fixture
def app(make_app):
    return make_app(ADMIN_REQUIRES_MFA=False)


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(args=list(args), input=input)

    return invoke


def test_database_has_no_account_until_the_cli_creates_one(app):
    """ADM-05: no default accounts, administrators included."""
    assert count_rows(app, "accounts") == 0
    assert count_rows(app, "account_roles") == 0


def test_create_admin_from_stdin_makes_a_verified_administrator_who_can_log_in(app, cli, api):
    result = cli(
        "users", "create-admin", "--email", EMAIL, "--password-stdin", input=STRONG_PASSWORD + "\n"
    )

    assert result.exit_code == 0, result.output
    user_id = account_id(app, EMAIL)
    assert user_id in result.output
    assert roles_of(app, user_id) == ["admin", "user"]
    assert account(app, user_id).email_verified is True
    tokens = api.login(EMAIL)
    assert api.client.get(f"{ADMIN}/users", headers=tokens.headers).status_code == 200


def test_create_admin_prompts_for_the_password_twice(app, cli):
    result = cli(
        "users", "create-admin", "--email", EMAIL, input=f"{STRONG_PASSWORD}\n{STRONG_PASSWORD}\n"
    )

    assert result.exit_code == 0, result.output
    assert STRONG_PASSWORD not in result.output  # not echoed
    assert count_rows(app, "accounts") == 1


def test_create_admin_with_mismatched_confirmation_asks_again_and_creates_nothing(app, cli):
    result = cli("users", "create-admin", "--email", EMAIL, input=f"{STRONG_PASSWORD}\nother\n")

    assert result.exit_code != 0
    assert count_rows(app, "accounts") == 0


@pytest.mark.parametrize(
    ("password", "code"),
    [("short", "password_too_short"), ("password123", "password_too_common")],
)
def test_create_admin_with_weak_password_is_refused(app, cli, password, code):
    """PWD-01, PWD-05: the sign-up policy holds at the command line too."""
    result = cli(
        "users", "create-admin", "--email", EMAIL, "--password-stdin", input=password + "\n"
    )

    assert result.exit_code == 1
    assert code in result.output
    assert count_rows(app, "accounts") == 0


def test_create_admin_with_taken_email_is_refused(app, cli):
    create_admin(app, EMAIL)

    result = cli(
        "users",
        "create-admin",
        "--email",
        EMAIL.upper(),
        "--password-stdin",
        input=STRONG_PASSWORD + "\n",
    )

    assert result.exit_code == 1
    assert "email_taken" in result.output
    assert count_rows(app, "accounts") == 1


def test_users_list_prints_every_account(app, cli, api):
    create_admin(app, EMAIL)
    api.signup("ada@example.com")

    result = cli("users", "list")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[1] for line in lines] == [EMAIL, "ada@example.com"]
    assert lines[0].split()[2:] == ["active", "admin,user"]


def test_users_disable_ends_sessions_and_enable_restores_login(app, cli, api):
    create_admin(app, EMAIL)
    tokens = api.signup_and_login("ada@example.com")

    disabled = cli("users", "disable", "ada@example.com")
    me = api.me(tokens.access_token)
    refused = api.client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )
    enabled = cli("users", "enable", "ada@example.com")

    assert disabled.exit_code == 0, disabled.output
    assert_problem(me, 401, "invalid_token")
    assert_problem(refused, 401, "invalid_credentials")
    assert enabled.exit_code == 0, enabled.output
    assert api.login("ada@example.com").access_token


def test_users_grant_and_revoke_a_role(app, cli, api):
    create_admin(app, EMAIL)
    api.signup("ada@example.com")
    ada_id = account_id(app, "ada@example.com")

    granted = cli("users", "grant", "ada@example.com", "admin")
    after_grant = roles_of(app, ada_id)
    revoked = cli("users", "revoke", "ada@example.com", "admin")

    assert granted.exit_code == 0, granted.output
    assert after_grant == ["admin", "user"]
    assert revoked.exit_code == 0, revoked.output
    assert roles_of(app, ada_id) == ["user"]


def test_users_grant_unknown_role_is_refused(app, cli, api):
    api.signup("ada@example.com")

    result = cli("users", "grant", "ada@example.com", "wizard")

    assert result.exit_code == 1
    assert "unknown_role" in result.output


@pytest.mark.parametrize(
    "command", [("users", "revoke", EMAIL, "admin"), ("users", "disable", EMAIL)]
)
def test_last_administrator_cannot_be_revoked_or_disabled(app, cli, command):
    """ADM-04: the last enabled administrator stays, at the command line too."""
    create_admin(app, EMAIL)
    before = state(app)

    result = cli(*command)

    assert result.exit_code == 1
    assert "last_admin" in result.output
    assert state(app) == before


def test_administrator_can_be_revoked_when_another_remains(app, cli):
    create_admin(app, EMAIL)
    create_admin(app, "second@example.com")

    result = cli("users", "revoke", EMAIL, "admin")

    assert result.exit_code == 0, result.output
    assert roles_of(app, account_id(app, EMAIL)) == ["user"]


def test_disabled_administrator_no_longer_counts(app, cli):
    """Two administrators, one disabled: the enabled one is the last."""
    create_admin(app, EMAIL)
    create_admin(app, "second@example.com")
    assert cli("users", "disable", "second@example.com").exit_code == 0

    result = cli("users", "disable", EMAIL)

    assert result.exit_code == 1
    assert "last_admin" in result.output


def test_command_on_unknown_email_is_refused(app, cli):
    result = cli("users", "disable", "nobody@example.com")

    assert result.exit_code == 1
    assert "user_not_found" in result.output


def test_roles_list_prints_roles_with_members_and_permissions(app, cli):
    create_admin(app, EMAIL)

    result = cli("roles", "list")

    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "members=1" in lines["admin"] and "users:write" in lines["admin"]
    assert lines["user"].endswith("-")
