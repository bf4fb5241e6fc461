"""Sign-up rules as a client meets them: every failing field at once, the breached-password
policy, one account per address however it is typed, and where the new account lives.
SECURITY.md PWD-05, LOG-03, DATA-02, HTTP-02."""

import pytest

from tests.helpers import STRONG_PASSWORD, assert_problem, count_rows

SIGNUP = "/api/v1/accounts"


def signup(client, **body):
    return client.post(
        SIGNUP, json={"email": "ada@example.com", "password": STRONG_PASSWORD, **body}
    )


def field_errors(response) -> list[tuple[str, str]]:
    return [(error["field"], error["code"]) for error in response.get_json()["errors"]]


def test_bad_email_and_short_password_are_both_reported(client, app):
    """A form can show every problem at once: 400 validation_failed listing each field."""
    response = signup(client, email="not an email", password="short")

    assert_problem(response, 400, "validation_failed")
    assert field_errors(response) == [
        ("email", "invalid_email"),
        ("password", "password_too_short"),
    ]
    assert count_rows(app, "accounts") == 0


def test_structure_and_rule_errors_are_reported_together(client):
    response = client.post(SIGNUP, json={"email": "not an email", "extra": 1})

    assert_problem(response, 400, "validation_failed")
    assert sorted(field_errors(response)) == [
        ("email", "invalid_email"),
        ("extra", "unknown_field"),
        ("password", "missing"),
    ]


def test_a_single_broken_rule_keeps_its_own_code(client):
    assert_problem(signup(client, email="not an email"), 400, "invalid_email")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"password": "password1234"}, "password_too_common"),
        ({"password": "ｐａｓｓｗｏｒｄ１２３４"}, "password_too_common"),
        (
            {"email": "adalove@example.com", "password": "my-AdaLove-is-great"},
            "password_contains_email",
        ),
        (
            {"password": "lovelace-rules-2026", "display_name": "Ada Lovelace"},
            "password_contains_name",
        ),
        ({"password": "my-GateHouse-pass-1"}, "password_contains_service_name"),
    ],
    ids=["common", "common-fullwidth", "email-local-part", "display-name", "service-name"],
)
def test_common_or_guessable_password_is_refused_with_its_reason(client, app, body, code):
    """PWD-05: a shipped list of 100,000 common passwords, and the user's own words."""
    response = signup(client, **body)

    problem = assert_problem(response, 400, code)
    assert problem["errors"][0]["field"] == "password"
    assert body["password"] not in response.get_data(as_text=True)
    assert count_rows(app, "accounts") == 0


@pytest.mark.parametrize(
    "variant",
    ["ＡＤＡ@example.com", "ada@EXAMPLE.com", "ａｄａ@ｅｘａｍｐｌｅ．ｃｏｍ"],
    ids=["full-width-local", "upper-domain", "full-width-all"],
)
def test_compatibility_variants_of_an_address_are_one_account(client, app, variant):
    """LOG-03, DATA-02: full-width and case variants cannot open a second account."""
    assert signup(client).status_code == 201

    assert_problem(signup(client, email=variant), 409, "email_taken")
    assert count_rows(app, "accounts") == 1


def test_address_mixing_scripts_is_refused(client, app):
    """A Cyrillic a (U+0430) inside a Latin name looks like ada@example.com, is not (TR39)."""
    response = signup(client, email="\u0430da@example.com")

    assert_problem(response, 400, "email_mixed_scripts")
    assert count_rows(app, "accounts") == 0


def test_sign_up_answer_names_where_the_account_lives(client):
    response = signup(client)

    assert response.status_code == 201
    assert response.headers["Location"] == "/api/v1/accounts/me"
