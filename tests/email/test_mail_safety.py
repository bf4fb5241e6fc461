"""What Gatehouse's mail must never carry or do, end to end through a real SMTP server
(SECURITY.md EM-05, EM-07, EM-08, DATA-01, DATA-03, DATA-04, OPS-01, LOG-01).

Notices carry no secret; every message goes to one address, from ``MAIL_FROM``, marked
auto-generated, with headers no user input can reach; the logs of a whole run of the flows
hold no mailed token, no password and no message body; deleting an account takes its pending
mail and tokens with it; links are built from settings only. What the flows' own files already
check is not repeated: the reset's "password changed" notice (test_password_reset.py) and the
sign-up-attempt notice (test_verification.py) are secret-free; verify and reset links ignore a
forged Host when no proxy is trusted (both files).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, text

from app.extensions import db
from app.models import Account, AccountToken
from app.services.mail import send_pending
from tests.email.conftest import Inbox
from tests.helpers import (
    STRONG_PASSWORD,
    Tokens,
    assert_problem,
    link_in,
    snapshot,
    token_in,
)
from tests.mail.conftest import Delivered

ADA = "ada@example.com"
BOB = "bob@example.com"
NEW_ADDRESS = "ada.new@example.org"
NEW_PASSWORD = "a brand new passphrase for ada"
OTHER_PASSWORD = "someone else's long passphrase"
WRONG = "not the password at all"
SIGNUP = "/api/v1/accounts"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/accounts/me"
VERIFY = "/api/v1/auth/verify-email"
RESET = "/api/v1/auth/password-reset"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm"
CHANGE = "/api/v1/accounts/me/email"
CHANGE_CONFIRM = "/api/v1/accounts/me/email/confirm"
VERIFY_SUBJECT = "Verify your email address"
RESET_SUBJECT = "Reset your password"
PASSWORD_CHANGED_SUBJECT = "Your password was changed"
CONFIRM_SUBJECT = "Confirm your new email address"
REQUESTED_SUBJECT = "A change of your email address was requested"
CHANGED_SUBJECT = "Your email address was changed"
TAKEN_SUBJECT = "Someone tried to use your email address"
SIGNUP_ATTEMPT_SUBJECT = "Someone tried to sign up with your email address"
SUBJECTS = {
    VERIFY_SUBJECT,
    RESET_SUBJECT,
    PASSWORD_CHANGED_SUBJECT,
    CONFIRM_SUBJECT,
    REQUESTED_SUBJECT,
    CHANGED_SUBJECT,
    TAKEN_SUBJECT,
    SIGNUP_ATTEMPT_SUBJECT,
}
# Every header a message has, each once: nothing else (no Cc, Bcc, Reply-To, nothing injected).
HEADERS = {
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
}
TOKEN = r"[A-Za-z0-9_-]{43}"
TOKEN_SHAPED = re.compile(rf"(?<![A-Za-z0-9_-]){TOKEN}(?![A-Za-z0-9_-])")
CONFIGS = ["testing", "production"]
# A generous mail budget: a whole run of the flows stays clear of the per-account limits.
BUDGET = {"MAIL_RATE_LIMIT_PER_ACCOUNT": "1000/hour"}
# The loopback SMTP server's own logger (aiosmtpd): the test's server, not the application.
SMTP_SERVER_LOGGER = "mail.log"


class FileInbox:
    """The messages the file transport (no ``MAIL_SERVER``) wrote, read like an ``Inbox``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seen: set[str] = set()

    def deliver(self, app: Flask) -> list[Delivered]:
        with app.app_context():
            send_pending()
        new = sorted(
            (p for p in self.directory.glob("*.eml") if p.name not in self._seen),
            key=lambda p: p.stat().st_mtime_ns,
        )
        self._seen.update(p.name for p in new)
        messages = []
        for path in new:
            raw = path.read_bytes()
            to = str(BytesParser(policy=policy.default).parsebytes(raw)["To"])
            messages.append(Delivered(mail_from="", rcpt_tos=[to], raw=raw))
        return messages


# --- Steps ------------------------------------------------------------------------------------


