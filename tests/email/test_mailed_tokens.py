"""The one-time tokens mailed for email verification, password reset and email change, end to end
through a real SMTP server (SECURITY.md EM-02, EM-03, DATA-01).

Every token a test uses is read from the link of a message the loopback server received; the
database is read only to check what is stored and what changed. Time is the app's frozen clock,
moved instead of slept past. What the flows' own files already check (the email-change token's
single use, expiry and supersession; a resend superseding the verification link) is not
repeated here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from functools import partial

import pytest
from flask import Flask
from sqlalchemy import select

from app.clock import SystemClock
from app.extensions import db
from app.models import Account, AccountToken
from tests.email.conftest import Inbox
from tests.email.test_password_reset import (
    NEW_PASSWORD,
    NOTICE_SUBJECT,
    delivered_one,
    login,
    reset_token,
)
from tests.helpers import STRONG_PASSWORD, assert_problem, snapshot, token_in

# Races are repeated: more on PostgreSQL, where they are real, a few on SQLite.
REPEATS = 50 if os.environ.get("TEST_DATABASE_URL") else 3
RACERS = 5
ADA = "ada@example.com"
NEW_ADDRESS = "ada.new@example.org"
SIGNUP = "/api/v1/accounts"
VERIFY = "/api/v1/auth/verify-email"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
CHANGE = "/api/v1/accounts/me/email"
CHANGE_CONFIRM = "/api/v1/accounts/me/email/confirm"
VERIFY_SUBJECT = "Verify your email address"
CHANGE_SUBJECT = "Confirm your new email address"
# Where a token of each purpose is redeemed.
ENDPOINTS = {
    "verify_email": VERIFY,
    "reset_password": RESET_CONFIRM,
    "change_email": CHANGE_CONFIRM,
}
PURPOSES = list(ENDPOINTS)
# Near misses of a real token: each is refused for its shape, before any lookup.
MALFORMED: dict[str, Callable[[str], str]] = {
    "short": lambda token: token[:-1],
    "long": lambda token: token + "A",
    "plus": lambda token: token[:-1] + "+",
    "slash": lambda token: token[:-1] + "/",
    "padded": lambda token: token[:-1] + "=",
}


# --- Steps ------------------------------------------------------------------------------------


def signed_up(app: Flask, inbox: Inbox, email: str = ADA) -> str:
    """Sign ``email`` up; the token of the verification link the sign-up mailed."""
    response = app.test_client().post(SIGNUP, json={"email": email, "password": STRONG_PASSWORD})
    assert response.status_code in (201, 202), response.get_json()
    return token_in(delivered_one(inbox, app, email, VERIFY_SUBJECT).message)


def change_token(app: Flask, inbox: Inbox, email: str = ADA, new_email: str = NEW_ADDRESS) -> str:
    """Ask (logged in as ``email``) to move to ``new_email``; the token mailed to it."""
    client = app.test_client()
    access = login(client, email).get_json()["access_token"]
    response = client.post(
        CHANGE,
        json={"new_email": new_email, "password": STRONG_PASSWORD},
        headers={"Authorization": f"Bearer {access}"},
    )
    assert response.status_code == 202, response.get_json()
    [confirmation] = [m for m in inbox.deliver(app) if m.message["Subject"] == CHANGE_SUBJECT]
    assert confirmation.rcpt_tos == [new_email]
    return token_in(confirmation.message)


def token_for(app: Flask, inbox: Inbox, purpose: str) -> str:
    """Sign Ada up and have a token of ``purpose`` mailed; the token her link carries."""
    verification = signed_up(app, inbox)
    if purpose == "verify_email":
        return verification
    if purpose == "reset_password":
        return reset_token(app, inbox)
    return change_token(app, inbox)


def redeem(client, purpose: str, token: str, new_password: str = NEW_PASSWORD):
    """Present ``token`` where tokens of ``purpose`` are redeemed (no Authorization)."""
    body = {"token": token}
    if purpose == "reset_password":
        body["new_password"] = new_password
    return client.post(ENDPOINTS[purpose], json=body)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def token_rows(app: Flask) -> list[AccountToken]:
    with app.app_context():
        rows = db.session.scalars(select(AccountToken)).all()
        db.session.expunge_all()
        db.session.remove()
    return list(rows)


def account(app: Flask, email: str = ADA) -> Account:
    with app.app_context():
        row = db.session.scalar(select(Account).where(Account.email == email))
        db.session.expunge_all()
        db.session.remove()
    return row


def cells_holding(state: dict[str, list[tuple[str, ...]]], needle: str) -> list[str]:
    """``table`` names of every cell of a snapshot in which ``needle`` appears."""
    return [
        table for table, rows in state.items() for row in rows for cell in row if needle in cell
    ]


def race(app: Flask, calls: list[Callable]) -> list:
    """Run each ``call(client)`` in a thread of its own with a test client of its own, all
    released at one barrier; their responses, in order."""
    barrier = threading.Barrier(len(calls))
    responses: list = [None] * len(calls)
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=30)
            responses[index] = calls[index](client)
        except BaseException as exc:  # reported in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert failures == [], failures
    return responses


# --- At rest ----------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", PURPOSES)
def test_mailed_token_is_stored_only_as_its_sha256_digest(build, inbox, purpose):
    """EM-02: the account_tokens row holds the token's SHA-256 digest, bound to its purpose and
    account; the token itself is in no column of any table (the outbox payload included)."""
    app = build()
    token = token_for(app, inbox, purpose)

    [row] = [r for r in token_rows(app) if r.token_hash == digest(token)]

    assert (row.purpose, row.account_id) == (purpose, account(app).id)
    assert row.used_at is None and row.superseded_at is None
    assert cells_holding(snapshot(app), token) == []


@pytest.mark.parametrize("purpose", PURPOSES)
def test_mailed_token_is_43_base64url_characters_of_256_bits(build, inbox, purpose):
    """EM-02: 32 random bytes (at least 128 bits asked), base64url without padding."""
    app = build()
    token = token_for(app, inbox, purpose)

    assert len(token) == 43
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(base64.urlsafe_b64decode(token + "=")) == 32


# --- Single use -------------------------------------------------------------------------------


def test_verification_token_used_twice_answers_token_used_and_changes_nothing(build, inbox):
    """EM-03, DATA-01: the second use is refused and writes nothing."""
    app = build()
    client = app.test_client()
    token = signed_up(app, inbox)
    assert redeem(client, "verify_email", token).status_code == 204
    before = snapshot(app)

    response = redeem(client, "verify_email", token)

    assert_problem(response, 400, "token_used")
    assert snapshot(app) == before
    assert account(app).email_verified is True


def test_reset_token_used_twice_answers_token_used_and_changes_nothing(build, inbox):
    """EM-03, DATA-01: the second confirmation sets no password, ends nothing, mails nothing;
    the password of the first one stays."""
    app = build()
    client = app.test_client()
    token = token_for(app, inbox, "reset_password")
    assert redeem(client, "reset_password", token).status_code == 204
    delivered_one(inbox, app, subject=NOTICE_SUBJECT)
    before = snapshot(app)

    response = redeem(client, "reset_password", token, new_password="a second new passphrase")

    assert_problem(response, 400, "token_used")
    assert snapshot(app) == before
    assert inbox.deliver(app) == []
    assert login(client, password=NEW_PASSWORD).status_code == 200


# --- Lifetime ---------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", ["verify_email", "reset_password"])
def test_token_past_its_30_minutes_answers_token_expired_and_changes_nothing(build, inbox, purpose):
    """EM-03, DATA-01: 31 minutes after it was issued the link is dead; nothing is written."""
    app = build()
    client = app.test_client()
    token = token_for(app, inbox, purpose)
    app.extensions["gatehouse"].clock.advance(minutes=31)
    before = snapshot(app)

    response = redeem(client, purpose, token)

    assert_problem(response, 400, "token_expired")
    assert snapshot(app) == before
    assert inbox.deliver(app) == []
    assert account(app).email_verified is False
    assert login(client, password=NEW_PASSWORD).status_code == 401


@pytest.mark.parametrize("purpose", ["verify_email", "reset_password"])
def test_token_at_29_minutes_still_works(build, inbox, purpose):
    """EM-03: the link lives its full 30 minutes."""
    app = build()
    token = token_for(app, inbox, purpose)
    app.extensions["gatehouse"].clock.advance(minutes=29)

    response = redeem(app.test_client(), purpose, token)

    assert response.status_code == 204, response.get_json()
    assert account(app).email_verified is True


# --- Supersession -----------------------------------------------------------------------------


def test_older_reset_token_after_a_newer_request_answers_token_superseded(build, inbox):
    """EM-03, DATA-01: a newer reset link voids the older one, which then writes nothing; the
    newer one works."""
    app = build()
    client = app.test_client()
    older = token_for(app, inbox, "reset_password")
    newer = reset_token(app, inbox)
    before = snapshot(app)

    response = redeem(client, "reset_password", older)

    assert_problem(response, 400, "token_superseded")
    assert snapshot(app) == before
    assert inbox.deliver(app) == []
    assert redeem(client, "reset_password", newer).status_code == 204


def test_signup_verification_token_after_a_refused_production_login_answers_token_superseded(
    build, inbox
):
    """EM-03, D-9, DATA-01: the fresh link a refused login mails voids the sign-up's link (the
    resend route is checked in test_verification.py); the old one writes nothing."""
    app = build("production")
    client = app.test_client()
    older = signed_up(app, inbox)
    assert_problem(login(client), 403, "email_not_verified")
    newer = token_in(delivered_one(inbox, app, subject=VERIFY_SUBJECT).message)
    before = snapshot(app)

    response = redeem(client, "verify_email", older)

    assert_problem(response, 400, "token_superseded")
    assert snapshot(app) == before
    assert redeem(client, "verify_email", newer).status_code == 204
    assert login(client).status_code == 200


# --- Bound to their purpose -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "elsewhere"),
    [
        ("reset_password", "verify_email"),
        ("reset_password", "change_email"),
        ("verify_email", "reset_password"),
        ("change_email", "reset_password"),
    ],
    ids=["reset-at-verify", "reset-at-change", "verify-at-reset", "change-at-reset"],
)
def test_token_at_another_flows_endpoint_answers_token_unknown_and_stays_usable(
    build, inbox, purpose, elsewhere
):
    """EM-02, DATA-01: a token is only ever looked up among its own purpose's; the wrong door
    writes nothing and spends nothing. (Change tokens at verify-email and verification tokens
    at the change confirmation: test_email_change.py.)"""
    app = build()
    client = app.test_client()
    token = token_for(app, inbox, purpose)
    before = snapshot(app)

    response = redeem(client, elsewhere, token)

    assert_problem(response, 400, "token_unknown")
    assert snapshot(app) == before
    assert inbox.deliver(app) == []
    assert redeem(client, purpose, token).status_code == 204


# --- Tokens never issued ----------------------------------------------------------------------


@pytest.mark.parametrize("purpose", PURPOSES)
def test_random_well_formed_token_answers_token_unknown_and_changes_nothing(build, inbox, purpose):
    """EM-02, DATA-01: 256 fresh random bits match nothing, with a live token of the purpose
    in the table."""
    app = build()
    token_for(app, inbox, purpose)
    before = snapshot(app)

    response = redeem(app.test_client(), purpose, secrets.token_urlsafe(32))

    assert_problem(response, 400, "token_unknown")
    assert snapshot(app) == before


@pytest.mark.parametrize("shape", list(MALFORMED))
@pytest.mark.parametrize("purpose", PURPOSES)
def test_near_miss_of_a_live_token_answers_token_malformed_and_changes_nothing(
    build, inbox, purpose, shape
):
    """EM-02, DATA-01: one character short or long, or a character outside base64url, and the
    token is refused for its shape; the live token it resembles still works."""
    app = build()
    client = app.test_client()
    token = token_for(app, inbox, purpose)
    before = snapshot(app)

    response = redeem(client, purpose, MALFORMED[shape](token))

    assert_problem(response, 400, "token_malformed")
    assert snapshot(app) == before
    assert redeem(client, purpose, token).status_code == 204


# --- Races ------------------------------------------------------------------------------------


def test_parallel_confirmations_of_one_reset_token_have_exactly_one_winner(build, inbox):
    """EM-03: five confirmations at once, each with its own password: one 204, four
    token_used; the winner's password is the account's, and one notice is mailed."""
    app = build(MAIL_RATE_LIMIT_PER_ACCOUNT="1000/hour")
    passwords = [f"racing passphrase number {n}" for n in range(RACERS)]
    for attempt in range(REPEATS):
        email = f"racer-{attempt}@example.com"
        signed_up(app, inbox, email)
        token = reset_token(app, inbox, email)

        responses = race(
            app,
            [
                partial(redeem, purpose="reset_password", token=token, new_password=password)
                for password in passwords
            ],
        )

        assert Counter(r.status_code for r in responses) == Counter({204: 1, 400: 4}), attempt
        for response in responses:
            if response.status_code == 400:
                assert_problem(response, 400, "token_used")
        [winner] = [p for p, r in zip(passwords, responses, strict=True) if r.status_code == 204]
        client = app.test_client()
        assert login(client, email, winner).status_code == 200, attempt
        loser = next(p for p in passwords if p != winner)
        assert_problem(login(client, email, loser), 401, "invalid_credentials")
        notices = [m for m in inbox.deliver(app) if m.message["Subject"] == NOTICE_SUBJECT]
        assert [m.rcpt_tos for m in notices] == [[email]], attempt


def test_parallel_confirmations_on_the_real_clock_lose_with_token_used_never_superseded(
    build, inbox
):
    """EM-03: on the system clock the winner's password change is later than the token, so a
    loser that reads the account after the winner committed must still answer token_used."""
    app = build(MAIL_RATE_LIMIT_PER_ACCOUNT="1000/hour")
    app.extensions["gatehouse"].clock = SystemClock()
    for attempt in range(REPEATS):
        email = f"clocked-{attempt}@example.com"
        signed_up(app, inbox, email)
        token = reset_token(app, inbox, email)

        responses = race(
            app,
            [
                partial(redeem, purpose="reset_password", token=token, new_password=password)
                for password in [f"racing passphrase number {n}" for n in range(RACERS)]
            ],
        )

        codes = Counter(
            r.get_json()["code"] if r.status_code == 400 else r.status_code for r in responses
        )
        assert codes == Counter({204: 1, "token_used": RACERS - 1}), attempt
        inbox.deliver(app)  # the "password changed" notice, out of the next round's way


def test_parallel_verifications_of_one_token_have_exactly_one_winner(build, inbox):
    """EM-03: five verify-email calls at once with one token: one 204, four token_used."""
    app = build()
    for attempt in range(REPEATS):
        email = f"racer-{attempt}@example.com"
        token = signed_up(app, inbox, email)

        responses = race(app, [partial(redeem, purpose="verify_email", token=token)] * RACERS)

        assert Counter(r.status_code for r in responses) == Counter({204: 1, 400: 4}), attempt
        for response in responses:
            if response.status_code == 400:
                assert_problem(response, 400, "token_used")
        assert account(app, email).email_verified is True
        [row] = [r for r in token_rows(app) if r.token_hash == digest(token)]
        assert row.used_at is not None
