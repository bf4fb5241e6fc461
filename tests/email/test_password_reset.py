"""Password reset end to end, through a real SMTP server (SECURITY.md EM-01, EM-04, EM-05, EM-07,
EM-08, RL-03, RL-04, DATA-01).

Each test follows the link in the message the loopback server received. Time is the app's
frozen clock; mail budgets are counted under a Redis prefix of the test's own (when the suite
runs with Redis). Production's config is used wherever it changes what is checked (verified
logins, generic sign-up).
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import Account
from app.models.outbox import OutboxMessage
from app.services.devices import HEADER as DEVICE_HEADER
from tests.email.conftest import Inbox
from tests.helpers import STRONG_PASSWORD, assert_problem, link_in, snapshot, token_in
from tests.mail.conftest import Delivered

ADA = "ada@example.com"
SIGNUP = "/api/v1/accounts"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/accounts/me"
VERIFY = "/api/v1/auth/verify-email"
RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
RESET_SUBJECT = "Reset your password"
NOTICE_SUBJECT = "Your password was changed"
NEW_PASSWORD = "a brand new passphrase for ada"
WRONG = "not the password at all"
TOKEN = r"[A-Za-z0-9_-]{43}"
CONFIGS = ["testing", "production"]


def delivered_one(inbox: Inbox, app: Flask, to: str = ADA, subject: str = RESET_SUBJECT):
    """Run one sender pass; exactly one message must arrive: for ``to``, with ``subject``."""
    messages = inbox.deliver(app)
    assert [(m.rcpt_tos, m.message["Subject"]) for m in messages] == [([to], subject)]
    return messages[0]


def sign_up(app: Flask, inbox: Inbox, email: str = ADA, *, verified: bool = False):
    """Sign up (its verification mail delivered and, if ``verified``, followed)."""
    client = app.test_client()
    response = client.post(SIGNUP, json={"email": email, "password": STRONG_PASSWORD})
    assert response.status_code in (201, 202), response.get_json()
    token = token_in(delivered_one(inbox, app, email, "Verify your email address").message)
    if verified:
        assert client.post(VERIFY, json={"token": token}).status_code == 204


def request_reset(client, email: str = ADA, **kwargs):
    return client.post(RESET, json={"email": email}, **kwargs)


def reset_token(app: Flask, inbox: Inbox, email: str = ADA) -> str:
    """Ask for a reset of ``email`` and return the token of the message that arrives."""
    assert request_reset(app.test_client(), email).status_code == 202
    return token_in(delivered_one(inbox, app, email).message)


def confirm(client, token: str, new_password: str = NEW_PASSWORD):
    return client.post(CONFIRM, json={"token": token, "new_password": new_password})


def login(client, email: str = ADA, password: str = STRONG_PASSWORD):
    return client.post(LOGIN, json={"email": email, "password": password})


def tokens(client, password: str = STRONG_PASSWORD) -> dict:
    response = login(client, password=password)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def account_row(app: Flask) -> Account:
    with app.app_context():
        account = db.session.scalar(select(Account).where(Account.email_key == ADA))
        db.session.expunge_all()
        return account


def answer(response) -> tuple:
    """Everything a client sees of an answer but its request id."""
    body = response.get_json()
    headers = {k: v for k, v in response.headers if k != "X-Request-ID"}
    return response.status_code, body, headers


# --- The request ------------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", CONFIGS)
def test_reset_request_answers_the_same_for_known_and_unknown_addresses(build, inbox, config_name):
    """EM-01: 202, the same body and the same headers whether or not an account has it."""
    app = build(config_name)
    sign_up(app, inbox)
    client = app.test_client()

    known = request_reset(client, ADA)
    unknown = request_reset(client, "nobody@example.com")

    assert known.status_code == 202
    assert set(known.get_json()) == {"detail"}
    assert answer(known) == answer(unknown)


@pytest.mark.parametrize("config_name", CONFIGS)
def test_reset_request_for_unknown_address_stores_nothing_and_sends_nothing(
    build, inbox, config_name
):
    """EM-01, RL-04: once the sender ran the request's job, no token, no outbox row, no message."""
    app = build(config_name)
    sign_up(app, inbox)
    before = snapshot(app)

    response = request_reset(app.test_client(), "nobody@example.com")

    assert response.status_code == 202
    assert inbox.deliver(app) == []
    assert snapshot(app) == before


