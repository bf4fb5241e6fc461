"""Cookie-session mode: /api/v1/auth/session sets an HttpOnly cookie instead of answering tokens
(SECURITY.md HTTP-09, SES-08), and writes made with the cookie need the CSRF header."""

from __future__ import annotations

import os

import pytest
import redis
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import Account, AuthSession, RefreshToken
from app.services import cookie_sessions
from tests.helpers import STRONG_PASSWORD, ApiActions, assert_problem, snapshot

SESSION = "/api/v1/auth/session"
ME = "/api/v1/accounts/me"
COOKIE = "__Host-gatehouse_session"
ADA = "ada@example.com"


def cookie_login(client, email: str = ADA, password: str = STRONG_PASSWORD):
    return client.post(SESSION, json={"email": email, "password": password})


@pytest.fixture
def browser(app: Flask, api: ApiActions):
    """Ada signed up; a test client that logged in with a cookie, and its CSRF token."""
    api.signup()
    client = app.test_client()
    response = cookie_login(client)
    assert response.status_code == 200, response.get_json()
    return client, response.get_json()["csrf_token"]


def test_login_sets_a_host_prefixed_httponly_secure_lax_cookie_and_answers_no_token(app, api):
    """HTTP-09: `__Host-`, Secure, HttpOnly, SameSite=Lax; the body has the CSRF token only."""
    api.signup()

    response = cookie_login(app.test_client())

    assert response.status_code == 200
    [set_cookie] = response.headers.getlist("Set-Cookie")
    name, _, attributes = set_cookie.partition(";")
    assert name.split("=", 1)[0] == COOKIE
    lowered = [part.strip().lower() for part in attributes.split(";")]
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= set(lowered)
    assert not any(part.startswith("domain=") for part in lowered)
    body = response.get_json()
    assert set(body) == {"csrf_token", "expires_at"}
    with app.app_context():
        session = db.session.scalar(select(AuthSession))
        assert session.cookie_hash == cookie_sessions.digest(name.split("=", 1)[1])
        assert db.session.scalars(select(RefreshToken)).all() == []


def test_the_cookie_stores_only_its_digest(app, api):
    """DATA-03: the cookie value is in no table."""
    api.signup()

    response = cookie_login(app.test_client())

    value = response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert value not in repr(snapshot(app))


def test_the_cookie_authenticates_reads_without_the_csrf_header(browser):
    client, _ = browser

    response = client.get(ME)

    assert response.status_code == 200
    assert response.get_json()["email"] == ADA


def test_a_write_with_the_cookie_and_no_csrf_header_answers_403_and_changes_nothing(app, browser):
    """HTTP-09: cookie writes without the CSRF header → 403."""
    client, _ = browser
    before = snapshot(app, ignore=("sessions.last_used_at",))

    response = client.patch(ME, json={"display_name": "Mallory"})

    assert_problem(response, 403, "csrf_token_missing")
    assert snapshot(app, ignore=("sessions.last_used_at",)) == before


def test_a_write_with_a_wrong_csrf_header_answers_403_csrf_token_invalid(app, browser):
    client, csrf = browser

    response = client.patch(
        ME, json={"display_name": "Mallory"}, headers={"X-CSRF-Token": csrf[:-2] + "xx"}
    )

    assert_problem(response, 403, "csrf_token_invalid")
    with app.app_context():
        assert db.session.scalar(select(Account)).display_name is None


def test_another_sessions_csrf_token_is_refused(app, browser):
    client, _ = browser
    other = cookie_login(app.test_client()).get_json()["csrf_token"]

    response = client.patch(ME, json={"display_name": "Ada"}, headers={"X-CSRF-Token": other})

    assert_problem(response, 403, "csrf_token_invalid")


def test_a_write_with_the_cookie_and_its_csrf_header_succeeds(browser):
    client, csrf = browser

    response = client.patch(ME, json={"display_name": "Ada"}, headers={"X-CSRF-Token": csrf})

    assert response.status_code == 200
    assert response.get_json()["display_name"] == "Ada"


def test_the_csrf_token_can_be_read_again_with_the_cookie(browser):
    client, csrf = browser

    response = client.get(SESSION)

    assert response.status_code == 200
    assert response.get_json()["csrf_token"] == csrf


def test_a_bearer_token_needs_no_csrf_header(client, api):
    tokens = api.signup_and_login()

    response = client.patch(ME, json={"display_name": "Ada"}, headers=tokens.headers)

    assert response.status_code == 200


def test_logout_ends_the_session_and_clears_the_cookie(app, browser):
    client, csrf = browser

    response = client.delete(SESSION, headers={"X-CSRF-Token": csrf})

    assert response.status_code == 204
    cleared = response.headers["Set-Cookie"].lower()
    assert cleared.startswith(COOKIE.lower() + "=;") and "max-age=0" in cleared
    with app.app_context():
        assert db.session.scalar(select(AuthSession)).revoked_reason == "logout"


