"""Changing an account's address, end to end through a real SMTP server (EM-06, D-2).

Every token a test uses is read from the link of a message the SMTP server received, as a
person would follow it; the database is read only to check what changed (and what did not).
"""

from __future__ import annotations

import os
import secrets
import threading
import uuid
from collections import Counter

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import Account, AccountToken
from tests.email.conftest import Inbox
from tests.helpers import (
    STRONG_PASSWORD,
    ApiActions,
    Tokens,
    assert_problem,
    snapshot,
    token_in,
)

# Races are repeated: 50 times on PostgreSQL (SECURITY.md), a few on SQLite.
REPEATS = 50 if os.environ.get("TEST_DATABASE_URL") else 5
# Every test names its own addresses; a generous mail budget keeps it out of the way of the
# budgets other tests spend (Redis is shared by the run).
BUDGET = {"MAIL_RATE_LIMIT_PER_ACCOUNT": "1000/hour"}
CONFIRM_SUBJECT = "Confirm your new email address"
REQUESTED_SUBJECT = "A change of your email address was requested"
CHANGED_SUBJECT = "Your email address was changed"
TAKEN_SUBJECT = "Someone tried to use your email address"
ACCEPTED = {
    "detail": "A message with a link to confirm the change is on its way to the new address; "
    "the address changes when the link is followed."
}


# --- Steps ------------------------------------------------------------------------------------


def build(flow_app, config_name: str = "testing", **overrides) -> tuple[Flask, ApiActions]:
    app = flow_app(config_name, **{**BUDGET, **overrides})
    return app, ApiActions(app.test_client())


def member(app: Flask, inbox: Inbox, api: ApiActions, email: str) -> Tokens:
    """Sign up (verified where logins need it) and log in; the sign-up's mail is delivered."""
    tokens = api.signup_and_login(email)
    inbox.deliver(app)
    return tokens


def request_change(api: ApiActions, tokens: Tokens, new_email: str, password=STRONG_PASSWORD):
    return api.client.post(
        "/api/v1/accounts/me/email",
        json={"new_email": new_email, "password": password},
        headers=tokens.headers,
    )


def confirm(client, token: str):
    """No Authorization: the token is the credential."""
    return client.post("/api/v1/accounts/me/email/confirm", json={"token": token})


def delivered(inbox: Inbox, to: str, subject: str) -> list:
    return [m for m in inbox.to(to) if m.message["Subject"] == subject]


def confirm_token(app: Flask, inbox: Inbox, new_email: str) -> str:
    """Deliver the outbox; the token of the last confirmation link the new address received."""
    inbox.deliver(app)
    messages = delivered(inbox, new_email, CONFIRM_SUBJECT)
    assert messages, f"no confirmation link reached {new_email}"
    return token_in(messages[-1].message)


def login(api: ApiActions, email: str, password: str = STRONG_PASSWORD):
    return api.client.post("/api/v1/auth/login", json={"email": email, "password": password})


def addresses(app: Flask) -> dict[str, tuple[str, bool]]:
    """Every account: id -> (email, email_verified), as the database holds them."""
    with app.app_context():
        rows = db.session.execute(select(Account.id, Account.email, Account.email_verified)).all()
        db.session.remove()
    return {str(row.id): (row.email, row.email_verified) for row in rows}


def owners_of(app: Flask, email: str) -> list[str]:
    return [key for key, (address, _) in addresses(app).items() if address == email]


def change_tokens(app: Flask) -> list[AccountToken]:
    with app.app_context():
        rows = db.session.scalars(
            select(AccountToken).where(AccountToken.purpose == "change_email")
        ).all()
        db.session.expunge_all()
        db.session.remove()
    return list(rows)


# --- Asking for a change ----------------------------------------------------------------------