def test_reset_request_writes_the_same_one_job_row_for_known_and_unknown_addresses(build, inbox):
    """EM-01: the request's own work does not depend on the account: one deferred job each,
    no token and no message yet (whether the account exists is decided in the sender)."""
    app = build()
    sign_up(app, inbox)
    inbox.deliver(app)
    before = snapshot(app)

    request_reset(app.test_client(), ADA)
    request_reset(app.test_client(), "nobody@example.com")

    after = snapshot(app)
    assert {t: r for t, r in after.items() if t != "outbox_messages"} == {
        t: r for t, r in before.items() if t != "outbox_messages"
    }
    with app.app_context():
        new = db.session.scalars(
            select(OutboxMessage.template).where(OutboxMessage.status == "pending")
        ).all()
    assert new == ["job:password_reset", "job:password_reset"]


@pytest.mark.parametrize("config_name", CONFIGS)
def test_reset_request_mails_a_link_to_the_reset_page_with_a_token_in_its_fragment(
    build, inbox, config_name
):
    """EM-02, EM-05: the configured URL's reset page, 43 base64url characters in the fragment."""
    app = build(config_name)
    sign_up(app, inbox)

    request_reset(app.test_client())

    link = link_in(delivered_one(inbox, app).message)
    base = "https://auth.example.test" if config_name == "production" else "http://127.0.0.1:5000"
    assert re.fullmatch(rf"{re.escape(base)}/account/reset-password#token={TOKEN}", link)


def test_reset_link_ignores_the_request_host_and_forwarded_host(build, inbox):
    """EM-05: the link is built from settings only; a forged host never reaches it."""
    app = build(MAIL_LINK_RESET_PASSWORD="https://app.example/reset?token={token}")
    sign_up(app, inbox)

    request_reset(
        app.test_client(), headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    )

    link = link_in(delivered_one(inbox, app).message)
    assert re.fullmatch(rf"https://app\.example/reset\?token={TOKEN}", link)


@pytest.mark.parametrize("typed", ["ADA@Example.com", "Ada@EXAMPLE.COM", "ａｄａ@example.com"])
def test_reset_request_for_a_variant_of_the_address_mails_the_stored_address(build, inbox, typed):
    """EM-01: the envelope and the To header name the address on the account, never the one
    typed (a variant folds to the same account)."""
    app = build()
    sign_up(app, inbox)

    assert request_reset(app.test_client(), typed).status_code == 202

    delivered = delivered_one(inbox, app)
    assert delivered.rcpt_tos == [ADA]
    assert delivered.message["To"] == ADA
    assert confirm(app.test_client(), token_in(delivered.message)).status_code == 204


@pytest.mark.parametrize(
    ("address", "code"),
    [
        ("not-an-address", "invalid_email"),
        ("ada@example.com\r\nBcc: mallory@example.com", "validation_failed"),
        ("ada@example.com\n", "validation_failed"),
    ],
    ids=["syntax", "crlf", "lf"],
)
def test_reset_request_with_an_invalid_address_answers_400_before_any_mail(
    build, inbox, address, code
):
    """EM-08: refused before anything is stored or sent; a line break never reaches a header
    (control characters are refused by the body parser, like in every other field)."""
    app = build()
    sign_up(app, inbox)
    before = snapshot(app)

    response = request_reset(app.test_client(), address)

    assert_problem(response, 400, code)
    assert snapshot(app) == before
    assert inbox.deliver(app) == []


