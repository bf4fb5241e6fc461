"""The admin API's accounts: permissions checked live, disable, unlock, invitations, the last
administrator (SECURITY.md ADM-01…ADM-05, MFA-06, D-6, D-7, LOG-01, JWT-06)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Account, AuditEvent
from app.services import admin, lockout
from app.services.tokens import generate_private_key, private_key_to_pem
from tests.admin_helpers import (
    ADMIN,
    ADMIN_EMAIL,
    account,
    account_id,
    admin_tokens,
    create_admin,
    grant,
    roles_of,
    state,
)
from tests.api.test_mfa import code_at, enrol
from tests.conftest import TEST_DATABASE_URL
from tests.helpers import STRONG_PASSWORD, ApiActions, assert_problem, mailed_messages, token_in
from tests.test_concurrency import REPEATS, race

# (method, path under /admin, body): every operation; {id} is another account's id.
OPERATIONS = [
    ("get", "/users", None),
    ("post", "/users", {"email": "new@example.com"}),
    ("get", "/users/{id}", None),
    ("patch", "/users/{id}", {"display_name": "Mallory"}),
    ("delete", "/users/{id}", None),
    ("post", "/users/{id}/disable", None),
    ("post", "/users/{id}/enable", None),
    ("post", "/users/{id}/unlock", None),
    ("delete", "/users/{id}/sessions", None),
    ("post", "/users/{id}/password-reset", None),
    ("get", "/permissions", None),
    ("get", "/roles", None),
    ("post", "/roles", {"name": "support"}),
    ("get", "/roles/user", None),
    ("patch", "/roles/user", {"description": "changed"}),
    ("delete", "/roles/user", None),
]
OPERATION_IDS = [f"{method.upper()} {path}" for method, path, _ in OPERATIONS]


@pytest.fixture
def app(make_app):
    """Administrators without TOTP, so most tests skip the enrolment; MFA-06 has its own."""
    return make_app(ADMIN_REQUIRES_MFA=False)


@pytest.fixture
def root(app, api):
    """An administrator's tokens (created as the CLI creates one)."""
    return admin_tokens(app, api)


@pytest.fixture
def ada(app, api):
    """An ordinary account: its id and tokens."""
    tokens = api.signup_and_login("ada@example.com")
    return account_id(app, "ada@example.com"), tokens


def call(client, method, path, body, headers, user_id):
    url = ADMIN + path.replace("{id}", user_id)
    return getattr(client, method)(url, json=body, headers=headers)


# --- Who may call -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=OPERATION_IDS)
def test_admin_operation_with_user_token_is_forbidden_and_changes_nothing(
    app, client, root, ada, method, path, body
):
    """ADM-02: an ordinary account's token → 403 `forbidden`; nothing changes."""
    _, tokens = ada
    target = account_id(app, ADMIN_EMAIL)
    before = state(app)

    response = call(client, method, path, body, tokens.headers, target)

    assert_problem(response, 403, "forbidden")
    assert state(app) == before


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=OPERATION_IDS)
def test_admin_operation_without_token_is_unauthenticated(app, client, method, path, body):
    """ADM-01: no credential → 401 with a bare Bearer challenge."""
    response = call(client, method, path, body, {}, "00000000-0000-0000-0000-000000000000")

    assert_problem(response, 401, "authentication_required")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_admin_operation_with_personal_access_token_is_interactive_only(app, client, root):
    """A personal access token never reaches an admin operation, even an administrator's."""
    created = client.post(
        "/api/v1/accounts/me/tokens",
        json={"name": "ci", "scopes": ["profile:read"]},
        headers=root.headers,
    )
    assert created.status_code == 201
    pat = {"Authorization": f"Bearer {created.get_json()['token']}"}

    response = client.get(f"{ADMIN}/users", headers=pat)

    assert_problem(response, 403, "interactive_login_required")


