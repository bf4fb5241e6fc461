"""POST /api/v1/accounts/me/password."""

from sqlalchemy import select

from app.extensions import db
from app.models import Account, AuthSession
from tests.helpers import STRONG_PASSWORD, assert_problem

NEW_PASSWORD = "a brand new passphrase"


def _change(client, tokens, current=STRONG_PASSWORD, new=NEW_PASSWORD):
    return client.post(
        "/api/v1/accounts/me/password",
        json={"current_password": current, "new_password": new},
        headers=tokens.headers,
    )


def _password_hash(app) -> str:
    with app.app_context():
        return db.session.scalar(select(Account.password_hash))


def test_password_change_returns_204_and_swaps_the_password(client, api):
    tokens = api.signup_and_login()

    response = _change(client, tokens)

    assert response.status_code == 204
    assert (
        client.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
        ).status_code
        == 401
    )
    assert api.login(password=NEW_PASSWORD).access_token


def test_password_change_ends_other_sessions_and_keeps_the_callers(client, app, api):
    """SES-07, JWT-06."""
    caller = api.signup_and_login()
    other = api.login()

    _change(client, caller)

    assert_problem(api.me(other.access_token), 401, "invalid_token")
    assert_problem(api.refresh(other.refresh_token), 401, "session_revoked")
    assert api.me(caller.access_token).status_code == 200
    assert api.refresh(caller.refresh_token).status_code == 200
    with app.app_context():
        reasons = sorted((s.revoked_reason or "") for s in db.session.scalars(select(AuthSession)))
    assert reasons == ["", "password_changed"]


def test_password_change_with_wrong_current_password_returns_400_and_changes_nothing(
    client, app, api
):
    """PWD-08: 400 current_password_incorrect, never 401; nothing changed."""
    caller = api.signup_and_login()
    other = api.login()
    before = _password_hash(app)

    response = _change(client, caller, current="not my password")

    body = assert_problem(response, 400, "current_password_incorrect")
    assert body["errors"][0]["field"] == "current_password"
    assert _password_hash(app) == before
    assert api.me(other.access_token).status_code == 200


def test_password_change_to_a_weak_password_returns_400_naming_new_password(client, app, api):
    tokens = api.signup_and_login()
    other = api.login()
    before = _password_hash(app)

    response = _change(client, tokens, new="short")

    body = assert_problem(response, 400, "password_too_short")
    assert body["errors"][0]["field"] == "new_password"
    assert _password_hash(app) == before
    assert api.me(other.access_token).status_code == 200


def test_password_change_to_the_email_returns_400(client, api):
    tokens = api.signup_and_login()

    response = _change(client, tokens, new="ada@example.com")

    assert_problem(response, 400, "password_matches_email")


def test_password_change_with_missing_field_returns_400(client, api):
    tokens = api.signup_and_login()

    response = client.post(
        "/api/v1/accounts/me/password",
        json={"new_password": NEW_PASSWORD},
        headers=tokens.headers,
    )

    body = assert_problem(response, 400, "validation_failed")
    assert body["errors"] == [
        {"field": "current_password", "code": "missing", "detail": "is required"}
    ]