def test_change_request_answers_202_and_mails_a_confirmation_link_to_the_new_address(
    flow_app, inbox
):
    """EM-06: the new address gets a one-time link to Gatehouse's confirmation page."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")

    response = request_change(api, ada, "ada.new@example.org")

    assert response.status_code == 202
    assert response.get_json() == ACCEPTED
    inbox.deliver(app)
    [message] = delivered(inbox, "ada.new@example.org", CONFIRM_SUBJECT)
    assert message.rcpt_tos == ["ada.new@example.org"]
    token = token_in(message.message)
    assert len(token) == 43
    assert f"/account/confirm-email#token={token}" in message.text
    assert f"/account/confirm-email#token={token}" in message.html


def test_change_request_mails_the_current_address_a_notice_naming_the_new_one(flow_app, inbox):
    """EM-06, EM-07: the owner of the current address hears of it, with no link."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")

    request_change(api, ada, "ada.new@example.org")
    inbox.deliver(app)

    [notice] = delivered(inbox, "ada@example.com", REQUESTED_SUBJECT)
    assert "ada.new@example.org" in notice.text
    assert "token" not in notice.text.lower() and "http" not in notice.text


def test_change_request_changes_nothing_until_the_link_is_followed(flow_app, inbox):
    """EM-06: the account keeps its address and its login until confirmation."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    before = addresses(app)

    request_change(api, ada, "ada.new@example.org")
    inbox.deliver(app)

    assert addresses(app) == before
    assert api.me(ada.access_token).get_json()["email"] == "ada@example.com"
    assert login(api, "ada@example.com").status_code == 200
    assert_problem(login(api, "ada.new@example.org"), 401, "invalid_credentials")


def test_change_request_with_a_wrong_password_answers_400_and_mails_nothing(flow_app, inbox):
    """EM-06, PWD-08: 400 current_password_incorrect (never 401); no token, no message."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")

    response = request_change(api, ada, "ada.new@example.org", password="not my password")

    body = assert_problem(response, 400, "current_password_incorrect")
    assert body["errors"][0]["field"] == "password"
    assert inbox.deliver(app) == []
    assert change_tokens(app) == []


@pytest.mark.parametrize(
    "same",
    ["ada@example.com", "ADA@Example.COM", "Ada@EXAMPLE.com"],
    ids=["exact", "upper", "mixed"],
)
def test_change_request_to_the_current_address_in_any_case_answers_400_email_unchanged(
    flow_app, inbox, same
):
    """EM-06, LOG-03: case variants are the same address; nothing is issued or mailed."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")

    response = request_change(api, ada, same)

    body = assert_problem(response, 400, "email_unchanged")
    assert body["errors"][0]["field"] == "new_email"
    assert inbox.deliver(app) == []
    assert change_tokens(app) == []


@pytest.mark.parametrize("invalid", ["not-an-address", "ada@", "@example.org", "a b@example.org"])
def test_change_request_to_an_invalid_address_answers_400_invalid_email(flow_app, inbox, invalid):
    """EM-06: nothing is issued or mailed for what cannot be an address."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")

    response = request_change(api, ada, invalid)

    body = assert_problem(response, 400, "invalid_email")
    assert body["errors"][0]["field"] == "new_email"
    assert inbox.deliver(app) == []
    assert change_tokens(app) == []


def test_change_request_to_another_accounts_address_answers_409_in_testing_config(flow_app, inbox):
    """D-2 off: the taken address is refused outright; nothing is issued or mailed."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    member(app, inbox, api, "bob@example.com")

    response = request_change(api, ada, "BOB@example.com")

    assert_problem(response, 409, "email_taken")
    assert inbox.deliver(app) == []
    assert change_tokens(app) == []


def test_change_request_to_a_taken_address_in_production_answers_as_for_a_free_one(flow_app, inbox):
    """D-2: the same status and body whether the address is free or another account's."""
    app, api = build(flow_app, "production")
    ada = member(app, inbox, api, "ada@example.com")
    cy = member(app, inbox, api, "cy@example.com")
    member(app, inbox, api, "bob@example.com")

    free = request_change(api, cy, "cy.new@example.org")
    taken = request_change(api, ada, "bob@example.com")

    assert (taken.status_code, taken.get_json()) == (free.status_code, free.get_json())
    assert taken.status_code == 202
    assert taken.get_json() == ACCEPTED


def test_change_request_to_a_taken_address_in_production_issues_no_token(flow_app, inbox):
    """D-2: no confirmation link exists for an address another account has."""
    app, api = build(flow_app, "production")
    ada = member(app, inbox, api, "ada@example.com")
    member(app, inbox, api, "bob@example.com")

    request_change(api, ada, "Bob@Example.com")
    inbox.deliver(app)

    assert change_tokens(app) == []
    assert delivered(inbox, "bob@example.com", CONFIRM_SUBJECT) == []
    assert delivered(inbox, "Bob@Example.com", CONFIRM_SUBJECT) == []