@dataclass
class Run:
    """A whole run of the flows: every message that arrived, every secret that was used."""

    app: Flask
    inbox: Inbox | FileInbox
    client: object = None
    messages: list[Delivered] = field(default_factory=list)
    mailed_tokens: list[str] = field(default_factory=list)
    passwords: list[str] = field(default_factory=list)
    bearer_tokens: list[str] = field(default_factory=list)
    change_token: str = ""

    def __post_init__(self) -> None:
        self.client = self.app.test_client()

    def deliver(self) -> list[Delivered]:
        arrived = self.inbox.deliver(self.app)
        self.messages += arrived
        return arrived

    def token_from(self, arrived: list[Delivered], to: str, subject: str) -> str:
        [message] = [m for m in arrived if m.rcpt_tos == [to] and m.message["Subject"] == subject]
        token = token_in(message.message)
        self.mailed_tokens.append(token)
        return token

    def post(self, path: str, expected: int, *, headers=None, **body):
        response = self.client.post(path, json=body, headers=headers or {})
        assert response.status_code == expected, (path, response.get_json())
        return response

    def login(self, email: str, password: str) -> Tokens:
        body = self.post(LOGIN, 200, email=email, password=password).get_json()
        self.bearer_tokens += [body["access_token"], body["refresh_token"]]
        return Tokens(body["access_token"], body["refresh_token"], body)

    def member(self, email: str, password: str) -> Tokens:
        """Sign up, follow the mailed verification link, log in."""
        self.post(SIGNUP, 202 if self.generic else 201, email=email, password=password)
        token = self.token_from(self.deliver(), email, VERIFY_SUBJECT)
        self.post(VERIFY, 204, token=token)
        return self.login(email, password)

    @property
    def generic(self) -> bool:
        return self.app.extensions["gatehouse"].settings.signup_generic_answer


@pytest.fixture
def build(build):
    """The email suite's ``build``, with this file's mail budgets."""

    def make(config_name: str = "testing", **overrides) -> Flask:
        return build(config_name, **{**BUDGET, **overrides})

    return make


def run_every_flow(app: Flask, inbox: Inbox | FileInbox, display_name: str | None = None) -> Run:
    """Sign-up, verification, a failed login, reset request and confirmation, email change
    and confirmation; with generic sign-up (production) also a sign-up with a taken address
    and a change onto a taken address. ``display_name`` is set by PATCH /me after the first
    login, so every later message to the account is rendered with it."""
    run = Run(app, inbox, passwords=[STRONG_PASSWORD, NEW_PASSWORD, OTHER_PASSWORD, WRONG])
    ada = run.member(ADA, STRONG_PASSWORD)
    if display_name is not None:
        response = run.client.patch(ME, json={"display_name": display_name}, headers=ada.headers)
        assert response.status_code == 200, response.get_json()
    run.post(LOGIN, 401, email=ADA, password=WRONG)

    run.post(RESET, 202, email=ADA)
    reset = run.token_from(run.deliver(), ADA, RESET_SUBJECT)
    run.post(RESET_CONFIRM, 204, token=reset, new_password=NEW_PASSWORD)
    assert [m.message["Subject"] for m in run.deliver()] == [PASSWORD_CHANGED_SUBJECT]

    ada = run.login(ADA, NEW_PASSWORD)
    run.post(CHANGE, 202, headers=ada.headers, new_email=NEW_ADDRESS, password=NEW_PASSWORD)
    arrived = run.deliver()
    change = run.change_token = run.token_from(arrived, NEW_ADDRESS, CONFIRM_SUBJECT)
    assert [m.message["Subject"] for m in arrived if m.rcpt_tos == [ADA]] == [REQUESTED_SUBJECT]
    run.post(CHANGE_CONFIRM, 204, token=change)
    assert [(m.rcpt_tos, m.message["Subject"]) for m in run.deliver()] == [([ADA], CHANGED_SUBJECT)]

    if run.generic:
        run.post(SIGNUP, 202, email=NEW_ADDRESS.upper(), password=OTHER_PASSWORD)
        assert [m.message["Subject"] for m in run.deliver()] == [SIGNUP_ATTEMPT_SUBJECT]
        bob = run.member(BOB, OTHER_PASSWORD)
        run.post(CHANGE, 202, headers=bob.headers, new_email=NEW_ADDRESS, password=OTHER_PASSWORD)
        assert sorted((m.rcpt_tos[0], m.message["Subject"]) for m in run.deliver()) == [
            (NEW_ADDRESS, TAKEN_SUBJECT),
            (BOB, REQUESTED_SUBJECT),
        ]
    return run