def test_the_cookie_after_logout_answers_401(app, browser):
    client, csrf = browser
    cookie = client.get_cookie(COOKIE).value
    client.delete(SESSION, headers={"X-CSRF-Token": csrf})

    replayed = app.test_client()
    replayed.set_cookie(COOKIE, cookie)
    response = replayed.get(ME)

    assert_problem(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_logout_without_the_csrf_header_is_refused_and_the_session_lives(browser):
    client, _ = browser

    assert_problem(client.delete(SESSION), 403, "csrf_token_missing")

    assert client.get(ME).status_code == 200


def test_the_cookie_session_is_listed_and_ending_it_elsewhere_stops_it_at_once(app, browser, api):
    """SES-08: the cookie's session is a session like any other."""
    client, _ = browser
    tokens = api.login()
    listed = app.test_client().get("/api/v1/accounts/me/sessions", headers=tokens.headers)
    cookie_session = next(s for s in listed.get_json()["sessions"] if not s["current"])

    ended = app.test_client().delete(
        f"/api/v1/accounts/me/sessions/{cookie_session['id']}", headers=tokens.headers
    )

    assert ended.status_code == 204
    assert_problem(client.get(ME), 401, "invalid_token")


def test_a_tampered_cookie_answers_401_invalid_token(app, browser):
    client, _ = browser
    value = client.get_cookie(COOKIE).value
    forged = app.test_client()
    forged.set_cookie(COOKIE, value[:-1] + ("A" if value[-1] != "A" else "B"))

    assert_problem(forged.get(ME), 401, "invalid_token")


def test_a_cookie_and_a_bearer_token_together_are_refused(browser, api):
    client, _ = browser
    tokens = api.login()

    response = client.get(ME, headers=tokens.headers)

    assert_problem(response, 400, "multiple_credentials")


def test_a_wrong_password_sets_no_cookie(app, api):
    api.signup()

    response = cookie_login(app.test_client(), password="not the password at all")

    assert_problem(response, 401, "invalid_credentials")
    assert "Set-Cookie" not in response.headers


def test_the_cookie_session_is_interactive_and_may_change_the_password(browser):
    client, csrf = browser

    response = client.post(
        "/api/v1/accounts/me/password",
        json={"current_password": STRONG_PASSWORD, "new_password": "a brand new passphrase"},
        headers={"X-CSRF-Token": csrf},
    )

    assert response.status_code == 204


def test_development_uses_a_cookie_without_secure_and_without_the_host_prefix(make_app):
    """Plain-HTTP `make run` needs a cookie a browser keeps without TLS."""
    app = make_app("development")
    ApiActions(app.test_client()).signup()
    client = app.test_client()

    response = cookie_login(client)

    set_cookie = response.headers["Set-Cookie"]
    assert set_cookie.startswith("gatehouse_session=")
    assert "secure" not in set_cookie.lower()
    assert client.get(ME).status_code == 200


def test_production_answers_the_same(make_app):
    app = make_app("production")
    ApiActions(app.test_client()).signup()
    client = app.test_client()

    response = cookie_login(client)

    assert response.status_code == 200
    assert response.headers["Set-Cookie"].startswith(COOKIE + "=")
    assert client.get(ME).status_code == 200
    assert_problem(client.patch(ME, json={"display_name": "X"}), 403, "csrf_token_missing")


# --- With Redis --------------------------------------------------------------------------------

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (runs in the PostgreSQL + Redis pass)"
)


@needs_redis
def test_with_redis_the_cookie_maps_to_its_session_until_the_session_ends(app, browser):
    client, _ = browser
    value = client.get_cookie(COOKIE).value
    store = redis.Redis.from_url(os.environ["REDIS_URL"])
    key = app.config["REDIS_KEY_PREFIX"] + "cookie:" + cookie_sessions.digest(value)
    with app.app_context():
        session = db.session.scalar(select(AuthSession))

    assert store.get(key).decode() == str(session.id)
    assert 0 < store.ttl(key) <= 90 * 24 * 3600


@needs_redis
def test_with_redis_a_session_ended_behind_its_back_is_still_refused(app, browser):
    """Validity is read from the database: a mapping left in Redis revives nothing."""
    client, _ = browser
    with app.app_context():
        session = db.session.scalar(select(AuthSession))
        session.revoked_at = session.created_at
        db.session.commit()

    assert_problem(client.get(ME), 401, "invalid_token")


@needs_redis
def test_with_redis_flushed_the_cookie_still_works_from_the_database(app, browser):
    client, _ = browser
    store = redis.Redis.from_url(os.environ["REDIS_URL"])
    for key in store.scan_iter(match=app.config["REDIS_KEY_PREFIX"] + "cookie:*"):
        store.delete(key)

    assert client.get(ME).status_code == 200