def test_admin_operation_without_second_factor_is_refused_by_default(make_app, clock_factory):
    """MFA-06: with ADMIN_REQUIRES_MFA (the default) an administrator who logged in with a
    password alone gets 403 `mfa_required`; after a login with TOTP, 200."""
    app = make_app()
    clock = clock_factory(app)
    client = app.test_client()
    api = ApiActions(client)
    tokens = admin_tokens(app, api)

    refused = client.get(f"{ADMIN}/users", headers=tokens.headers)
    enrolled = enrol(client, tokens, clock)
    clock.advance(seconds=30)
    step = client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": STRONG_PASSWORD}
    )
    second = client.post(
        "/api/v1/auth/mfa",
        json={"mfa_token": step.get_json()["mfa_token"], "code": code_at(enrolled.secret, clock)},
    )
    with_otp = {"Authorization": f"Bearer {second.get_json()['access_token']}"}
    allowed = client.get(f"{ADMIN}/users", headers=with_otp)

    assert_problem(refused, 403, "mfa_required")
    assert allowed.status_code == 200
    assert [user["email"] for user in allowed.get_json()["items"]] == [ADMIN_EMAIL]


def test_ordinary_account_without_second_factor_gets_forbidden_not_mfa_required(
    make_app,
):
    """The permission is checked before the factor: a user learns nothing about MFA rules."""
    app = make_app()
    api = ApiActions(app.test_client())
    tokens = api.signup_and_login()

    response = app.test_client().get(f"{ADMIN}/users", headers=tokens.headers)

    assert_problem(response, 403, "forbidden")


def test_demoted_administrator_is_refused_on_next_request_despite_token_claim(
    app, client, api, root
):
    """D-6, ADM-04: the demotion bites at once; the `roles` claim of the old token is stale."""
    api.signup("bob@example.com")
    bob_id = account_id(app, "bob@example.com")
    assert grant(client, root, bob_id, ["user", "admin"]).status_code == 200
    bob = api.login("bob@example.com")  # its token says roles: admin
    assert client.get(f"{ADMIN}/users", headers=bob.headers).status_code == 200

    demoted = grant(client, root, bob_id, ["user"])
    response = client.get(f"{ADMIN}/users", headers=bob.headers)

    assert demoted.status_code == 200
    assert_problem(response, 403, "forbidden")


def test_custom_role_with_users_read_can_list_but_not_disable(app, client, api, root, ada):
    """A role holding only `users:read` lists accounts; disabling one is 403, nothing changes."""
    ada_id, _ = ada
    created = client.post(
        f"{ADMIN}/roles",
        json={"name": "viewer", "permissions": ["users:read"]},
        headers=root.headers,
    )
    assert created.status_code == 201
    api.signup("vic@example.com")
    assert grant(client, root, account_id(app, "vic@example.com"), ["viewer"]).status_code == 200
    vic = api.login("vic@example.com")
    before = state(app)

    listed = client.get(f"{ADMIN}/users", headers=vic.headers)
    refused = client.post(f"{ADMIN}/users/{ada_id}/disable", headers=vic.headers)

    assert listed.status_code == 200
    assert_problem(refused, 403, "forbidden")
    assert state(app) == before


def test_user_writer_cannot_act_on_an_administrator(app, client, api, root):
    """No escalation: a `users:write` holder cannot disable an account holding more than it."""
    client.post(
        f"{ADMIN}/roles",
        json={"name": "helpdesk", "permissions": ["users:read", "users:write"]},
        headers=root.headers,
    )
    api.signup("hal@example.com")
    grant(client, root, account_id(app, "hal@example.com"), ["helpdesk"])
    hal = api.login("hal@example.com")
    before = state(app)

    response = client.post(
        f"{ADMIN}/users/{account_id(app, ADMIN_EMAIL)}/disable", headers=hal.headers
    )

    assert_problem(response, 403, "permission_not_held")
    assert state(app) == before


def test_user_writer_cannot_grant_the_admin_role(app, client, api, root):
    """No escalation: assigning a role whose permissions the caller lacks is 403."""
    client.post(
        f"{ADMIN}/roles",
        json={"name": "helpdesk", "permissions": ["users:read", "users:write"]},
        headers=root.headers,
    )
    api.signup("hal@example.com")
    hal_id = account_id(app, "hal@example.com")
    grant(client, root, hal_id, ["helpdesk"])
    hal = api.login("hal@example.com")
    api.signup("eve@example.com")
    before = state(app)

    response = grant(client, hal, account_id(app, "eve@example.com"), ["admin"])

    assert_problem(response, 403, "permission_not_held")
    assert state(app) == before


# --- Listing ------------------------------------------------------------------------------


def signups(api, count: int, clock) -> list[str]:
    emails = [f"user{index:02d}@example.com" for index in range(count)]
    for email in emails:
        clock.advance(seconds=1)
        api.signup(email)
    return emails