def every_text_of(delivered: Delivered) -> list[str]:
    """Each header value and each part's decoded content: what a reader of the message sees
    (the raw bytes may be base64, where any 43 characters look like a token)."""
    texts = []
    for part in delivered.message.walk():
        texts += [str(value) for value in part.values()]
        if not part.is_multipart():
            texts.append(part.get_content())
    return texts


def assert_secret_free(delivered: Delivered, *tokens: str) -> None:
    """EM-07: no token of the run, nothing shaped like one, no link with a token, no link."""
    for token in tokens:
        assert token.encode() not in delivered.raw
    for text_ in every_text_of(delivered):
        for token in tokens:
            assert token not in text_
        assert not TOKEN_SHAPED.search(text_), text_
        assert "token" not in text_.lower(), text_
        assert "http" not in text_.lower(), text_


def delivered_to(messages: list[Delivered], to: str, subject: str) -> Delivered:
    [message] = [m for m in messages if m.rcpt_tos == [to] and m.message["Subject"] == subject]
    return message


def log_text(caplog) -> str:
    """Every application log record of the test: message, arguments, extra fields, traceback."""
    lines = []
    for record in caplog.records:
        if record.name.startswith(SMTP_SERVER_LOGGER):
            continue
        lines.append(record.getMessage())
        lines.append(repr(vars(record)))
        if record.exc_info:
            lines.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(lines)


def outbox_rows(app: Flask) -> list[tuple[str, str, str]]:
    with app.app_context():
        rows = db.session.execute(
            text("SELECT to_address, template, status FROM outbox_messages")
        ).all()
        db.session.remove()
    return sorted(tuple(row) for row in rows)


def account_id_of(app: Flask, email: str) -> uuid.UUID:
    with app.app_context():
        account_id = db.session.scalar(select(Account.id).where(Account.email == email))
        db.session.remove()
    assert account_id is not None
    return account_id


def tokens_of_account(app: Flask, account_id: uuid.UUID) -> list[str]:
    with app.app_context():
        rows = db.session.scalars(
            select(AccountToken.purpose).where(AccountToken.account_id == account_id)
        ).all()
        db.session.remove()
    return sorted(rows)


# --- Notices carry no secret (EM-07) ----------------------------------------------------------


@pytest.mark.parametrize("config_name", CONFIGS)
def test_email_change_requested_notice_to_the_old_address_carries_no_secret(
    build, inbox, config_name
):
    """EM-07: mailed in the same transaction as the confirmation link, the notice to the current
    address holds neither that token nor anything shaped like one, in any part or header."""
    run = run_every_flow(build(config_name), inbox)

    notice = delivered_to(run.messages, ADA, REQUESTED_SUBJECT)

    assert NEW_ADDRESS in notice.text
    assert_secret_free(notice, run.change_token, *run.mailed_tokens)


@pytest.mark.parametrize("config_name", CONFIGS)
def test_email_changed_notice_to_the_old_address_carries_no_secret(build, inbox, config_name):
    """EM-07: the notice that the change went through names the new address, not the token
    that made it, nor any other token of the run."""
    run = run_every_flow(build(config_name), inbox)

    notice = delivered_to(run.messages, ADA, CHANGED_SUBJECT)

    assert NEW_ADDRESS in notice.text
    assert_secret_free(notice, *run.mailed_tokens)


def test_email_change_taken_notice_carries_no_secret_and_names_no_one(build, inbox):
    """EM-07, D-2: the owner of an address another account tried to move onto hears of it, with
    no link, no token, and not the other account's address."""
    run = run_every_flow(build("production"), inbox)

    notice = delivered_to(run.messages, NEW_ADDRESS, TAKEN_SUBJECT)

    assert_secret_free(notice, *run.mailed_tokens)
    for text_ in every_text_of(notice):
        assert BOB not in text_


