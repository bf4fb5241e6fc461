"""POST /api/v1/accounts: sign-up."""

import pytest
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


def test_signup_response_and_row_never_carry_the_password(client, app):
    response = client.post(
        "/api/v1/accounts", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )

    assert response.status_code == 201
    text = response.get_data(as_text=True)
    assert STRONG_PASSWORD not in text
    assert "argon2" not in text
    with app.app_context():
        account = db.session.scalar(select(Account))
        assert STRONG_PASSWORD not in account.password_hash
        assert account.role_names == ["user"]


@pytest.mark.parametrize("display_name", [None, "", "   "])
def test_signup_with_empty_display_name_stores_none(client, display_name):
    response = client.post(
        "/api/v1/accounts",
        json={
            "email": "ada@example.com",
            "password": STRONG_PASSWORD,
            "display_name": display_name,
        },
    )

    assert response.status_code == 201
    assert response.get_json()["display_name"] is None


@pytest.mark.parametrize(
    "email",
    ["not-an-email", "ada@", "@example.com", "ada@example..com", "ada lovelace@example.com"],
)
def test_signup_with_invalid_email_returns_400_invalid_email(client, app, email):
    response = client.post("/api/v1/accounts", json={"email": email, "password": STRONG_PASSWORD})

    body = assert_problem(response, 400, "invalid_email")
    assert body["errors"][0]["field"] == "email"
    assert count_rows(app, "accounts") == 0


@pytest.mark.parametrize("email", ["ada\r\n@example.com", "ada@example.com\r\nBcc: x@example.com"])
def test_signup_with_cr_lf_in_email_returns_400_invalid_characters(client, app, email):
    """EM-08: CR/LF in an address is refused before anything is stored."""
    response = client.post("/api/v1/accounts", json={"email": email, "password": STRONG_PASSWORD})

    body = assert_problem(response, 400, "validation_failed")
    assert body["errors"] == [
        {"field": "email", "code": "invalid_characters", "detail": "contains control characters"}
    ]
    assert count_rows(app, "accounts") == 0


def test_signup_with_email_over_254_characters_returns_400(client, app):
    """HTTP-03."""
    email = "a" * 64 + "@" + ("b" * 60 + ".") * 3 + "example.com"
    assert len(email) > 254

    response = client.post("/api/v1/accounts", json={"email": email, "password": STRONG_PASSWORD})

    body = assert_problem(response, 400, "validation_failed")
    assert body["errors"] == [{"field": "email", "code": "too_long", "detail": "is too long"}]
    assert count_rows(app, "accounts") == 0


@pytest.mark.parametrize(
    ("password", "status"),
    [
        ("q7v-m2x", 400),
        ("q7v-m2xk", 201),  # "aaaaaaaa" would be refused as too common (PWD-05)
        ("😀" * 4, 400),
        ("😀" * 8, 201),
        ("ｐａｓｓｗｏｒ", 400),  # 7 full-width letters: 7 code points after NFKC
        ("a" * 256, 201),
        ("a" * 257, 400),
    ],
    ids=["7-ascii", "8-ascii", "4-emoji", "8-emoji", "7-fullwidth", "256", "257"],
)
def test_signup_password_length_counts_code_points_after_nfkc(client, app, password, status):
    """PWD-01, PWD-02: 8 to 256 code points."""
    response = client.post(
        "/api/v1/accounts", json={"email": "ada@example.com", "password": password}
    )

    assert response.status_code == status
    assert count_rows(app, "accounts") == (1 if status == 201 else 0)


def test_signup_with_short_password_names_the_field(client):
    """PWD-01."""
    response = client.post(
        "/api/v1/accounts", json={"email": "ada@example.com", "password": "1234567"}
    )

    body = assert_problem(response, 400, "password_too_short")
    assert body["errors"] == [
        {
            "field": "password",
            "code": "password_too_short",
            "detail": "must be at least 8 characters",
        }
    ]