def test_list_users_walks_every_account_once_in_creation_order(client, api, root, clock):
    """Cursor pagination: pages of `limit`, stable order (created_at, id), no repeats."""
    emails = [ADMIN_EMAIL, *signups(api, 7, clock)]
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"{ADMIN}/users", query_string=query, headers=root.headers)
        assert response.status_code == 200
        body = response.get_json()
        seen += [user["email"] for user in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == emails
    assert pages == 3


def test_list_users_sorted_by_email_descending(client, api, root, clock):
    emails = signups(api, 3, clock)

    response = client.get(f"{ADMIN}/users", query_string={"sort": "-email"}, headers=root.headers)

    assert [u["email"] for u in response.get_json()["items"]] == sorted(
        [*emails, ADMIN_EMAIL], reverse=True
    )


def test_list_users_shows_no_hash_counter_or_secret(client, root):
    """DATA-04: an account as administrators see it has no hash, counter or lock time."""
    response = client.get(f"{ADMIN}/users", headers=root.headers)

    (user,) = response.get_json()["items"]
    assert set(user) == {
        "id",
        "email",
        "display_name",
        "email_verified",
        "roles",
        "permissions",
        "status",
        "created_at",
        "updated_at",
        "disabled_at",
    }
    assert user["roles"] == ["admin", "user"]
    assert "$argon2" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"email_contains": "ADA"}, ["ada@example.com"]),
        ({"role": "admin"}, [ADMIN_EMAIL]),
        ({"verified": "true"}, [ADMIN_EMAIL]),
        ({"verified": "false"}, ["ada@example.com", "bob@example.com"]),
        ({"status": "disabled"}, ["bob@example.com"]),
        ({"status": "active"}, [ADMIN_EMAIL, "ada@example.com"]),
    ],
    ids=["email", "role", "verified", "unverified", "disabled", "active"],
)
def test_list_users_filters(client, api, root, clock, app, query, expected):
    for email in ("ada@example.com", "bob@example.com"):
        clock.advance(seconds=1)
        api.signup(email)
    client.post(f"{ADMIN}/users/{account_id(app, 'bob@example.com')}/disable", headers=root.headers)

    response = client.get(f"{ADMIN}/users", query_string=query, headers=root.headers)

    assert response.status_code == 200
    assert [user["email"] for user in response.get_json()["items"]] == expected


def test_list_users_filters_locked_accounts(app, client, api, root):
    api.signup("ada@example.com")
    with app.app_context():
        lockout.lock(
            db.session.scalar(select(Account.id).where(Account.email_key == "ada@example.com")),
            seconds=60,
        )
        db.session.remove()

    response = client.get(f"{ADMIN}/users", query_string={"status": "locked"}, headers=root.headers)

    (user,) = response.get_json()["items"]
    assert (user["email"], user["status"]) == ("ada@example.com", "locked")


def test_list_users_filters_by_creation_time(client, api, root, clock):
    clock.advance(seconds=60)
    middle = clock.now()
    clock.advance(seconds=60)
    api.signup("late@example.com")

    after = client.get(
        f"{ADMIN}/users", query_string={"created_after": middle.isoformat()}, headers=root.headers
    )
    before = client.get(
        f"{ADMIN}/users", query_string={"created_before": middle.isoformat()}, headers=root.headers
    )

    assert [u["email"] for u in after.get_json()["items"]] == ["late@example.com"]
    assert [u["email"] for u in before.get_json()["items"]] == [ADMIN_EMAIL]


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({"limit": "101"}, "limit", "out_of_range"),
        ({"limit": "0"}, "limit", "out_of_range"),
        ({"sort": "password_hash"}, "sort", "invalid_value"),
        ({"status": "deleted"}, "status", "invalid_value"),
        ({"page": "2"}, "page", "unknown_field"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after", "invalid"),
    ],
    ids=["limit-too-big", "limit-zero", "sort", "status", "unknown", "naive-time"],
)
def test_list_users_with_invalid_query_is_refused(client, root, query, field, code):
    response = client.get(f"{ADMIN}/users", query_string=query, headers=root.headers)

    body = assert_problem(response, 400, "validation_failed")
    assert body["errors"][0]["field"] == field
    assert body["errors"][0]["code"] == code


