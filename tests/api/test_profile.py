"""GET and PATCH /api/v1/accounts/me."""

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Account
from tests.helpers import STRONG_PASSWORD, assert_problem


def _patch(client, tokens, body):
    return client.patch("/api/v1/accounts/me", json=body, headers=tokens.headers)


def test_get_me_returns_the_callers_account(client, api):
    account = api.signup(display_name="Ada")
    tokens = api.login()

    response = api.me(tokens.access_token)

    assert response.status_code == 200
    assert response.get_json() == account
    assert response.headers["Cache-Control"] == "no-store"
    assert STRONG_PASSWORD not in response.get_data(as_text=True)
    assert "argon2" not in response.get_data(as_text=True)


def test_patch_me_sets_the_display_name(client, app, api):
    tokens = api.signup_and_login()

    response = _patch(client, tokens, {"display_name": "  Ada Lovelace "})

    assert response.status_code == 200
    assert response.get_json()["display_name"] == "Ada Lovelace"
    with app.app_context():
        assert db.session.scalar(select(Account.display_name)) == "Ada Lovelace"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_patch_me_with_empty_display_name_clears_it(client, app, api, value):
    api.signup(display_name="Ada")
    tokens = api.login()

    response = _patch(client, tokens, {"display_name": value})

    assert response.status_code == 200
    assert response.get_json()["display_name"] is None
    with app.app_context():
        assert db.session.scalar(select(Account.display_name)) is None


def test_patch_me_with_empty_body_changes_nothing(client, app, api):
    api.signup(display_name="Ada")
    tokens = api.login()

    response = _patch(client, tokens, {})

    assert response.status_code == 200
    assert response.get_json()["display_name"] == "Ada"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"display_name": "x" * 101}, "display_name", "too_long"),
        ({"display_name": 42}, "display_name", "invalid_type"),
        ({"display_name": "tab\there"}, "display_name", "invalid_characters"),
        ({"display_name": "Ada\u202enimda"}, "display_name", "invalid_characters"),
        ({"email": "eve@example.com"}, "email", "unknown_field"),
        ({"email_verified": True}, "email_verified", "unknown_field"),
    ],
    ids=["too-long", "number", "control-char", "bidi-override", "email", "email_verified"],
)
def test_patch_me_with_invalid_body_returns_400_and_changes_nothing(
    client, app, api, body, field, code
):
    """HTTP-02, ADM-03."""
    api.signup(display_name="Ada")
    tokens = api.login()

    response = _patch(client, tokens, body)

    problem = assert_problem(response, 400, "validation_failed")
    assert [(e["field"], e["code"]) for e in problem["errors"]] == [(field, code)]
    with app.app_context():
        account = db.session.scalar(select(Account))
        assert (account.display_name, account.email, account.email_verified) == (
            "Ada",
            "ada@example.com",
            False,
        )
