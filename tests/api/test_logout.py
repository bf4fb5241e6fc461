"""POST /api/v1/auth/logout."""

from sqlalchemy import select

from app.extensions import db
from app.models import AuthSession
from app.services.tokens import generate_private_key, private_key_to_pem
from tests.helpers import ApiActions, assert_problem


def test_logout_returns_204_and_ends_the_session(client, app, api):
    """SES-06."""
    tokens = api.signup_and_login()

    response = client.post("/api/v1/auth/logout", headers=tokens.headers)

    assert response.status_code == 204
    assert response.get_data() == b""
    with app.app_context():
        session = db.session.scalar(select(AuthSession))
        assert session.revoked_at is not None
        assert session.revoked_reason == "logout"


def test_access_token_after_logout_returns_401_invalid_token(client, api):
    """JWT-06: refused at once, not only after it expires."""
    tokens = api.signup_and_login()
    client.post("/api/v1/auth/logout", headers=tokens.headers)

    response = api.me(tokens.access_token)

    assert_problem(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_refresh_token_after_logout_returns_401_session_revoked(client, api):
    tokens = api.signup_and_login()
    client.post("/api/v1/auth/logout", headers=tokens.headers)

    assert_problem(api.refresh(tokens.refresh_token), 401, "session_revoked")


def test_access_token_refreshed_before_logout_is_refused_after_it(client, api):
    """JWT-06: every access token of the session dies, not just the one presented."""
    tokens = api.signup_and_login()
    newer = api.refresh(tokens.refresh_token).get_json()
    client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {newer['access_token']}"})

    assert_problem(api.me(tokens.access_token), 401, "invalid_token")
    assert_problem(api.me(newer["access_token"]), 401, "invalid_token")


def test_logout_ends_only_the_current_session(client, api):
    """SES-06."""
    tokens = api.signup_and_login()
    other = api.login()

    client.post("/api/v1/auth/logout", headers=tokens.headers)

    assert api.me(other.access_token).status_code == 200
    assert api.refresh(other.refresh_token).status_code == 200


def test_altered_copies_of_a_logged_out_token_are_refused(client, api):
    """JWT-07: revocation is by session id, not by token bytes."""
    tokens = api.signup_and_login()
    client.post("/api/v1/auth/logout", headers=tokens.headers)

    for variant in (tokens.access_token + "==", tokens.access_token + "="):
        assert_problem(api.me(variant), 401, "invalid_token")


def test_logout_twice_returns_401_the_second_time(client, api):
    tokens = api.signup_and_login()
    client.post("/api/v1/auth/logout", headers=tokens.headers)

    response = client.post("/api/v1/auth/logout", headers=tokens.headers)

    assert_problem(response, 401, "invalid_token")


def test_logout_on_one_instance_is_refused_by_another(make_app):
    """JWT-06: instances share the database, so a logout holds on all of them at once."""
    key = private_key_to_pem(generate_private_key("EdDSA")).decode()
    first = ApiActions(make_app(JWT_PRIVATE_KEY=key).test_client())
    second = ApiActions(make_app(JWT_PRIVATE_KEY=key).test_client())
    tokens = first.signup_and_login()
    assert second.me(tokens.access_token).status_code == 200

    first.client.post("/api/v1/auth/logout", headers=tokens.headers)

    assert_problem(second.me(tokens.access_token), 401, "invalid_token")