@pytest.mark.parametrize("config_name", CONFIGS)
def test_only_the_three_link_messages_carry_a_token_each_its_own(build, inbox, config_name):
    """EM-07: of every message of a run, only verification, reset and confirmation messages
    hold a token, exactly one, the one of their own link; every other is secret-free."""
    run = run_every_flow(build(config_name), inbox)
    linked = {VERIFY_SUBJECT, RESET_SUBJECT, CONFIRM_SUBJECT}

    for delivered in run.messages:
        if delivered.message["Subject"] in linked:
            token = token_in(delivered.message)
            found = {t for text_ in every_text_of(delivered) for t in TOKEN_SHAPED.findall(text_)}
            assert found == {token}
        else:
            assert_secret_free(delivered, *run.mailed_tokens)


# --- One recipient, our sender, no injected header (EM-08) ------------------------------------


@pytest.mark.parametrize("config_name", CONFIGS)
def test_every_message_has_one_recipient_the_configured_sender_and_auto_submitted(
    build, inbox, config_name
):
    """EM-08, RFC 3834: one envelope recipient, the same in To; From is MAIL_FROM and the
    envelope sender its address; Auto-Submitted: auto-generated; no header beyond the set."""
    app = build(config_name)
    mail_from = app.extensions["gatehouse"].settings.mail_from
    run = run_every_flow(app, inbox)
    assert len(run.messages) == (10 if run.generic else 6)

    for delivered in run.messages:
        message = delivered.message
        assert len(delivered.rcpt_tos) == 1
        assert delivered.mail_from == parseaddr(mail_from)[1]
        assert [str(a.addr_spec) for a in message["To"].addresses] == delivered.rcpt_tos
        assert message["From"] == mail_from
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["Subject"] in SUBJECTS
        assert sorted(message.keys()) == sorted(HEADERS)


@pytest.mark.parametrize(
    "name",
    [
        "Ada\r\nBcc: mallory@evil.example",
        "Ada\nBcc: mallory@evil.example",
        "Ada\rBcc: mallory@evil.example",
        "Ada\x85Bcc: mallory@evil.example",
    ],
    ids=["crlf", "lf", "cr", "nel"],
)
def test_display_name_with_a_line_break_is_refused_and_changes_nothing(build, inbox, name):
    """EM-08, DATA-01: PATCH /me refuses it (400, naming the field) before anything is stored,
    and no message is queued."""
    app = build()
    run = Run(app, inbox)
    ada = run.member(ADA, STRONG_PASSWORD)
    before = snapshot(app)

    response = run.client.patch(ME, json={"display_name": name}, headers=ada.headers)

    body = assert_problem(response, 400, "validation_failed")
    assert [error["field"] for error in body["errors"]] == ["display_name"]
    assert snapshot(app) == before
    assert inbox.deliver(app) == []


@pytest.mark.parametrize("name", ["Ada\r\nBcc: mallory@evil.example", "Ada\nTo: x@evil.example"])
def test_signup_with_a_line_break_in_the_display_name_is_refused_before_any_mail(
    build, inbox, name
):
    """EM-08: the sign-up's own display name is held to the same rule; nothing is created or
    mailed."""
    app = build()
    before = snapshot(app)

    response = app.test_client().post(
        SIGNUP, json={"email": ADA, "password": STRONG_PASSWORD, "display_name": name}
    )

    assert_problem(response, 400, "validation_failed")
    assert snapshot(app) == before
    assert inbox.deliver(app) == []


HOSTILE_NAME = "Mallory <mallory@evil.example>\u2028Bcc: eve@evil.example\u2029To: x@evil.example"


@pytest.mark.parametrize("config_name", CONFIGS)
def test_display_name_with_angle_brackets_and_separators_reaches_no_header(
    build, inbox, config_name
):
    """EM-08: a display name set by PATCH /me that looks like an address and holds Unicode line
    separators ends up in the bodies only: every header of every later message is exactly the
    expected set, To is the account's address alone, and nothing of the name is in a header."""
    app = build(config_name)
    mail_from = app.extensions["gatehouse"].settings.mail_from

    run = run_every_flow(app, inbox, display_name=HOSTILE_NAME)

    named = [m for m in run.messages if "mallory" in m.text]
    assert {m.message["Subject"] for m in named} >= {
        RESET_SUBJECT,
        PASSWORD_CHANGED_SUBJECT,
        REQUESTED_SUBJECT,
        CHANGED_SUBJECT,
    }
    for delivered in run.messages:
        message = delivered.message
        assert sorted(message.keys()) == sorted(HEADERS)
        assert len(delivered.rcpt_tos) == 1
        assert message["To"] == delivered.rcpt_tos[0]
        assert message["From"] == mail_from
        assert message["Subject"] in SUBJECTS
        for name, value in message.items():
            assert "evil.example" not in str(value), name
            assert "mallory" not in str(value).lower(), name