@pytest.mark.parametrize(
    "cursor", ["not-a-cursor", "WyJlbWFpbCIsImEiLCJ4Il0", "eyJ4Ijox"], ids=["junk", "sort", "json"]
)
def test_list_users_with_forged_cursor_is_refused(client, root, cursor):
    """A cursor not given out by this listing (junk, another sort's, bad shape) → 400."""
    response = client.get(f"{ADMIN}/users", query_string={"cursor": cursor}, headers=root.headers)

    assert_problem(response, 400, "invalid_cursor")


def test_get_user_with_unknown_id_is_not_found(client, root):
    """ADM-02: an id that names no account → 404 `user_not_found`."""
    response = client.get(
        f"{ADMIN}/users/00000000-0000-0000-0000-000000000000", headers=root.headers
    )

    assert_problem(response, 404, "user_not_found")


def test_get_user_returns_the_account(client, root, ada):
    ada_id, _ = ada

    response = client.get(f"{ADMIN}/users/{ada_id}", headers=root.headers)

    assert response.status_code == 200
    assert response.get_json()["email"] == "ada@example.com"
    assert response.get_json()["status"] == "active"


# --- Creating, with an invitation -------------------------------------------------------------


def test_create_user_mails_an_invitation_that_sets_the_first_password(app, client, api, root):
    """D-7: the account starts with an unusable password; the invitation link sets one and
    verifies the address."""
    response = client.post(
        f"{ADMIN}/users",
        json={"email": "new@example.com", "display_name": "Newt"},
        headers=root.headers,
    )
    body = response.get_json()
    refused = client.post(
        "/api/v1/auth/login", json={"email": "new@example.com", "password": STRONG_PASSWORD}
    )
    (invitation,) = mailed_messages(app, "new@example.com", "invite")
    accepted = client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token_in(invitation), "new_password": STRONG_PASSWORD},
    )

    assert response.status_code == 201
    assert response.headers["Location"].endswith(f"/api/v1/admin/users/{body['id']}")
    assert (body["roles"], body["email_verified"], body["status"]) == (["user"], False, "active")
    assert_problem(refused, 401, "invalid_credentials")
    assert accepted.status_code == 204
    assert api.login("new@example.com").access_token
    assert account(app, body["id"]).email_verified is True


def test_invitation_link_lives_the_invitation_lifetime(app, client, root, clock):
    """An invitation outlives a reset link (30 min): it still works after a day."""
    client.post(f"{ADMIN}/users", json={"email": "new@example.com"}, headers=root.headers)
    (invitation,) = mailed_messages(app, "new@example.com", "invite")
    clock.advance(days=1)

    accepted = client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token_in(invitation), "new_password": STRONG_PASSWORD},
    )

    assert accepted.status_code == 204


def test_create_user_with_taken_email_is_a_conflict(app, client, root, ada):
    before = state(app)

    response = client.post(
        f"{ADMIN}/users", json={"email": "ADA@example.com"}, headers=root.headers
    )

    assert_problem(response, 409, "email_taken")
    assert state(app) == before


def test_create_user_with_unknown_role_is_refused(app, client, root):
    before = state(app)

    response = client.post(
        f"{ADMIN}/users",
        json={"email": "new@example.com", "roles": ["wizard"]},
        headers=root.headers,
    )

    body = assert_problem(response, 400, "unknown_role")
    assert body["errors"][0]["field"] == "roles"
    assert state(app) == before


@pytest.mark.parametrize("extra", [{"password": STRONG_PASSWORD}, {"email_verified": True}])
def test_create_user_with_extra_field_is_refused(app, client, root, extra):
    """ADM-03: fields the body does not declare → 400, nothing created."""
    before = state(app)

    response = client.post(
        f"{ADMIN}/users", json={"email": "new@example.com", **extra}, headers=root.headers
    )

    body = assert_problem(response, 400, "validation_failed")
    assert body["errors"][0]["code"] == "unknown_field"
    assert state(app) == before


# --- Changing -----------------------------------------------------------------------------------


def test_update_user_changes_only_the_fields_sent(app, client, root, ada):
    ada_id, _ = ada

    response = client.patch(
        f"{ADMIN}/users/{ada_id}", json={"display_name": "Ada L."}, headers=root.headers
    )

    assert response.status_code == 200
    assert response.get_json()["display_name"] == "Ada L."
    assert response.get_json()["email"] == "ada@example.com"
    assert roles_of(app, ada_id) == ["user"]


