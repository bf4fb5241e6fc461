"""POST /api/v1/accounts: sign-up."""

from sqlalchemy import select

from app.extensions import db
from app.models import Account
from tests.helpers import STRONG_PASSWORD, assert_problem, count_rows


def test_signup_with_valid_body_creates_account(client, app):
    response = client.post(
        "/api/v1/accounts",
        json={"email": "Ada@Example.COM", "password": STRONG_PASSWORD, "display_name": "Ada"},
    )

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "email", "display_name", "email_verified", "roles", "created_at"}
    assert body["email"] == "Ada@example.com"
    assert body["display_name"] == "Ada"
    assert body["email_verified"] is False
    with app.app_context():
        account = db.session.scalar(select(Account))
        assert str(account.id) == body["id"]
        assert account.email_key == "ada@example.com"
        assert account.password_hash.startswith("$argon2id$")


def test_signup_with_taken_email_in_other_case_returns_409(client, app, api):
    """LOG-03, DATA-02: case variants are one account."""
    api.signup("ada@example.com")

    response = client.post(
        "/api/v1/accounts", json={"email": "ADA@example.com", "password": STRONG_PASSWORD}
    )

    assert_problem(response, 409, "email_taken")
    assert count_rows(app, "accounts") == 1