@pytest.mark.parametrize("config_name", CONFIGS)
def test_display_name_with_markup_is_escaped_in_every_html_part(build, inbox, config_name):
    """EM-07: the name is text in the HTML part (autoescaped), never markup: no live element
    or attribute reaches the mail client."""
    app = build(config_name)

    run = run_every_flow(app, inbox, display_name='Ada <img src=x onerror="alert(1)"> & co')

    named = [m for m in run.messages if "onerror" in m.text]
    assert len(named) >= 4
    for delivered in named:
        assert "Ada &lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp; co" in delivered.html
        assert "<img" not in delivered.html


def test_mail_to_an_address_not_yet_proven_carries_no_display_name(build, inbox):
    """EM-07: whoever signs up with, or moves an account to, someone else's address must not
    put text of their choosing (a name holding a URL) into a stranger's inbox."""
    app = build()
    client = app.test_client()
    name = "Visit https://evil.example now"
    signup = client.post(
        SIGNUP, json={"email": ADA, "password": STRONG_PASSWORD, "display_name": name}
    )
    assert signup.status_code == 201
    login = client.post(LOGIN, json={"email": ADA, "password": STRONG_PASSWORD}).get_json()
    change = client.post(
        CHANGE,
        json={"new_email": NEW_ADDRESS, "password": STRONG_PASSWORD},
        headers={"Authorization": f"Bearer {login['access_token']}"},
    )
    assert change.status_code == 202

    delivered = inbox.deliver(app)

    unproven = [m for m in delivered if m.message["Subject"] in (VERIFY_SUBJECT, CONFIRM_SUBJECT)]
    assert len(unproven) == 2
    for message in unproven:
        assert "evil.example" not in message.text and "evil.example" not in message.html
    [notice] = [m for m in delivered if m.message["Subject"] == REQUESTED_SUBJECT]
    assert "evil.example" in notice.text  # the proven address is greeted by name


# --- Logs (OPS-01) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config_name", "transport"),
    [("testing", "smtp"), ("production", "smtp"), ("testing", "file")],
)
def test_logs_of_a_whole_run_hold_no_mailed_token_no_password_and_no_body(
    build, inbox, caplog, tmp_path, config_name, transport
):
    """OPS-01: at DEBUG, the records of sign-up, verification, reset, email change and the
    sender's passes (SMTP, or the file transport testing falls back to) hold no mailed token,
    no password, no bearer token and no line of any message body: logging a body is for
    development only (tests/mail/test_outbox.py)."""
    overrides = {"LOG_LEVEL": "DEBUG"}
    mailbox: Inbox | FileInbox = inbox
    if transport == "file":
        overrides.update(MAIL_SERVER=None, MAIL_OUTBOX_DIR=str(tmp_path / "outbox"))
        mailbox = FileInbox(tmp_path / "outbox")
    app = build(config_name, **overrides)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="gatehouse")

    run = run_every_flow(app, mailbox)

    logged = log_text(caplog)
    assert "http_request" in logged
    assert re.search(r"mail \S+ (sent|written to)", logged)
    assert len(run.mailed_tokens) >= 3
    for secret in run.mailed_tokens + run.passwords + run.bearer_tokens:
        assert secret not in logged
    for delivered in run.messages:
        for line in delivered.text.splitlines():
            if len(line.strip()) >= 20:
                assert line.strip() not in logged, line
        assert f"| Subject: {delivered.message['Subject']}" not in logged


# --- Deletion (DATA-04) and failed requests (DATA-01) -----------------------------------------