@pytest.mark.parametrize("config_name", CONFIGS)
def test_reset_request_past_the_mail_budget_answers_the_same_and_sends_nothing(
    build, inbox, config_name
):
    """EM-01: the fourth request within the hour gets the same 202 and body, stores nothing and
    sends nothing."""
    app = build(config_name)
    sign_up(app, inbox)
    client = app.test_client()
    first = request_reset(client)
    for _ in range(2):
        request_reset(client)
    assert len(inbox.deliver(app)) == 3
    before = snapshot(app)

    throttled = request_reset(client)

    assert answer(throttled) == answer(first)
    assert snapshot(app) == before
    assert inbox.deliver(app) == []


def test_throttled_reset_request_leaves_the_last_mailed_link_working(build, inbox):
    """EM-01: a throttled request supersedes nothing: the last link that went still works."""
    app = build()
    sign_up(app, inbox)
    client = app.test_client()
    for _ in range(3):  # each one mailed before the next (the frozen clock orders no ties)
        request_reset(client)
        (mailed,) = inbox.deliver(app)
    last = token_in(mailed.message)

    assert request_reset(client).status_code == 202

    assert confirm(client, last).status_code == 204


def test_reset_request_for_unknown_address_past_the_budget_answers_the_same(build, inbox):
    """RL-04: unknown addresses are throttled exactly like known ones, storing nothing."""
    app = build()
    sign_up(app, inbox)
    client = app.test_client()
    known = [request_reset(client, ADA) for _ in range(4)]
    assert len(inbox.deliver(app)) == 3
    before = snapshot(app)

    unknown = [request_reset(client, "nobody@example.com") for _ in range(4)]

    assert [answer(r) for r in unknown] == [answer(r) for r in known]
    assert inbox.deliver(app) == []
    assert snapshot(app) == before


# --- The confirmation -------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", CONFIGS)
def test_reset_confirm_sets_the_password_the_old_one_fails_the_new_one_works(
    build, inbox, config_name
):
    app = build(config_name)
    sign_up(app, inbox, verified=True)
    client = app.test_client()

    assert confirm(client, reset_token(app, inbox)).status_code == 204

    assert_problem(login(client), 401, "invalid_credentials")
    assert login(client, password=NEW_PASSWORD).status_code == 200


@pytest.mark.parametrize("config_name", CONFIGS)
def test_reset_confirm_answers_204_with_no_body_and_no_tokens(build, inbox, config_name):
    """EM-04: nothing to log in with comes back; the person logs in with the new password."""
    app = build(config_name)
    sign_up(app, inbox, verified=True)

    response = confirm(app.test_client(), reset_token(app, inbox))

    assert response.status_code == 204
    assert response.get_data() == b""
    assert "Set-Cookie" not in response.headers
    assert DEVICE_HEADER not in response.headers


@pytest.mark.parametrize("config_name", CONFIGS)
def test_reset_confirm_ends_every_session_of_the_account(build, inbox, config_name):
    """EM-04: each session's refresh token answers session_revoked, its access token 401."""
    app = build(config_name)
    sign_up(app, inbox, verified=True)
    client = app.test_client()
    sessions = [tokens(client), tokens(client)]

    assert confirm(client, reset_token(app, inbox)).status_code == 204

    for pair in sessions:
        refreshed = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
        assert_problem(refreshed, 401, "session_revoked")
        me = client.get(ME, headers={"Authorization": f"Bearer {pair['access_token']}"})
        assert me.status_code == 401
        assert me.mimetype == "application/problem+json"


def test_reset_confirm_lifts_a_lockout(build, inbox):
    """RL-03: a reset works while the account is locked and unlocks it at once."""
    app = build("production", LOCKOUT_FAILURES=3, LOCKOUT_SECONDS=300)
    sign_up(app, inbox, verified=True)
    client = app.test_client()
    for _ in range(3):
        assert_problem(login(client, password=WRONG), 401, "invalid_credentials")
    assert_problem(login(client), 401, "invalid_credentials")  # locked: the right one too
    assert account_row(app).locked_until is not None

    assert confirm(client, reset_token(app, inbox)).status_code == 204

    assert login(client, password=NEW_PASSWORD).status_code == 200
    account = account_row(app)
    assert (account.failed_login_count, account.locked_until) == (0, None)