def test_change_request_to_a_taken_address_in_production_tells_the_owner_without_a_link(
    flow_app, inbox
):
    """D-2, EM-07: the address's owner gets an email_change_taken notice, secret-free."""
    app, api = build(flow_app, "production")
    ada = member(app, inbox, api, "ada@example.com")
    member(app, inbox, api, "bob@example.com")

    request_change(api, ada, "bob@example.com")
    inbox.deliver(app)

    [notice] = delivered(inbox, "bob@example.com", TAKEN_SUBJECT)
    assert "token" not in notice.text.lower() and "http" not in notice.text
    assert "ada@example.com" not in notice.text  # the other account's address stays private
    assert [m.message["Subject"] for m in inbox.to("bob@example.com")][-1] == TAKEN_SUBJECT


# --- Confirming -------------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", ["testing", "production"])
def test_confirm_with_the_mailed_token_gives_the_account_the_new_address_verified(
    flow_app, inbox, config_name
):
    """EM-06: 204, no login needed; the account has the new address, verified."""
    app, api = build(flow_app, config_name)
    ada = member(app, inbox, api, "ada@example.com")
    request_change(api, ada, "ada.new@example.org")
    token = confirm_token(app, inbox, "ada.new@example.org")

    response = app.test_client().post("/api/v1/accounts/me/email/confirm", json={"token": token})

    assert response.status_code == 204
    assert response.get_data() == b""
    me = api.me(ada.access_token).get_json()
    assert (me["email"], me["email_verified"]) == ("ada.new@example.org", True)
    assert list(addresses(app).values()) == [("ada.new@example.org", True)]


@pytest.mark.parametrize("config_name", ["testing", "production"])
def test_after_confirm_login_works_with_the_new_address_and_not_the_old(
    flow_app, inbox, config_name
):
    """EM-06: the new address logs in (verified, so production's D-9 lets it); the old does not."""
    app, api = build(flow_app, config_name)
    ada = member(app, inbox, api, "ada@example.com")
    request_change(api, ada, "ada.new@example.org")
    confirm(api.client, confirm_token(app, inbox, "ada.new@example.org"))

    assert login(api, "ada.new@example.org").status_code == 200
    assert login(api, "ADA.NEW@example.org").status_code == 200
    assert_problem(login(api, "ada@example.com"), 401, "invalid_credentials")


def test_confirm_mails_the_old_address_an_email_changed_notice(flow_app, inbox):
    """EM-06, EM-07: the old address is told where the account went; no link, no token."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    request_change(api, ada, "ada.new@example.org")
    confirm(api.client, confirm_token(app, inbox, "ada.new@example.org"))

    arrived = inbox.deliver(app)

    assert [(m.rcpt_tos, m.message["Subject"]) for m in arrived] == [
        (["ada@example.com"], CHANGED_SUBJECT)
    ]
    assert "ada.new@example.org" in arrived[0].text
    assert "token" not in arrived[0].text.lower() and "http" not in arrived[0].text


def test_confirm_a_second_time_answers_400_token_used(flow_app, inbox):
    """EM-03: single use."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    request_change(api, ada, "ada.new@example.org")
    token = confirm_token(app, inbox, "ada.new@example.org")
    assert confirm(api.client, token).status_code == 204

    assert_problem(confirm(api.client, token), 400, "token_used")