def pending_mail_for_ada(run: Run) -> Tokens:
    """Ada, unverified (testing lets her log in), with mail waiting in the outbox: her sign-up's
    verification, a reset request (a deferred job), an email change (the confirmation to the
    new address, the notice to hers). Bob has his own verification waiting."""
    run.post(SIGNUP, 201, email=ADA, password=STRONG_PASSWORD)
    ada = run.login(ADA, STRONG_PASSWORD)
    run.post(RESET, 202, email=ADA)
    run.post(CHANGE, 202, headers=ada.headers, new_email=NEW_ADDRESS, password=STRONG_PASSWORD)
    run.post(SIGNUP, 201, email=BOB, password=OTHER_PASSWORD)
    assert {(to, template) for to, template, _ in outbox_rows(run.app)} == {
        (ADA, "verify_email"),
        ("", "job:password_reset"),
        (NEW_ADDRESS, "email_change_confirm"),
        (ADA, "email_change_requested"),
        (BOB, "verify_email"),
    }
    return ada


def delete(run: Run, tokens: Tokens, password: str = STRONG_PASSWORD):
    return run.client.delete(ME, json={"password": password}, headers=tokens.headers)


def test_deleting_an_account_removes_its_pending_mail_and_its_tokens(build, inbox):
    """DATA-04: the outbox rows addressed to it and its account_tokens rows go in the same
    transaction; the next sender pass mails it nothing. Another account's mail stays."""
    app = build()
    run = Run(app, inbox)
    ada = pending_mail_for_ada(run)
    ada_id = account_id_of(app, ADA)
    assert tokens_of_account(app, ada_id) == ["change_email", "verify_email"]

    assert delete(run, ada).status_code == 204

    assert [row for row in outbox_rows(app) if row[0] == ADA] == []
    assert tokens_of_account(app, ada_id) == []
    assert (BOB, "verify_email", "pending") in outbox_rows(app)
    arrived = run.deliver()
    assert [m for m in arrived if m.rcpt_tos == [ADA]] == []
    assert [(m.rcpt_tos, m.message["Subject"]) for m in arrived if m.rcpt_tos == [BOB]] == [
        ([BOB], VERIFY_SUBJECT)
    ]


def test_deleting_an_account_cancels_the_confirmation_pending_for_its_new_address(build, inbox):
    """DATA-04: a pending change dies with the account: its confirmation message (a link to an
    account that no longer exists) is not sent, and no outbox row keeps the new address."""
    app = build()
    run = Run(app, inbox)
    ada = pending_mail_for_ada(run)

    assert delete(run, ada).status_code == 204

    assert [row for row in outbox_rows(app) if row[0] == NEW_ADDRESS] == []
    assert [m for m in run.deliver() if m.rcpt_tos == [NEW_ADDRESS]] == []


def test_deleting_an_account_after_an_address_change_keeps_no_mail_of_its_old_address(build, inbox):
    """DATA-04: "its mail goes too, sent or waiting" covers every address the account had: no
    outbox row names its old address once the account is gone."""
    app = build()
    run = Run(app, inbox)
    ada = run.member(ADA, STRONG_PASSWORD)
    run.post(CHANGE, 202, headers=ada.headers, new_email=NEW_ADDRESS, password=STRONG_PASSWORD)
    change = run.token_from(run.deliver(), NEW_ADDRESS, CONFIRM_SUBJECT)
    run.post(CHANGE_CONFIRM, 204, token=change)
    run.deliver()

    assert delete(run, ada).status_code == 204

    assert [row for row in outbox_rows(app) if row[0] in (ADA, NEW_ADDRESS)] == []