def test_reset_confirm_verifies_an_unverified_address(build, inbox):
    """D-9: the link reached the address, so it counts as verified: production logins work."""
    app = build("production")
    sign_up(app, inbox)
    client = app.test_client()
    assert_problem(login(client), 403, "email_not_verified")
    inbox.deliver(app)  # the refusal's verification link, left unused

    assert confirm(client, reset_token(app, inbox)).status_code == 204

    assert account_row(app).email_verified is True
    response = login(client, password=NEW_PASSWORD)
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("config_name", CONFIGS)
def test_reset_confirm_mails_a_notice_that_carries_no_token(build, inbox, config_name):
    """EM-07: the account is told, to its stored address, with no link holding a token."""
    app = build(config_name)
    sign_up(app, inbox, verified=True)
    token = reset_token(app, inbox)

    assert confirm(app.test_client(), token).status_code == 204

    notice = delivered_one(inbox, app, subject=NOTICE_SUBJECT)
    assert token.encode() not in notice.raw
    assert_no_token(notice)


@pytest.mark.parametrize("config_name", CONFIGS)
def test_reset_confirm_with_too_short_password_answers_400_and_leaves_the_token_usable(
    build, inbox, config_name
):
    """EM-04, DATA-01: the full policy applies; a refusal spends nothing and changes nothing."""
    app = build(config_name)
    sign_up(app, inbox, verified=True)
    client = app.test_client()
    token = reset_token(app, inbox)
    before = snapshot(app)

    refused = confirm(client, token, new_password="short")

    assert_problem(refused, 400, "password_too_short")
    assert snapshot(app) == before
    assert inbox.deliver(app) == []
    assert confirm(client, token).status_code == 204


def test_reset_confirm_with_a_common_password_answers_400_and_leaves_the_token_usable(build, inbox):
    """EM-04: the context rules of sign-up apply too (here: the password is the address)."""
    app = build("production")
    sign_up(app, inbox, verified=True)
    client = app.test_client()
    token = reset_token(app, inbox)
    before = snapshot(app)

    refused = confirm(client, token, new_password=ADA)

    assert refused.status_code == 400
    assert refused.get_json()["code"].startswith("password_")
    assert snapshot(app) == before
    assert confirm(client, token).status_code == 204


@pytest.mark.parametrize("config_name", CONFIGS)
def test_reset_token_mailed_before_a_password_change_answers_token_superseded(
    build, inbox, config_name
):
    """EM-03: a password changed after the reset mail went voids its link; nothing changes."""
    app = build(config_name)
    clock = app.extensions["gatehouse"].clock
    sign_up(app, inbox, verified=True)
    client = app.test_client()
    token = reset_token(app, inbox)
    access = tokens(client)["access_token"]
    clock.advance(seconds=60)
    changed = client.post(
        f"{ME}/password",
        json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        headers={"Authorization": f"Bearer {access}"},
    )
    assert changed.status_code == 204, changed.get_json()
    before = snapshot(app)

    response = confirm(client, token, new_password="yet another passphrase for ada")

    assert_problem(response, 400, "token_superseded")
    assert snapshot(app) == before
    assert inbox.deliver(app) == []
    assert login(client, password=NEW_PASSWORD).status_code == 200


def assert_no_token(delivered: Delivered) -> None:
    """EM-07: no link with a token, nothing shaped like one."""
    for body in (delivered.text, delivered.html):
        assert "token" not in body.lower()
        assert not re.search(rf"(?<![A-Za-z0-9_-]){TOKEN}(?![A-Za-z0-9_-])", body)