def test_newer_change_request_supersedes_the_earlier_link(flow_app, inbox):
    """EM-03: only the latest link works; the earlier one answers token_superseded."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    request_change(api, ada, "first@example.org")
    first = confirm_token(app, inbox, "first@example.org")
    request_change(api, ada, "second@example.org")
    second = confirm_token(app, inbox, "second@example.org")

    assert_problem(confirm(api.client, first), 400, "token_superseded")
    assert owners_of(app, "first@example.org") == []
    assert confirm(api.client, second).status_code == 204
    assert [email for email, _ in addresses(app).values()] == ["second@example.org"]


def test_confirm_after_the_link_expired_answers_400_token_expired_and_changes_nothing(
    flow_app, inbox, clock_factory
):
    """EM-03: the link lives EMAIL_CHANGE_TOKEN_LIFETIME_SECONDS (30 min), not a second more."""
    app, api = build(flow_app)
    clock = clock_factory(app)
    ada = member(app, inbox, api, "ada@example.com")
    request_change(api, ada, "ada.new@example.org")
    token = confirm_token(app, inbox, "ada.new@example.org")

    clock.advance(seconds=1800)

    assert_problem(confirm(api.client, token), 400, "token_expired")
    assert list(addresses(app).values()) == [("ada@example.com", False)]


def test_confirm_just_before_the_link_expires_succeeds(flow_app, inbox, clock_factory):
    """EM-03: the boundary: one second short of 30 minutes still works."""
    app, api = build(flow_app)
    clock = clock_factory(app)
    ada = member(app, inbox, api, "ada@example.com")
    request_change(api, ada, "ada.new@example.org")
    token = confirm_token(app, inbox, "ada.new@example.org")

    clock.advance(seconds=1799)

    assert confirm(api.client, token).status_code == 204


@pytest.mark.parametrize(
    "token",
    ["", "short", "x" * 44, "!" * 43, "a" * 42 + "="],
    ids=["empty", "short", "long", "punct", "pad"],
)
def test_confirm_with_a_malformed_token_answers_400_token_malformed(flow_app, token):
    """EM-02: anything not shaped like one of our tokens is refused before any lookup."""
    _app, api = build(flow_app)

    assert_problem(confirm(api.client, token), 400, "token_malformed")


def test_confirm_with_a_token_never_issued_answers_400_token_unknown(flow_app, inbox):
    """EM-02: a well-formed random token matches nothing."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    request_change(api, ada, "ada.new@example.org")
    inbox.deliver(app)

    assert_problem(confirm(api.client, secrets.token_urlsafe(32)), 400, "token_unknown")
    assert list(addresses(app).values()) == [("ada@example.com", False)]


def test_change_token_at_verify_email_answers_token_unknown_and_stays_usable(flow_app, inbox):
    """EM-02: tokens are bound to their purpose; the failed use spends nothing."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    request_change(api, ada, "ada.new@example.org")
    token = confirm_token(app, inbox, "ada.new@example.org")

    response = api.client.post("/api/v1/auth/verify-email", json={"token": token})

    assert_problem(response, 400, "token_unknown")
    assert confirm(api.client, token).status_code == 204


def test_verification_token_at_email_change_confirm_answers_token_unknown(flow_app, inbox):
    """EM-02: a verify-email link cannot move an account to another address."""
    app, api = build(flow_app)
    api.signup("ada@example.com")
    [verification] = inbox.deliver(app)

    assert_problem(confirm(api.client, token_in(verification.message)), 400, "token_unknown")


def test_confirm_voids_the_verification_links_of_the_old_address(flow_app, inbox):
    """EM-06: a verify-email link sent to the old address has nothing left to verify."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    old_link = token_in(inbox.last_to("ada@example.com").message)
    request_change(api, ada, "ada.new@example.org")
    confirm(api.client, confirm_token(app, inbox, "ada.new@example.org"))

    response = api.client.post("/api/v1/auth/verify-email", json={"token": old_link})

    assert_problem(response, 400, "token_superseded")


# --- Two accounts, one address (EM-06) --------------------------------------------------------


def test_confirm_after_another_account_took_the_address_answers_409_and_changes_nothing(
    flow_app, inbox
):
    """EM-06: uniqueness is checked again at confirmation; the loser keeps its address."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    request_change(api, ada, "shared@example.org")
    token = confirm_token(app, inbox, "shared@example.org")
    member(app, inbox, api, "Shared@Example.org")  # signs up with the address meanwhile
    before = snapshot(app)

    response = confirm(api.client, token)

    assert_problem(response, 409, "email_taken")
    assert snapshot(app) == before
    assert inbox.deliver(app) == []
    assert api.me(ada.access_token).get_json()["email"] == "ada@example.com"


def test_second_of_two_accounts_confirming_one_address_in_turn_answers_409(flow_app, inbox):
    """EM-06, sequential: the first confirmation wins; the second gets 409 and keeps its own."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    bob = member(app, inbox, api, "bob@example.com")
    request_change(api, ada, "shared@example.org")
    request_change(api, bob, "shared@example.org")
    inbox.deliver(app)
    ada_token, bob_token = (
        token_in(m.message) for m in delivered(inbox, "shared@example.org", CONFIRM_SUBJECT)
    )

    assert confirm(api.client, ada_token).status_code == 204
    assert_problem(confirm(api.client, bob_token), 409, "email_taken")

    assert api.me(ada.access_token).get_json()["email"] == "shared@example.org"
    assert api.me(bob.access_token).get_json()["email"] == "bob@example.com"
    assert len(owners_of(app, "shared@example.org")) == 1


