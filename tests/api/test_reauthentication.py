"""Sensitive changes need a recent login or the password (SES-09).

Deleting the account and changing its address accept either the password in the body or a
login (the session's ``auth_time``) of the last ``REAUTHENTICATION_WINDOW_SECONDS``; without
both they answer 403 ``reauthentication_required`` and change nothing. Changing the password
always needs the current one: that is the proof it asks for.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Account
from tests.helpers import STRONG_PASSWORD, ApiActions, assert_problem, snapshot

ME = "/api/v1/accounts/me"
EMAIL = "/api/v1/accounts/me/email"


@pytest.fixture
def session(app, api: ApiActions, clock_factory):
    """Ada logged in; the app's clock frozen at the login."""
    clock = clock_factory(app)
    tokens = api.signup_and_login()
    return tokens, clock


def accounts(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(Account)).all())


def test_delete_without_password_right_after_login_answers_204(app, client, session):
    tokens, clock = session
    clock.advance(minutes=9)

    response = client.delete(ME, json={}, headers=tokens.headers)

    assert response.status_code == 204
    assert accounts(app) == 0


def test_delete_without_password_after_the_window_answers_403_and_keeps_the_account(
    app, client, session
):
    """SES-09: auth_time older than 10 minutes and no password → 403, nothing changes."""
    tokens, clock = session
    clock.advance(minutes=10, seconds=1)
    before = snapshot(app)

    response = client.delete(ME, json={}, headers=tokens.headers)

    assert_problem(response, 403, "reauthentication_required")
    assert snapshot(app) == before


def test_delete_with_the_password_after_the_window_answers_204(app, client, session):
    tokens, clock = session
    clock.advance(minutes=14)

    response = client.delete(ME, json={"password": STRONG_PASSWORD}, headers=tokens.headers)

    assert response.status_code == 204
    assert accounts(app) == 0


def test_refresh_does_not_make_a_login_recent_again(app, client, api, session):
    """auth_time is the login's: a refreshed token after the window is still too old."""
    tokens, clock = session
    clock.advance(minutes=11)
    refreshed = api.refresh(tokens.refresh_token).get_json()

    response = client.delete(
        ME, json={}, headers={"Authorization": f"Bearer {refreshed['access_token']}"}
    )

    assert_problem(response, 403, "reauthentication_required")
    assert accounts(app) == 1


def test_email_change_without_password_right_after_login_answers_202(client, session):
    tokens, clock = session
    clock.advance(minutes=5)

    response = client.post(EMAIL, json={"new_email": "ada@new.example"}, headers=tokens.headers)

    assert response.status_code == 202


def test_email_change_without_password_after_the_window_answers_403_and_mails_nothing(
    app, client, session
):
    """SES-09 for the address change: no token issued, no message queued."""
    tokens, clock = session
    clock.advance(minutes=11)
    before = snapshot(app)

    response = client.post(EMAIL, json={"new_email": "ada@new.example"}, headers=tokens.headers)

    assert_problem(response, 403, "reauthentication_required")
    assert snapshot(app) == before


def test_wrong_password_is_refused_even_right_after_login(app, client, session):
    """A password that is sent is checked, recent login or not."""
    tokens, _ = session

    response = client.delete(ME, json={"password": "not the password"}, headers=tokens.headers)

    assert_problem(response, 400, "current_password_incorrect")
    assert accounts(app) == 1


def test_password_change_always_needs_the_current_password(client, session):
    tokens, _ = session

    response = client.post(
        "/api/v1/accounts/me/password",
        json={"new_password": "a brand new passphrase"},
        headers=tokens.headers,
    )

    body = assert_problem(response, 400, "validation_failed")
    assert [error["field"] for error in body["errors"]] == ["current_password"]


def test_window_is_a_setting(make_app, clock_factory):
    app = make_app(REAUTHENTICATION_WINDOW_SECONDS=60)
    clock = clock_factory(app)
    tokens = ApiActions(app.test_client()).signup_and_login()
    clock.advance(seconds=61)

    response = app.test_client().delete(ME, json={}, headers=tokens.headers)

    assert_problem(response, 403, "reauthentication_required")


def test_production_answers_403_reauthentication_required_the_same(make_app, clock_factory):
    app = make_app("production")
    clock = clock_factory(app)
    tokens = ApiActions(app.test_client()).signup_and_login()
    clock.advance(minutes=11)

    response = app.test_client().delete(ME, json={}, headers=tokens.headers)

    assert_problem(response, 403, "reauthentication_required")
