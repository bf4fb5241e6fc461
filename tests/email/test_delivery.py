"""The requests that cause mail never depend on the SMTP server (SECURITY.md REL-11, EM-01).

Sign-up, a reset request and an email-change request only write to the outbox; the sender, run
here one pass at a time with ``inbox.deliver(app)``, is the only thing that talks SMTP. So a
server that is down, refuses a recipient or hangs changes nothing in what the request answers,
and mail queued during an outage goes, once, when the server is back. Time is the app's frozen
clock: backoff is crossed by moving it, never by sleeping.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models.outbox import OutboxMessage
from app.services.mail import MAX_RETRY_DELAY
from tests.email.conftest import Inbox
from tests.email.test_password_reset import (
    NEW_PASSWORD,
    RESET_SUBJECT,
    confirm,
    delivered_one,
    login,
    request_reset,
    sign_up,
)
from tests.helpers import STRONG_PASSWORD, token_in
from tests.mail.conftest import SmtpServer

ADA = "ada@example.com"
NEW_ADDRESS = "ada.new@example.org"
GONE = "gone@example.com"
SIGNUP = "/api/v1/accounts"
VERIFY = "/api/v1/auth/verify-email"
CHANGE = "/api/v1/accounts/me/email"
CHANGE_CONFIRM = "/api/v1/accounts/me/email/confirm"
VERIFY_SUBJECT = "Verify your email address"
CHANGE_SUBJECT = "Confirm your new email address"
REQUESTED_SUBJECT = "A change of your email address was requested"
RETRY_SECONDS = 30  # MAIL_RETRY_BASE_SECONDS: the wait after a first failed attempt
MAX_ATTEMPTS = 3  # MAIL_MAX_ATTEMPTS, kept small


class HangingServer:
    """A port that listens and never accepts: an SMTP server that hangs before its greeting.

    The kernel completes a connection into the listen queue before ``connect`` returns, so
    ``connected()`` tells at once, without waiting, whether anyone has connected so far.
    """

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.port = self.socket.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.socket, selectors.EVENT_READ)

    def connected(self) -> bool:
        return bool(self._selector.select(timeout=0))

    def close(self) -> None:
        self._selector.close()
        self.socket.close()


@pytest.fixture
def build(build):
    """The email suite's ``build``, with this file's retry timing."""

    def make(config_name: str = "testing", **overrides) -> Flask:
        overrides.setdefault("MAIL_RETRY_BASE_SECONDS", RETRY_SECONDS)
        overrides.setdefault("MAIL_MAX_ATTEMPTS", MAX_ATTEMPTS)
        return build(config_name, **overrides)

    return make


@pytest.fixture
def hanging_server() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()


# --- Steps ------------------------------------------------------------------------------------


def clock_of(app: Flask):
    return app.extensions["gatehouse"].clock


def post_signup(client, email: str = ADA):
    return client.post(SIGNUP, json={"email": email, "password": STRONG_PASSWORD})


def bearer(client, email: str = ADA) -> dict[str, str]:
    response = login(client, email)
    assert response.status_code == 200, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def request_change(client, headers: dict[str, str], new_email: str = NEW_ADDRESS):
    return client.post(
        CHANGE, json={"new_email": new_email, "password": STRONG_PASSWORD}, headers=headers
    )


def outbox(app: Flask, *, besides: str | None = None) -> list[tuple[str, str, str, int]]:
    """The outbox rows (but those of the template ``besides``) as (to, template, status,
    attempts), ordered by template and address."""
    with app.app_context():
        rows = db.session.execute(
            select(
                OutboxMessage.to_address,
                OutboxMessage.template,
                OutboxMessage.status,
                OutboxMessage.attempts,
            ).order_by(OutboxMessage.template, OutboxMessage.to_address)
        ).all()
        db.session.remove()
    return [tuple(row) for row in rows if row.template != besides]


def subjects(inbox: Inbox, address: str) -> list[str]:
    return [m.message["Subject"] for m in inbox.to(address)]


def retry_due(app: Flask) -> None:
    """Move the clock past the longest backoff: every retried message is due again."""
    clock_of(app).advance(seconds=MAX_RETRY_DELAY.total_seconds())


def later(app: Flask) -> None:
    """Move the clock past any backoff of a second or third attempt, within a link's life."""
    clock_of(app).advance(minutes=5)


# --- The server is down -----------------------------------------------------------------------


