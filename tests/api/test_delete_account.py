"""DELETE /api/v1/accounts/me."""

from tests.helpers import STRONG_PASSWORD, assert_problem, count_rows, rows_beyond_seed


def _delete(client, tokens, body=None):
    return client.delete(
        "/api/v1/accounts/me",
        json={"password": STRONG_PASSWORD} if body is None else body,
        headers=tokens.headers,
    )


def test_delete_account_returns_204_and_removes_every_row_of_it(client, app, api):
    """DATA-04: every row that belonged to the account goes with it, in every table."""
    tokens = api.signup_and_login()
    api.refresh(api.login().refresh_token)
    assert rows_beyond_seed(app)["refresh_tokens"] == 3

    response = _delete(client, tokens)

    assert response.status_code == 204
    assert set(rows_beyond_seed(app).values()) == {0}
    assert count_rows(app, "roles") == 2


def test_tokens_of_a_deleted_account_stop_working(client, api):
    """JWT-06, SES-07."""
    tokens = api.signup_and_login()
    other = api.login()

    _delete(client, tokens)

    assert_problem(api.me(tokens.access_token), 401, "invalid_token")
    assert_problem(api.me(other.access_token), 401, "invalid_token")
    assert_problem(api.refresh(other.refresh_token), 401, "invalid_refresh_token")


def test_login_after_deletion_gives_the_generic_answer(client, api):
    tokens = api.signup_and_login()
    _delete(client, tokens)

    response = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )

    assert_problem(response, 401, "invalid_credentials")


def test_email_of_a_deleted_account_can_sign_up_again(client, api):
    tokens = api.signup_and_login()
    _delete(client, tokens)

    assert api.signup()["email"] == "ada@example.com"


def test_delete_account_with_wrong_password_returns_400_and_deletes_nothing(client, app, api):
    """PWD-08."""
    tokens = api.signup_and_login()

    response = _delete(client, tokens, {"password": "not my password"})

    body = assert_problem(response, 400, "current_password_incorrect")
    assert body["errors"][0]["field"] == "password"
    assert count_rows(app, "accounts") == 1
    assert api.me(tokens.access_token).status_code == 200


def test_delete_account_with_a_password_that_is_not_a_string_returns_400(client, app, api):
    """Without a password a recent login suffices (tests/api/test_reauthentication.py)."""
    tokens = api.signup_and_login()

    response = _delete(client, tokens, {"password": 12345678})

    assert_problem(response, 400, "validation_failed")
    assert count_rows(app, "accounts") == 1


def test_delete_account_without_body_returns_415(client, app, api):
    tokens = api.signup_and_login()

    response = client.delete("/api/v1/accounts/me", headers=tokens.headers)

    assert_problem(response, 415, "unsupported_media_type")
    assert count_rows(app, "accounts") == 1


def test_delete_account_leaves_other_accounts_alone(client, app, api):
    tokens = api.signup_and_login()
    bob = api.signup_and_login("bob@example.com")

    _delete(client, tokens)

    assert count_rows(app, "accounts") == 1
    assert api.me(bob.access_token).get_json()["email"] == "bob@example.com"
