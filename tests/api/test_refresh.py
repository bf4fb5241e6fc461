"""POST /api/v1/auth/refresh: rotation, reuse detection, expiry."""

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuthSession, RefreshToken
from tests.helpers import ApiActions, assert_problem


def test_refresh_returns_a_new_pair_that_works(client, api):
    tokens = api.signup_and_login()

    response = api.refresh(tokens.refresh_token)

    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["refresh_token"] != tokens.refresh_token
    assert body["access_token"] != tokens.access_token
    assert response.headers["Cache-Control"] == "no-store"
    assert api.me(body["access_token"]).status_code == 200
    assert api.refresh(body["refresh_token"]).status_code == 200


def test_refresh_tokens_are_random_and_stored_only_as_digests(app, api):
    """SES-01, DATA-03: >= 256 bits, only a SHA-256 digest in the database."""
    tokens = api.signup_and_login()
    rotated = api.refresh(tokens.refresh_token).get_json()["refresh_token"]

    with app.app_context():
        stored = list(db.session.scalars(select(RefreshToken.token_hash)))
    for raw in (tokens.refresh_token, rotated):
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", raw)
        assert raw not in stored
    assert len(stored) == 2
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in stored)


def test_refresh_with_spent_token_returns_401_refresh_token_reused(api):
    """SES-02."""
    tokens = api.signup_and_login()
    assert api.refresh(tokens.refresh_token).status_code == 200

    response = api.refresh(tokens.refresh_token)

    assert_problem(response, 401, "refresh_token_reused")


def test_refresh_with_spent_token_revokes_every_token_of_the_session(app, api):
    """SES-03, JWT-06: replaying RT1 after RT1..RT4 kills RT4 and AT4 too."""
    tokens = api.signup_and_login()
    refresh_tokens = [tokens.refresh_token]
    access_token = tokens.access_token
    for _ in range(3):
        body = api.refresh(refresh_tokens[-1]).get_json()
        refresh_tokens.append(body["refresh_token"])
        access_token = body["access_token"]

    assert_problem(api.refresh(refresh_tokens[0]), 401, "refresh_token_reused")

    assert_problem(api.refresh(refresh_tokens[-1]), 401, "session_revoked")
    assert_problem(api.me(access_token), 401, "invalid_token")
    with app.app_context():
        session = db.session.scalar(select(AuthSession))
        assert session.revoked_at is not None
        assert session.revoked_reason == "refresh_token_reused"


def test_refresh_reuse_leaves_other_sessions_alive(api):
    tokens = api.signup_and_login()
    other = api.login()
    api.refresh(tokens.refresh_token)

    api.refresh(tokens.refresh_token)

    assert api.me(other.access_token).status_code == 200
    assert api.refresh(other.refresh_token).status_code == 200


def test_refresh_three_times_in_one_second_then_old_token_is_refused(api, clock):
    """SES-05: no reliance on timestamp order."""
    tokens = api.signup_and_login()
    first = tokens.refresh_token
    current = first
    for _ in range(3):
        current = api.refresh(current).get_json()["refresh_token"]

    assert_problem(api.refresh(first), 401, "refresh_token_reused")


@pytest.mark.parametrize(
    "token",
    ["", "x", "a" * 10_000, "not-a-token-we-issued-ever-at-all-0000000000"],
    ids=["empty", "one-char", "10KB", "unknown"],
)
def test_refresh_with_junk_token_returns_401_invalid_refresh_token(api, token):
    """SES-02: junk is refused."""
    api.signup_and_login()

    assert_problem(api.refresh(token), 401, "invalid_refresh_token")


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"refresh_token": None}, "refresh_token", "invalid_type"),
        ({"refresh_token": 12}, "refresh_token", "invalid_type"),
        ({}, "refresh_token", "missing"),
        ({"refresh_token": "x" * 43, "grant_type": "refresh_token"}, "grant_type", "unknown_field"),
    ],
    ids=["null", "number", "missing", "extra-field"],
)
def test_refresh_with_invalid_body_returns_400(client, body, field, code):
    response = client.post("/api/v1/auth/refresh", json=body)

    problem = assert_problem(response, 400, "validation_failed")
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in problem["errors"]
    ]


def test_refresh_after_idle_lifetime_returns_401_session_expired(make_app, clock_factory):
    """SES-06: idle lifetime (the refresh-token life) is enforced."""
    app = make_app(REFRESH_TOKEN_LIFETIME_SECONDS=3600)
    clock = clock_factory(app)
    api = ApiActions(app.test_client())
    tokens = api.signup_and_login()
    clock.advance(seconds=3600)

    assert_problem(api.refresh(tokens.refresh_token), 401, "session_expired")


def test_refresh_before_idle_lifetime_succeeds(make_app, clock_factory):
    app = make_app(REFRESH_TOKEN_LIFETIME_SECONDS=3600)
    clock = clock_factory(app)
    api = ApiActions(app.test_client())
    tokens = api.signup_and_login()
    clock.advance(seconds=3599)

    assert api.refresh(tokens.refresh_token).status_code == 200


def test_refresh_after_absolute_lifetime_returns_401_even_when_refreshed_regularly(
    make_app, clock_factory
):
    """SES-06: the absolute session lifetime holds whatever the refreshes."""
    app = make_app(REFRESH_TOKEN_LIFETIME_SECONDS=3600, SESSION_LIFETIME_SECONDS=3 * 3600)
    clock = clock_factory(app)
    api = ApiActions(app.test_client())
    refresh_token = api.signup_and_login().refresh_token
    lifetimes = []
    for _ in range(3):
        clock.advance(seconds=3000)
        body = api.refresh(refresh_token).get_json()
        refresh_token = body["refresh_token"]
        lifetimes.append(body["refresh_expires_in"])
    # The last refresh token lives only as long as what is left of the session.
    assert lifetimes == [3600, 3600, 3 * 3600 - 9000]
    clock.advance(seconds=3 * 3600 - 9000)

    assert_problem(api.refresh(refresh_token), 401, "session_expired")


def test_access_token_of_an_expired_session_is_refused(make_app, clock_factory):
    app = make_app(SESSION_LIFETIME_SECONDS=600)
    clock = clock_factory(app)
    api = ApiActions(app.test_client())
    tokens = api.signup_and_login()
    clock.advance(seconds=600)

    assert_problem(api.me(tokens.access_token), 401, "invalid_token")