def test_update_user_email_makes_it_unverified_unless_vouched_for(app, client, root, ada):
    ada_id, _ = ada
    client.patch(f"{ADMIN}/users/{ada_id}", json={"email_verified": True}, headers=root.headers)

    changed = client.patch(
        f"{ADMIN}/users/{ada_id}", json={"email": "ada2@example.com"}, headers=root.headers
    )
    vouched = client.patch(
        f"{ADMIN}/users/{ada_id}",
        json={"email": "ada3@example.com", "email_verified": True},
        headers=root.headers,
    )

    assert changed.get_json()["email_verified"] is False
    assert vouched.get_json()["email_verified"] is True
    assert account(app, ada_id).email_key == "ada3@example.com"


def test_admin_cannot_change_their_own_account_through_the_admin_api(app, client, root):
    """No accidental self-lockout: an administrator's own account answers 409 `own_account`."""
    root_id = account_id(app, ADMIN_EMAIL)
    before = state(app)

    demoted = grant(client, root, root_id, ["user"])
    disabled = client.post(f"{ADMIN}/users/{root_id}/disable", headers=root.headers)
    deleted = client.delete(f"{ADMIN}/users/{root_id}", headers=root.headers)

    for response in (demoted, disabled, deleted):
        assert_problem(response, 409, "own_account")
    assert state(app) == before


def test_last_administrator_cannot_delete_their_own_account(app, client, root):
    """ADM-04: the last enabled administrator stays, whichever door is used."""
    before = state(app)

    response = client.delete("/api/v1/accounts/me", json={}, headers=root.headers)

    assert_problem(response, 409, "last_admin")
    assert state(app) == before


def test_administrator_may_delete_their_own_account_when_another_remains(app, client, api, root):
    create_admin(app, "second@example.com")

    response = client.delete("/api/v1/accounts/me", json={}, headers=root.headers)

    assert response.status_code == 204


# --- Disable, enable, unlock, sessions, reset, delete -------------------------------------------


def test_disable_user_kills_every_credential_and_login_answers_generic_401(
    app, client, api, root, ada
):
    """ADM-04, JWT-06, LOG-01: its access and refresh tokens and PATs fail at once; a login with
    the right password answers exactly like a wrong one."""
    ada_id, tokens = ada
    pat = client.post(
        "/api/v1/accounts/me/tokens",
        json={"name": "ci", "scopes": ["profile:read"]},
        headers=tokens.headers,
    ).get_json()["token"]

    response = client.post(f"{ADMIN}/users/{ada_id}/disable", headers=root.headers)
    me = api.me(tokens.access_token)
    refreshed = api.refresh(tokens.refresh_token)
    by_pat = client.get("/api/v1/accounts/me", headers={"Authorization": f"Bearer {pat}"})
    right = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )
    wrong = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": "wrong " * 3}
    )

    assert response.status_code == 200
    assert response.get_json()["status"] == "disabled"
    assert_problem(me, 401, "invalid_token")
    assert refreshed.status_code == 401
    assert_problem(by_pat, 401, "invalid_token")
    right_body, wrong_body = assert_problem(right, 401, "invalid_credentials"), wrong.get_json()
    for body in (right_body, wrong_body):
        body.pop("request_id", None)
    assert right_body == wrong_body
    assert right.headers.get("WWW-Authenticate") == wrong.headers.get("WWW-Authenticate")


def test_disable_user_is_audited_without_the_address(app, client, root, ada):
    """ADM-06, D-8: the admin action's record names the two accounts, never the address."""
    ada_id, _ = ada

    client.post(f"{ADMIN}/users/{ada_id}/disable", headers=root.headers)

    with app.app_context():
        (row,) = db.session.scalars(
            select(AuditEvent).where(AuditEvent.event == "admin_user_disable")
        ).all()
        actor, subject, details = str(row.actor_id), str(row.subject_id), row.details
        db.session.remove()
    assert (actor, subject) == (account_id(app, ADMIN_EMAIL), ada_id)
    assert "ada@example.com" not in str(details)


def test_enable_user_lets_the_account_log_in_again(app, client, api, root, ada):
    ada_id, _ = ada
    client.post(f"{ADMIN}/users/{ada_id}/disable", headers=root.headers)

    response = client.post(f"{ADMIN}/users/{ada_id}/enable", headers=root.headers)

    assert response.get_json()["status"] == "active"
    assert api.login("ada@example.com").access_token