def test_signup_with_smtp_down_answers_as_usual_and_its_link_goes_once_the_server_is_back(
    build, inbox, smtp_server: SmtpServer
):
    """REL-11: the sign-up answers 202 (production) without touching SMTP; a pass during the
    outage sends nothing and keeps the message; after recovery it goes once and its link
    verifies the address, so the account logs in."""
    app = build("production")
    client = app.test_client()
    smtp_server.stop()

    response = post_signup(client)

    assert response.status_code == 202, response.get_json()
    assert outbox(app) == [(ADA, "verify_email", "pending", 0)]
    assert inbox.deliver(app) == []
    assert outbox(app) == [(ADA, "verify_email", "pending", 1)]

    smtp_server.start()
    clock_of(app).advance(seconds=RETRY_SECONDS)
    delivered = delivered_one(inbox, app, ADA, VERIFY_SUBJECT)
    later(app)
    assert inbox.deliver(app) == []
    assert subjects(inbox, ADA) == [VERIFY_SUBJECT]
    assert outbox(app) == [(ADA, "verify_email", "sent", 2)]

    assert client.post(VERIFY, json={"token": token_in(delivered.message)}).status_code == 204
    assert login(client).status_code == 200


def test_reset_request_with_smtp_down_answers_202_and_its_link_goes_once_the_server_is_back(
    build, inbox, smtp_server: SmtpServer
):
    """REL-11, EM-01: the request answers 202 having written only its job; the pass during the
    outage runs the job and keeps the link's message; after recovery it goes once and the
    link sets the password."""
    app = build()
    client = app.test_client()
    sign_up(app, inbox, verified=True)
    smtp_server.stop()

    response = request_reset(client)

    assert response.status_code == 202
    assert outbox(app, besides="verify_email") == [("", "job:password_reset", "pending", 0)]
    assert inbox.deliver(app) == []
    assert outbox(app, besides="verify_email") == [(ADA, "reset_password", "pending", 1)]

    smtp_server.start()
    clock_of(app).advance(seconds=RETRY_SECONDS)
    delivered = delivered_one(inbox, app, ADA, RESET_SUBJECT)
    later(app)
    assert inbox.deliver(app) == []
    assert subjects(inbox, ADA) == [VERIFY_SUBJECT, RESET_SUBJECT]

    assert confirm(client, token_in(delivered.message)).status_code == 204
    assert login(client, password=NEW_PASSWORD).status_code == 200


def test_email_change_request_with_smtp_down_answers_202_and_its_links_go_once_the_server_is_back(
    build, inbox, smtp_server: SmtpServer
):
    """REL-11: the request answers 202; the pass during the outage stops at the first message
    (the other spends no attempt); after recovery each goes once and the link moves the
    account to the new address."""
    app = build()
    client = app.test_client()
    sign_up(app, inbox)
    headers = bearer(client)
    smtp_server.stop()

    response = request_change(client, headers)

    assert response.status_code == 202, response.get_json()
    assert outbox(app, besides="verify_email") == [
        (NEW_ADDRESS, "email_change_confirm", "pending", 0),
        (ADA, "email_change_requested", "pending", 0),
    ]
    assert inbox.deliver(app) == []
    after_pass = outbox(app, besides="verify_email")
    assert [status for _, _, status, _ in after_pass] == ["pending", "pending"]
    assert sorted(attempts for *_, attempts in after_pass) == [0, 1]

    smtp_server.start()
    clock_of(app).advance(seconds=RETRY_SECONDS)
    assert len(inbox.deliver(app)) == 2
    later(app)
    assert inbox.deliver(app) == []
    assert subjects(inbox, ADA) == [VERIFY_SUBJECT, REQUESTED_SUBJECT]
    assert subjects(inbox, NEW_ADDRESS) == [CHANGE_SUBJECT]

    token = token_in(inbox.last_to(NEW_ADDRESS).message)
    assert client.post(CHANGE_CONFIRM, json={"token": token}).status_code == 204
    assert login(client, NEW_ADDRESS).status_code == 200


# --- The server refuses the recipient ---------------------------------------------------------


def test_signup_of_an_address_the_server_refuses_answers_201_and_its_mail_fails_for_good(
    build, inbox, smtp_server: SmtpServer
):
    """REL-11: a 550 costs attempts, never the request; after MAIL_MAX_ATTEMPTS passes the
    message is failed and nothing was delivered; the next sign-up's mail still goes."""
    app = build()
    client = app.test_client()
    smtp_server.refuse.add(GONE)

    response = post_signup(client, GONE)

    assert response.status_code == 201, response.get_json()
    for _ in range(MAX_ATTEMPTS):
        assert inbox.deliver(app) == []
        retry_due(app)
    assert outbox(app) == [(GONE, "verify_email", "failed", MAX_ATTEMPTS)]
    assert inbox.deliver(app) == []
    assert smtp_server.messages == []

    assert post_signup(client).status_code == 201
    delivered = delivered_one(inbox, app, ADA, VERIFY_SUBJECT)
    assert client.post(VERIFY, json={"token": token_in(delivered.message)}).status_code == 204