def race_confirmations(apps: list[Flask], tokens: list[str]) -> list:
    """Confirm each token from its own thread and test client, released at one barrier."""
    barrier = threading.Barrier(len(tokens))
    responses: list = [None] * len(tokens)
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        client = apps[index % len(apps)].test_client()
        try:
            barrier.wait(timeout=30)
            responses[index] = confirm(client, tokens[index])
        except BaseException as exc:  # reported in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a confirmation hung"
    assert failures == [], failures
    return responses


def test_two_accounts_confirming_one_address_at_once_get_one_204_and_one_409(flow_app, inbox):
    """EM-06: simultaneous confirmations on two instances: exactly one wins, no 5xx, and
    exactly one account ends up with the address (the unique index decides)."""
    app, api = build(flow_app)
    other_instance = flow_app(**BUDGET)
    for attempt in range(REPEATS):
        shared = f"shared-{attempt}@example.org"
        ada = member(app, inbox, api, f"ada-{attempt}@example.com")
        bob = member(app, inbox, api, f"bob-{attempt}@example.com")
        request_change(api, ada, shared)
        request_change(api, bob, shared)
        inbox.deliver(app)
        tokens = [token_in(m.message) for m in delivered(inbox, shared, CONFIRM_SUBJECT)]
        assert len(tokens) == 2

        responses = race_confirmations([app, other_instance], tokens)

        statuses = Counter(r.status_code for r in responses)
        assert statuses == Counter({204: 1, 409: 1}), (attempt, statuses)
        [loser] = [r for r in responses if r.status_code == 409]
        assert_problem(loser, 409, "email_taken")
        everyone = addresses(app)
        pair = {everyone[api.me(t.access_token).get_json()["id"]][0] for t in (ada, bob)}
        assert shared in pair and len(pair) == 2, (attempt, pair)
        assert len(owners_of(app, shared)) == 1, attempt
        # Exactly one "your address was changed" notice: the loser's old address hears nothing.
        changed = [m for m in inbox.deliver(app) if m.message["Subject"] == CHANGED_SUBJECT]
        assert len(changed) == 1, attempt


def test_race_loser_keeps_a_usable_token_that_still_answers_409(flow_app, inbox):
    """EM-06: the loser's rolled-back confirmation spends nothing; retrying is still a 409."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    bob = member(app, inbox, api, "bob@example.com")
    request_change(api, ada, "shared@example.org")
    request_change(api, bob, "shared@example.org")
    inbox.deliver(app)
    ada_token, bob_token = (
        token_in(m.message) for m in delivered(inbox, "shared@example.org", CONFIRM_SUBJECT)
    )
    confirm(api.client, ada_token)
    assert_problem(confirm(api.client, bob_token), 409, "email_taken")

    [bob_row] = [t for t in change_tokens(app) if t.used_at is None]

    assert bob_row.superseded_at is None
    assert_problem(confirm(api.client, bob_token), 409, "email_taken")


def test_unique_id_of_the_account_survives_the_change(flow_app, inbox):
    """JWT-10: ``sub`` is the immutable id; an address change keeps the account and session."""
    app, api = build(flow_app)
    ada = member(app, inbox, api, "ada@example.com")
    account_id = api.me(ada.access_token).get_json()["id"]
    request_change(api, ada, "ada.new@example.org")
    confirm(api.client, confirm_token(app, inbox, "ada.new@example.org"))

    me = api.me(ada.access_token)

    assert me.status_code == 200
    assert me.get_json()["id"] == account_id
    assert uuid.UUID(account_id)