def test_signup_with_257_character_password_returns_password_too_long(client):
    """PWD-02."""
    response = client.post(
        "/api/v1/accounts", json={"email": "ada@example.com", "password": "x" * 257}
    )

    body = assert_problem(response, 400, "password_too_long")
    assert body["errors"][0]["field"] == "password"


@pytest.mark.parametrize(
    "password", ["adalovelace@example.com", "ADALOVELACE@EXAMPLE.COM", "AdaLovelace"]
)
def test_signup_with_password_equal_to_email_returns_400(client, app, password):
    response = client.post(
        "/api/v1/accounts", json={"email": "adalovelace@example.com", "password": password}
    )

    assert_problem(response, 400, "password_matches_email")
    assert count_rows(app, "accounts") == 0


@pytest.mark.parametrize(
    "password",
    ["pass word with spaces", "パスワードはこれです", "🔐🔑🗝️🔒🔓🛡️⚔️🏰", "Ünïcödé-Pässwörd"],
)
def test_signup_accepts_any_characters_without_composition_rules(client, password):
    """PWD-04."""
    response = client.post(
        "/api/v1/accounts", json={"email": "ada@example.com", "password": password}
    )

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"password": STRONG_PASSWORD}, "email", "missing"),
        ({"email": "ada@example.com"}, "password", "missing"),
        ({"email": 5, "password": STRONG_PASSWORD}, "email", "invalid_type"),
        ({"email": "ada@example.com", "password": None}, "password", "invalid_type"),
        ({"email": "ada@example.com", "password": ["x"]}, "password", "invalid_type"),
        (
            {"email": "ada@example.com", "password": STRONG_PASSWORD, "display_name": 7},
            "display_name",
            "invalid_type",
        ),
        (
            {"email": "ada@example.com", "password": STRONG_PASSWORD, "display_name": "x" * 101},
            "display_name",
            "too_long",
        ),
        (
            {"email": "ada@example.com", "password": STRONG_PASSWORD, "roles": ["admin"]},
            "roles",
            "unknown_field",
        ),
        (
            {"email": "ada@example.com", "password": STRONG_PASSWORD, "email_verified": True},
            "email_verified",
            "unknown_field",
        ),
    ],
    ids=[
        "no-email",
        "no-password",
        "email-int",
        "password-null",
        "password-list",
        "name-int",
        "name-too-long",
        "roles",
        "email_verified",
    ],
)
def test_signup_with_invalid_field_returns_400_naming_it(client, app, body, field, code):
    """HTTP-02, ADM-03: unknown fields such as roles or email_verified are refused."""
    response = client.post("/api/v1/accounts", json=body)

    problem = assert_problem(response, 400, "validation_failed")
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in problem["errors"]
    ]
    assert count_rows(app, "accounts") == 0
    assert count_rows(app, "account_roles") == 0


@pytest.mark.parametrize("mark", ["\u202e", "\u2066", "\u200f"], ids=["rlo", "lri", "rlm"])
def test_signup_with_bidi_control_in_display_name_returns_400(client, app, mark):
    """HTTP-02: "Trojan Source" names that display differently from what is stored."""
    response = client.post(
        "/api/v1/accounts",
        json={
            "email": "ada@example.com",
            "password": STRONG_PASSWORD,
            "display_name": f"Ada{mark}nimda",
        },
    )

    problem = assert_problem(response, 400, "validation_failed")
    assert problem["errors"] == [
        {
            "field": "display_name",
            "code": "invalid_characters",
            "detail": "contains bidirectional control characters",
        }
    ]
    assert count_rows(app, "accounts") == 0


def test_signup_with_emoji_joiner_sequence_in_display_name_keeps_it(client):
    name = "Ada \U0001f469\u200d\U0001f4bb"  # woman technologist: a ZWJ sequence, not a control

    response = client.post(
        "/api/v1/accounts",
        json={"email": "ada@example.com", "password": STRONG_PASSWORD, "display_name": name},
    )

    assert response.status_code == 201
    assert response.get_json()["display_name"] == name