def test_reset_request_for_an_address_the_server_refuses_answers_202_and_its_mail_fails_for_good(
    build, inbox, smtp_server: SmtpServer
):
    """REL-11, EM-01: the request answers as for any address; the link's message fails after
    MAIL_MAX_ATTEMPTS passes, undelivered; a reset for another address still goes and works."""
    app = build()
    client = app.test_client()
    sign_up(app, inbox, GONE)
    sign_up(app, inbox, ADA)
    smtp_server.refuse.add(GONE)

    response = request_reset(client, GONE)

    assert response.status_code == 202
    for _ in range(MAX_ATTEMPTS):
        assert inbox.deliver(app) == []
        retry_due(app)
    assert [row for row in outbox(app) if row[1] == "reset_password"] == [
        (GONE, "reset_password", "failed", MAX_ATTEMPTS)
    ]
    assert inbox.deliver(app) == []
    assert subjects(inbox, GONE) == [VERIFY_SUBJECT]

    assert request_reset(client, ADA).status_code == 202
    delivered = delivered_one(inbox, app, ADA, RESET_SUBJECT)
    assert confirm(client, token_in(delivered.message)).status_code == 204
    assert login(client, password=NEW_PASSWORD).status_code == 200


def test_email_change_to_an_address_the_server_refuses_answers_202_and_its_link_fails_for_good(
    build, inbox, smtp_server: SmtpServer
):
    """REL-11: the confirmation link to the refused address fails after MAIL_MAX_ATTEMPTS
    passes, undelivered; the notice to the current address goes; a change to another address
    still delivers its link."""
    app = build(MAIL_RATE_LIMIT_PER_ACCOUNT="1000/hour")
    client = app.test_client()
    sign_up(app, inbox)
    headers = bearer(client)
    smtp_server.refuse.add(GONE)

    response = request_change(client, headers, GONE)

    assert response.status_code == 202, response.get_json()
    for _ in range(MAX_ATTEMPTS):
        inbox.deliver(app)
        retry_due(app)
    assert [row for row in outbox(app) if row[1] == "email_change_confirm"] == [
        (GONE, "email_change_confirm", "failed", MAX_ATTEMPTS)
    ]
    assert inbox.to(GONE) == []
    assert subjects(inbox, ADA) == [VERIFY_SUBJECT, REQUESTED_SUBJECT]

    assert request_change(client, bearer(client)).status_code == 202  # hours on: a new login
    inbox.deliver(app)
    token = token_in(inbox.last_to(NEW_ADDRESS).message)
    assert client.post(CHANGE_CONFIRM, json={"token": token}).status_code == 204


# --- No request talks SMTP --------------------------------------------------------------------


def signup_request(client) -> None:
    assert post_signup(client).status_code == 201


def reset_request(client) -> None:
    assert post_signup(client).status_code == 201
    assert request_reset(client).status_code == 202


def change_request(client) -> None:
    assert post_signup(client).status_code == 201
    assert request_change(client, bearer(client)).status_code == 202


REQUESTS: dict[str, Callable] = {
    "signup": signup_request,
    "reset": reset_request,
    "change": change_request,
}


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_requests_with_a_hanging_smtp_server_make_no_connection_and_attempt_no_mail(
    build, inbox, hanging_server: HangingServer, kind
):
    """REL-11: the requests never connect to the server, so its timeout is never part of their
    latency: right after them nothing has connected and every outbox row is pending with no
    attempt. (Then a sender pass does connect, and times out: the probe sees connections.)"""
    app = build(MAIL_PORT=hanging_server.port, MAIL_TIMEOUT_SECONDS=0.5)

    REQUESTS[kind](app.test_client())

    assert not hanging_server.connected()
    queued = outbox(app)
    assert queued and {(status, attempts) for *_, status, attempts in queued} == {("pending", 0)}

    assert inbox.deliver(app) == []
    assert hanging_server.connected()
    assert sorted(attempts for *_, attempts in outbox(app)) == [0] * (len(queued) - 1) + [1]
