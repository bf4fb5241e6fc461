"""Email verification end to end, through a real SMTP server (SECURITY.md EM-02, EM-05, D-2, D-9).

Each test signs up, lets the outbox sender deliver to the loopback server, and follows the link
in the message that arrived. Time is the app's frozen clock; mail budgets are counted under a
Redis prefix of the test's own (when the suite runs with Redis), so no count leaks between tests.
"""

from __future__ import annotations

import re

import jwt
import pytest
from flask import Flask

from tests.email.conftest import Inbox
from tests.helpers import STRONG_PASSWORD, assert_problem, link_in, snapshot, token_in
from tests.mail.conftest import Delivered

ADA = "ada@example.com"
SIGNUP = "/api/v1/accounts"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/accounts/me"
VERIFY = "/api/v1/auth/verify-email"
RESEND = "/api/v1/auth/verify-email/resend"
VERIFY_SUBJECT = "Verify your email address"
WRONG = "not the password at all"
TOKEN = r"[A-Za-z0-9_-]{43}"


def sign_up(client, email: str = ADA, password: str = STRONG_PASSWORD):
    response = client.post(SIGNUP, json={"email": email, "password": password})
    assert response.status_code in (201, 202), response.get_json()
    return response


def login(client, email: str = ADA, password: str = STRONG_PASSWORD):
    return client.post(LOGIN, json={"email": email, "password": password})


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def claims(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


def delivered_one(inbox: Inbox, app: Flask, to: str = ADA, subject: str = VERIFY_SUBJECT):
    """Run one sender pass; exactly one message must arrive: for ``to``, with ``subject``."""
    messages = inbox.deliver(app)
    assert [(m.rcpt_tos, m.message["Subject"]) for m in messages] == [([to], subject)]
    return messages[0]


def verify_link(inbox: Inbox, app: Flask, to: str = ADA) -> str:
    """The token of the one verification message a sender pass delivers to ``to``."""
    return token_in(delivered_one(inbox, app, to).message)


def verify(client, token: str):
    return client.post(VERIFY, json={"token": token})


def account_me(client, access_token: str) -> dict:
    response = client.get(ME, headers=bearer(access_token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def without_request_id(response) -> tuple:
    body = {k: v for k, v in response.get_json().items() if k != "request_id"}
    headers = {k: v for k, v in response.headers if k not in ("X-Request-ID", "Content-Length")}
    return response.status_code, body, headers


# --- The sign-up's link -----------------------------------------------------------------------


@pytest.mark.parametrize("config_name", ["testing", "production"])
def test_signup_mails_a_link_to_the_verification_page_with_a_token_in_its_fragment(
    build, inbox, config_name
):
    """EM-02, EM-05: one message to the new address; the link is the configured URL's page with
    43 base64url characters in the fragment (never sent to a server)."""
    app = build(config_name)
    sign_up(app.test_client())

    delivered = delivered_one(inbox, app)

    base = "https://auth.example.test" if config_name == "production" else "http://127.0.0.1:5000"
    assert re.fullmatch(
        rf"{re.escape(base)}/account/verify-email#token={TOKEN}", link_in(delivered.message)
    )
    assert delivered.message["To"] == ADA
    assert f'href="{link_in(delivered.message)}"' in delivered.html


def test_signup_link_follows_the_configured_link_template(build, inbox):
    """EM-05: with ``MAIL_LINK_VERIFY_EMAIL`` the link is the front end's page, token in it."""
    app = build(MAIL_LINK_VERIFY_EMAIL="https://app.example/verify?token={token}")
    sign_up(app.test_client())

    link = link_in(delivered_one(inbox, app).message)

    assert re.fullmatch(rf"https://app\.example/verify\?token={TOKEN}", link)


def test_signup_link_ignores_the_request_host_and_forwarded_host(build, inbox):
    """EM-05: a forged Host or X-Forwarded-Host never lands in the link."""
    app = build(PUBLIC_URL="https://id.example.org")
    response = app.test_client().post(
        SIGNUP,
        json={"email": ADA, "password": STRONG_PASSWORD},
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    assert response.status_code == 201, response.get_json()

    link = link_in(delivered_one(inbox, app).message)

    assert link.startswith("https://id.example.org/account/verify-email#token=")
    assert "evil" not in link


def test_following_the_mailed_link_verifies_the_address_for_me_and_new_access_tokens(build, inbox):
    """The link answers 204; /me and every access token issued after it say verified."""
    app = build()
    client = app.test_client()
    sign_up(client)
    before = login(client).get_json()["access_token"]
    assert account_me(client, before)["email_verified"] is False
    assert claims(before)["email_verified"] is False

    response = verify(client, verify_link(inbox, app))

    assert response.status_code == 204
    assert response.get_data() == b""
    assert account_me(client, before)["email_verified"] is True
    fresh = login(client).get_json()["access_token"]
    assert claims(fresh)["email_verified"] is True


def test_following_the_mailed_link_in_production_lets_the_account_log_in(build, inbox):
    """D-9: an account whose sign-up link was followed logs in; its token says verified."""
    app = build("production")
    client = app.test_client()
    sign_up(client)

    assert verify(client, verify_link(inbox, app)).status_code == 204

    response = login(client)
    assert response.status_code == 200, response.get_json()
    assert claims(response.get_json()["access_token"])["email_verified"] is True


# --- Resend -----------------------------------------------------------------------------------


def test_resend_mails_a_new_link_and_the_earlier_one_answers_token_superseded(build, inbox):
    """EM-03: the newest link works; the one before it is void, and says so."""
    app = build()
    client = app.test_client()
    sign_up(client)
    first = verify_link(inbox, app)
    access = login(client).get_json()["access_token"]

    response = client.post(RESEND, headers=bearer(access))

    assert response.status_code == 202
    assert set(response.get_json()) == {"detail"}
    second = verify_link(inbox, app)
    assert second != first
    assert_problem(verify(client, first), 400, "token_superseded")
    assert verify(client, second).status_code == 204
    assert account_me(client, access)["email_verified"] is True


def test_resend_on_a_verified_account_answers_409_and_mails_nothing(build, inbox):
    app = build()
    client = app.test_client()
    sign_up(client)
    assert verify(client, verify_link(inbox, app)).status_code == 204
    access = login(client).get_json()["access_token"]
    before = snapshot(app)

    response = client.post(RESEND, headers=bearer(access))

    assert_problem(response, 409, "email_already_verified")
    assert snapshot(app) == before
    assert inbox.deliver(app) == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YWRhOnB3"}],
    ids=["none", "invalid", "basic"],
)
def test_resend_without_a_valid_bearer_token_answers_401_and_mails_nothing(build, inbox, headers):
    app = build()
    client = app.test_client()
    sign_up(client)
    inbox.deliver(app)
    before = snapshot(app)

    response = client.post(RESEND, headers=headers)

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert snapshot(app) == before
    assert inbox.deliver(app) == []


def test_resend_past_the_mail_budget_answers_429_and_mails_nothing(build, inbox):
    """RL-05: three resends an hour; the sign-up's own message does not count; the fourth is
    refused with Retry-After, stores nothing and sends nothing."""
    app = build()
    client = app.test_client()
    sign_up(client)
    verify_link(inbox, app)
    access = login(client).get_json()["access_token"]
    for _ in range(3):  # each one mailed before the next (the frozen clock orders no ties)
        assert client.post(RESEND, headers=bearer(access)).status_code == 202
        (mailed,) = inbox.deliver(app)
    last = token_in(mailed.message)
    before = snapshot(app)

    response = client.post(RESEND, headers=bearer(access))

    assert_problem(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    assert snapshot(app) == before
    assert inbox.deliver(app) == []
    assert verify(client, last).status_code == 204  # the last link sent still works


# --- Logins of unverified accounts (D-9) ------------------------------------------------------


def test_production_login_of_unverified_account_with_right_password_answers_403_and_mails_link(
    build, inbox
):
    """D-9: 403 email_not_verified after the right password, and a fresh link by mail that
    verifies (the account cannot log in to ask for one)."""
    app = build("production")
    client = app.test_client()
    sign_up(client)
    verify_link(inbox, app)

    response = login(client)

    assert_problem(response, 403, "email_not_verified")
    assert "access_token" not in response.get_json()
    fresh = verify_link(inbox, app)
    assert verify(client, fresh).status_code == 204
    assert login(client).status_code == 200


def test_production_login_of_unverified_account_with_wrong_password_answers_401_and_mails_nothing(
    build, inbox
):
    """D-9: a wrong password says nothing about verification and sends nothing; the sign-up's
    link is not superseded."""
    app = build("production")
    client = app.test_client()
    sign_up(client)
    token = verify_link(inbox, app)

    response = login(client, password=WRONG)

    assert_problem(response, 401, "invalid_credentials")
    assert inbox.deliver(app) == []
    assert verify(client, token).status_code == 204


def test_production_login_of_unverified_account_with_wrong_password_answers_like_unknown_address(
    build, inbox
):
    """D-9, LOG-01: status, body and headers as for an address without an account."""
    app = build("production")
    client = app.test_client()
    sign_up(client)
    inbox.deliver(app)

    unverified = login(client, password=WRONG)
    unknown = login(client, email="nobody@example.com", password=WRONG)

    assert without_request_id(unverified) == without_request_id(unknown)


def test_production_refused_logins_past_the_mail_budget_still_answer_403_and_mail_nothing(
    build, inbox
):
    """D-9, RL-05: each refusal takes from the budget; once spent the answer stays the same and
    nothing more is sent."""
    app = build("production")
    client = app.test_client()
    sign_up(client)
    inbox.deliver(app)
    for _ in range(3):
        assert_problem(login(client), 403, "email_not_verified")
    assert len(inbox.deliver(app)) == 3

    response = login(client)

    assert_problem(response, 403, "email_not_verified")
    assert inbox.deliver(app) == []


@pytest.mark.parametrize("config_name", ["testing", "development"])
def test_login_of_unverified_account_outside_production_succeeds(
    build, inbox, tmp_path, config_name
):
    """D-9: development and testing let unverified accounts log in; the token says unverified
    and no further link is mailed."""
    app = build(
        config_name,
        JWT_GENERATE_KEY_FILE=str(tmp_path / "jwt-signing-key.pem"),
        SECRET_KEY_FILE=str(tmp_path / "secret-key"),
    )
    client = app.test_client()
    sign_up(client)
    verify_link(inbox, app)

    response = login(client)

    assert response.status_code == 200, response.get_json()
    assert claims(response.get_json()["access_token"])["email_verified"] is False
    assert inbox.deliver(app) == []


# --- Generic sign-up (D-2) --------------------------------------------------------------------


def test_production_signup_of_a_taken_address_answers_the_same_and_mails_the_owner_no_link(
    build, inbox
):
    """D-2: 202 with the same body; the owner is told, with no link and no token; the live
    verification link is not superseded and no account is added."""
    app = build("production")
    client = app.test_client()
    first = sign_up(client)
    token = verify_link(inbox, app)

    second = sign_up(client, email="ADA@Example.com", password=STRONG_PASSWORD + " again")

    assert (second.status_code, second.get_json()) == (first.status_code, first.get_json())
    notice = delivered_one(inbox, app, subject="Someone tried to sign up with your email address")
    assert_no_token(notice)
    assert verify(client, token).status_code == 204
    assert login(client).status_code == 200


def assert_no_token(delivered: Delivered) -> None:
    """EM-07: a notice carries no link with a token and nothing shaped like one."""
    for body in (delivered.text, delivered.html):
        assert "token" not in body.lower()
        assert not re.search(rf"(?<![A-Za-z0-9_-]){TOKEN}(?![A-Za-z0-9_-])", body)