@pytest.mark.parametrize(
    "case",
    ["change-wrong-password", "delete-wrong-password", "change-line-break", "confirm-unknown"],
)
def test_failed_request_leaves_the_database_exactly_as_it_was(build, inbox, case):
    """DATA-01: a refused request writes nothing (no token, no outbox row, no change), and
    mails nothing; a wrong password moves only the lockout counter (RL-06), by one."""
    app = build()
    run = Run(app, inbox)
    ada = pending_mail_for_ada(run)
    run.deliver()
    wrong_password = case.endswith("wrong-password")
    ignore = ("accounts.failed_login_count",) if wrong_password else ()
    before = snapshot(app, ignore=ignore)
    failures = failed_login_count(app, ADA)

    if case == "change-wrong-password":
        response = run.client.post(
            CHANGE, json={"new_email": "other@example.org", "password": WRONG}, headers=ada.headers
        )
        assert_problem(response, 400, "current_password_incorrect")
    elif case == "delete-wrong-password":
        assert_problem(delete(run, ada, WRONG), 400, "current_password_incorrect")
    elif case == "change-line-break":
        response = run.client.post(
            CHANGE,
            json={"new_email": "other@example.org\r\nBcc: x@evil.example", "password": WRONG},
            headers=ada.headers,
        )
        assert_problem(response, 400, "validation_failed")
    else:
        response = run.client.post(CHANGE_CONFIRM, json={"token": "A" * 43})
        assert_problem(response, 400, "token_unknown")

    assert snapshot(app, ignore=ignore) == before
    assert inbox.deliver(app) == []
    assert failed_login_count(app, ADA) == failures + (1 if wrong_password else 0)


def failed_login_count(app: Flask, email: str) -> int:
    with app.app_context():
        count = db.session.scalar(select(Account.failed_login_count).where(Account.email == email))
        db.session.remove()
    return count


# --- Links come from settings (EM-05) ---------------------------------------------------------

FORGED = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "http",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/evil",
}


@pytest.mark.parametrize("hops", [0, 1], ids=["no-proxy", "behind-a-proxy"])
def test_email_change_link_uses_public_url_whatever_host_or_forwarded_host(build, inbox, hops):
    """EM-05: the confirmation link is PUBLIC_URL's page, even when a trusted proxy's
    X-Forwarded-Host makes the request's host the attacker's."""
    app = build(PUBLIC_URL="https://id.example.org", TRUSTED_PROXY_HOPS=hops)
    run = Run(app, inbox)
    ada = run.member(ADA, STRONG_PASSWORD)

    run.post(
        CHANGE,
        202,
        headers={**ada.headers, **FORGED},
        new_email=NEW_ADDRESS,
        password=STRONG_PASSWORD,
    )

    link = link_in(delivered_to(run.deliver(), NEW_ADDRESS, CONFIRM_SUBJECT).message)
    assert re.fullmatch(rf"https://id\.example\.org/account/confirm-email#token={TOKEN}", link)


def test_email_change_link_follows_the_configured_template_whatever_the_host(build, inbox):
    """EM-05: with MAIL_LINK_CONFIRM_EMAIL the link is the front end's, token in it."""
    app = build(
        MAIL_LINK_CONFIRM_EMAIL="https://app.example/confirm?token={token}", TRUSTED_PROXY_HOPS=1
    )
    run = Run(app, inbox)
    ada = run.member(ADA, STRONG_PASSWORD)

    run.post(
        CHANGE,
        202,
        headers={**ada.headers, **FORGED},
        new_email=NEW_ADDRESS,
        password=STRONG_PASSWORD,
    )

    link = link_in(delivered_to(run.deliver(), NEW_ADDRESS, CONFIRM_SUBJECT).message)
    assert re.fullmatch(rf"https://app\.example/confirm\?token={TOKEN}", link)


@pytest.mark.parametrize("purpose", ["verify", "reset"])
def test_verify_and_reset_links_ignore_forwarded_host_behind_a_trusted_proxy(build, inbox, purpose):
    """EM-05: behind a trusted proxy (TRUSTED_PROXY_HOPS=1) X-Forwarded-Host becomes the
    request's host; the links are still PUBLIC_URL's pages."""
    app = build(PUBLIC_URL="https://id.example.org", TRUSTED_PROXY_HOPS=1)
    client = app.test_client()
    signup = client.post(SIGNUP, json={"email": ADA, "password": STRONG_PASSWORD}, headers=FORGED)
    assert signup.status_code == 201
    arrived = inbox.deliver(app)
    page = "verify-email"
    if purpose == "reset":
        assert client.post(RESET, json={"email": ADA}, headers=FORGED).status_code == 202
        arrived = inbox.deliver(app)
        page = "reset-password"

    [delivered] = arrived
    link = link_in(delivered.message)
    assert re.fullmatch(rf"https://id\.example\.org/account/{page}#token={TOKEN}", link)