def test_unlock_user_lifts_the_lockout(app, client, api, root, ada):
    """ADM-04, RL-03: a locked account logs in again once unlocked."""
    ada_id, _ = ada
    with app.app_context():
        lockout.lock(account(app, ada_id).id, seconds=3600)
        db.session.remove()
    locked = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )

    response = client.post(f"{ADMIN}/users/{ada_id}/unlock", headers=root.headers)

    assert_problem(locked, 401, "invalid_credentials")
    assert response.get_json()["status"] == "active"
    assert api.login("ada@example.com").access_token
    assert account(app, ada_id).locked_until is None


def test_end_user_sessions_ends_every_session(app, client, api, root, ada):
    ada_id, first = ada
    second = api.login("ada@example.com")

    response = client.delete(f"{ADMIN}/users/{ada_id}/sessions", headers=root.headers)

    assert response.get_json() == {"ended": 2}
    for tokens in (first, second):
        assert_problem(api.me(tokens.access_token), 401, "invalid_token")
    assert api.me(root.access_token).status_code == 200


def test_start_password_reset_mails_a_link_and_sets_no_password(app, client, api, root, ada):
    """D-7: the administrator starts the reset; the password is unchanged until the link."""
    ada_id, tokens = ada

    response = client.post(f"{ADMIN}/users/{ada_id}/password-reset", headers=root.headers)

    assert response.status_code == 202
    (message,) = mailed_messages(app, "ada@example.com", "reset_password")
    assert token_in(message)
    assert api.me(tokens.access_token).status_code == 200
    assert api.login("ada@example.com").access_token


def test_delete_user_removes_the_account_and_its_sessions(app, client, api, root, ada):
    ada_id, tokens = ada

    response = client.delete(f"{ADMIN}/users/{ada_id}", headers=root.headers)

    assert response.status_code == 204
    assert account(app, ada_id) is None
    assert_problem(api.me(tokens.access_token), 401, "invalid_token")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("patch", ""),
        ("delete", ""),
        ("post", "/disable"),
        ("post", "/enable"),
        ("post", "/unlock"),
        ("delete", "/sessions"),
        ("post", "/password-reset"),
    ],
)
def test_user_operation_with_unknown_id_is_not_found(app, client, root, method, path):
    """ADM-02: 404 `user_not_found`, nothing changed."""
    before = state(app)
    url = f"{ADMIN}/users/00000000-0000-0000-0000-000000000000{path}"

    response = getattr(client, method)(
        url, json={} if method == "patch" else None, headers=root.headers
    )

    assert_problem(response, 404, "user_not_found")
    assert state(app) == before


# --- The last administrator, under a race -------------------------------------------------------


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="races need PostgreSQL (TEST_DATABASE_URL)")
def test_two_administrators_demoting_each_other_at_once_leave_one(make_app):
    """ADM-04: the admin set is locked; of two simultaneous demotions one wins; the other
    answers 409 `last_admin` (it passed the permission check before the winner committed, then
    waited on the lock) or 403 `forbidden` (its permission was read after the winner's commit:
    it is no longer an administrator); never zero administrators. Two instances, 50 repeats."""
    key = private_key_to_pem(generate_private_key("EdDSA")).decode()
    apps = [make_app(JWT_PRIVATE_KEY=key, ADMIN_REQUIRES_MFA=False) for _ in range(2)]
    api = ApiActions(apps[0].test_client())
    survivors: list[str] = []
    for attempt in range(REPEATS):
        emails = [f"a{attempt}@example.com", f"b{attempt}@example.com"]
        ids = [create_admin(apps[0], email) for email in emails]
        with apps[0].app_context():  # the last round's survivor steps aside, as the CLI would
            for survivor in survivors:
                admin.disable_user(None, user_id=uuid.UUID(survivor))
            db.session.remove()
        tokens = [api.login(email) for email in emails]

        responses = race(
            apps,
            2,
            lambda client, index, ids=ids, tokens=tokens: grant(
                client, tokens[index], ids[1 - index], ["user"]
            ),
        )

        outcomes = sorted(
            (r.status_code, None if r.status_code == 200 else r.get_json()["code"])
            for r in responses
        )
        assert outcomes in ([(200, None), (403, "forbidden")], [(200, None), (409, "last_admin")])
        survivors = [user_id for user_id in ids if "admin" in roles_of(apps[0], user_id)]
        assert len(survivors) == 1
