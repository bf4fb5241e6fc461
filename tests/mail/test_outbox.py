"""The outbox and its sender, against a real SMTP server on loopback (REL-11, EM-08, DATA-03).

Time is the app's frozen clock (``clock_factory``): backoff is crossed by moving it, never by
sleeping. Threads wait only for real events (a message arriving, a thread ending).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import stat
import threading
from collections import Counter
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import jinja2
import pytest
from cryptography.fernet import InvalidToken
from flask import Flask
from sqlalchemy import select, text, update

from app import create_app
from app.errors import InvalidEmail
from app.extensions import db
from app.mail_cli import mail
from app.models.outbox import OutboxMessage
from app.services import mail as mail_service
from app.services.mail import (
    MAX_RETRY_DELAY,
    SendReport,
    backoff,
    enqueue,
    outbox_cipher,
    send_pending,
    sender_for,
)
from app.services.unit_of_work import unit_of_work
from config import ConfigurationError
from tests.mail.conftest import SmtpServer

REPEATS = 20 if os.environ.get("TEST_DATABASE_URL") else 3
ADA = "ada@example.com"


def queue(app: Flask, to: str = ADA, *, count: int = 1, **context: str) -> list[str]:
    """Enqueue ``count`` test messages in one committed unit of work; returns their tokens."""
    tokens = []
    with app.app_context(), unit_of_work() as uow:
        for _ in range(count):
            token = context.get("token") or secrets.token_urlsafe(32)
            tokens.append(token)
            enqueue(
                uow,
                to=to,
                template="test",
                context={
                    "name": context.get("name", "Ada"),
                    "link": f"https://app.example/verify?token={token}",
                },
            )
    return tokens


def outbox(app: Flask) -> list[OutboxMessage]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)).all()
        db.session.expunge_all()
        return list(rows)


def raw_rows(app: Flask) -> list[tuple]:
    """Every column of every outbox row as the database holds it."""
    with app.app_context():
        return [tuple(row) for row in db.session.execute(text("SELECT * FROM outbox_messages"))]


def send(app: Flask, **kwargs) -> SendReport:
    with app.app_context():
        return send_pending(**kwargs)


# --- Enqueue and deliver ----------------------------------------------------------------------


def test_enqueue_in_committed_unit_of_work_delivers_headers_and_both_parts(
    mail_app, smtp_server: SmtpServer
):
    """REL-11: the message committed with the change is delivered, text and HTML, once."""
    app = mail_app(MAIL_FROM="Gatehouse <no-reply@auth.example>")
    [token] = queue(app, name="Ada <b>")

    report = send(app)

    assert report == SendReport(sent=1)
    [delivered] = smtp_server.messages
    assert delivered.mail_from == "no-reply@auth.example"
    assert delivered.rcpt_tos == [ADA]
    message = delivered.message
    assert message["Subject"] == "Test message for Ada <b>"
    assert message["From"] == "Gatehouse <no-reply@auth.example>"
    assert message["To"] == ADA
    assert message["Date"] is not None
    [row] = outbox(app)
    assert message["Message-ID"] == f"<{row.id.hex}@auth.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert f"https://app.example/verify?token={token}" in delivered.text
    assert "Hello Ada <b>," in delivered.text  # plain text: nothing escaped
    assert "Hello Ada &lt;b&gt;," in delivered.html  # HTML: autoescaped
    assert f'href="https://app.example/verify?token={token}"' in delivered.html
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.sent_at is not None


def test_enqueue_to_internationalised_address_delivers_with_smtputf8(mail_app, smtp_server):
    """An address that is not ASCII (RFC 6531) goes as it is, never mangled."""
    app = mail_app()
    queue(app, to="zoë@exämple.com")

    assert send(app) == SendReport(sent=1)

    [delivered] = smtp_server.messages
    assert delivered.rcpt_tos == ["zoë@exämple.com"]
    assert delivered.message["To"] == "zoë@exämple.com"


def test_enqueue_in_rolled_back_unit_of_work_stores_and_sends_nothing(
    mail_app, smtp_server: SmtpServer
):
    """REL-11, DATA-01: no change, no message; a rolled-back savepoint drops only its own."""
    app = mail_app()
    with app.app_context():
        with pytest.raises(RuntimeError), unit_of_work() as uow:
            enqueue(uow, to=ADA, template="test", context={"name": "Ada", "link": "x"})
            raise RuntimeError("the change failed")
        with unit_of_work() as uow:
            enqueue(uow, to="kept@example.com", template="test", context={"name": "K", "link": "x"})
            with pytest.raises(RuntimeError), unit_of_work() as inner:
                enqueue(inner, to=ADA, template="test", context={"name": "Ada", "link": "x"})
                raise RuntimeError("the nested part failed")

    assert [row.to_address for row in outbox(app)] == ["kept@example.com"]
    assert send(app) == SendReport(sent=1)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["kept@example.com"]]


def test_enqueue_with_subject_line_break_in_context_folds_it_into_one_header(
    mail_app, smtp_server: SmtpServer
):
    """EM-08: a line break from the context cannot start a header of its own."""
    app = mail_app()
    queue(app, name="Ada\r\nBcc: mallory@example.com")

    send(app)

    [delivered] = smtp_server.messages
    assert delivered.rcpt_tos == [ADA]
    assert delivered.message["Bcc"] is None
    assert delivered.message["Subject"] == "Test message for Ada Bcc: mallory@example.com"


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.com\r\nBcc: mallory@example.com",
        "ada@example.com\nBcc: mallory@example.com",
        "ada@example.com\r",
        "ada\x00@example.com",
        "ada@example.com\u2028",
        "ada@example.com, mallory@example.com",
        "Ada <ada@example.com>",
    ],
    ids=["crlf", "lf", "cr", "nul", "line-separator", "list", "display-name"],
)
def test_enqueue_with_control_characters_or_many_addresses_refuses_before_any_smtp(
    mail_app, smtp_server: SmtpServer, address
):
    """EM-08: refused (InvalidEmail, field ``to``) before rendering, storing or sending."""
    app = mail_app()
    with app.app_context():
        with pytest.raises(InvalidEmail) as raised, unit_of_work() as uow:
            enqueue(uow, to=address, template="test", context={"name": "Ada", "link": "x"})
        assert raised.value.errors[0].field == "to"
        assert send_pending() == SendReport()

    assert outbox(app) == []
    assert smtp_server.messages == []


def test_enqueue_with_unknown_template_or_missing_variable_fails_the_operation(mail_app):
    """A programming error fails the change it belongs to: nothing half-sent."""
    app = mail_app()
    with app.app_context():
        with pytest.raises(jinja2.TemplateNotFound), unit_of_work() as uow:
            enqueue(uow, to=ADA, template="no-such-template", context={})
        with pytest.raises(jinja2.UndefinedError), unit_of_work() as uow:
            enqueue(uow, to=ADA, template="test", context={"name": "Ada"})
        with pytest.raises(ValueError), unit_of_work() as uow:
            enqueue(uow, to=ADA, template="../test", context={"name": "Ada", "link": "x"})

    assert outbox(app) == []


def test_forget_address_deletes_its_rows_and_keeps_a_notice_queued_after(mail_app, smtp_server):
    """DATA-04: deleting an account takes its pending and past mail with it."""
    app = mail_app()
    queue(app, count=2)
    send(app, limit=1)
    queue(app, to="other@example.com")
    with app.app_context(), unit_of_work() as uow:
        assert mail_service.forget(uow, to=ADA) == 2
        enqueue(uow, to=ADA, template="test", context={"name": "Ada", "link": "goodbye"})

    assert sorted(row.to_address for row in outbox(app)) == [ADA, "other@example.com"]
    assert send(app) == SendReport(sent=2)


# --- Encryption at rest -----------------------------------------------------------------------


def test_enqueue_stores_payload_encrypted_and_send_erases_it(mail_app, smtp_server):
    """DATA-03: no token in any column before sending; no payload at all after."""
    app = mail_app()
    [token] = queue(app)

    [before] = raw_rows(app)
    assert token not in repr(before)
    assert token.encode() not in b"".join(v for v in before if isinstance(v, bytes))
    [row] = outbox(app)
    assert row.payload and b"verify?token" not in row.payload

    send(app)

    [after] = raw_rows(app)
    assert token not in repr(after)
    [row] = outbox(app)
    assert (row.status, row.payload) == ("sent", b"")
    assert token in smtp_server.messages[0].text  # it went to the mailbox, and only there


def test_send_with_payload_copied_from_another_row_fails_without_sending(mail_app, smtp_server):
    """DATA-03: a database writer cannot redirect someone's link by copying its payload."""
    app = mail_app()
    queue(app, to="victim@example.com")
    queue(app, to="mallory@example.com")
    victim, mallory = outbox(app)
    with app.app_context(), unit_of_work() as uow:
        uow.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == mallory.id)
            .values(payload=victim.payload, next_attempt_at=victim.next_attempt_at)
        )
        uow.session.execute(
            update(OutboxMessage).where(OutboxMessage.id == victim.id).values(status="sent")
        )

    assert send(app) == SendReport(failed=1)

    assert smtp_server.messages == []
    row = next(r for r in outbox(app) if r.id == mallory.id)
    assert (row.status, row.payload) == ("failed", b"")
    assert row.last_error == "payload does not belong to this message"


def test_send_after_secret_key_change_fails_the_message_at_once(mail_app, smtp_server, caplog):
    """A payload no key opens is failed, not retried for an hour; the event names no body."""
    queue(mail_app(SECRET_KEY="the-first-secret-key-" + "a" * 32))
    app = mail_app(SECRET_KEY="the-second-secret-key-" + "b" * 32)

    with caplog.at_level(logging.INFO, logger="gatehouse"):
        assert send(app) == SendReport(failed=1)

    assert smtp_server.messages == []
    [row] = outbox(app)
    assert (row.status, row.attempts, row.payload) == ("failed", 1, b"")
    assert "SECRET_KEY" in (row.last_error or "")
    assert [r.msg for r in caplog.records if r.name == "gatehouse.security"] == ["mail_failed"]


def test_outbox_cipher_is_derived_per_secret_and_round_trips():
    one, other = outbox_cipher(b"k" * 32), outbox_cipher(b"j" * 32)

    sealed = one.encrypt(b"message")

    assert one.decrypt(sealed) == b"message"
    with pytest.raises(InvalidToken):
        other.decrypt(sealed)


# --- Outages, retries and refusals ------------------------------------------------------------


def test_send_with_server_down_retries_with_backoff_then_delivers_once_after_recovery(
    mail_app, smtp_server: SmtpServer, clock_factory
):
    """REL-11: the commit succeeds while SMTP is down; the message goes once it is back, once,
    and is marked sent only then."""
    app = mail_app(MAIL_RETRY_BASE_SECONDS=30)
    clock = clock_factory(app)
    smtp_server.stop()
    [token] = queue(app)  # the operation that queues mail does not notice the outage

    first = send(app)

    assert first == SendReport(retried=1, unavailable=True)
    [row] = outbox(app)
    assert (row.status, row.attempts, row.sent_at) == ("pending", 1, None)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=30)
    assert row.claimed_until is None
    assert row.last_error == "ConnectionRefusedError"
    assert send(app) == SendReport()  # not due yet

    clock.advance(seconds=29)
    assert send(app) == SendReport()
    clock.advance(seconds=1)
    assert send(app) == SendReport(retried=1, unavailable=True)  # still down: 60 s this time
    assert outbox(app)[0].next_attempt_at == clock.now() + timedelta(seconds=60)

    smtp_server.start()
    assert send(app) == SendReport()  # back, but the message waits for its time
    assert smtp_server.messages == []
    clock.advance(seconds=60)
    assert send(app) == SendReport(sent=1)
    assert send(app) == SendReport()
    clock.advance(hours=2)
    assert send(app) == SendReport()

    [delivered] = smtp_server.messages
    assert token in delivered.text
    [row] = outbox(app)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert row.sent_at == clock.now() - timedelta(hours=2)


def test_send_marks_message_sent_only_after_the_server_accepted_it(mail_app, smtp_server):
    """REL-11: while the server holds the DATA, the row is still pending (and claimed)."""
    app = mail_app()
    queue(app)
    seen: list[tuple[str, bool]] = []

    def look_at_the_row(_delivered) -> None:
        [row] = outbox(app)
        seen.append((row.status, row.claimed_until is not None))

    smtp_server.mailbox.on_data = look_at_the_row

    send(app)

    assert seen == [("pending", True)]
    assert outbox(app)[0].status == "sent"


def test_send_to_refused_recipient_fails_after_max_attempts_and_never_raises(
    mail_app, smtp_server: SmtpServer, clock_factory, caplog
):
    """The issue's bad input, REL-11, OPS-01: a 550 is retried, then ``failed`` after
    MAIL_MAX_ATTEMPTS; nobody's operation fails; the log names the message, not the person
    or the body; other mail still goes."""
    app = mail_app(MAIL_MAX_ATTEMPTS=3)
    clock = clock_factory(app)
    smtp_server.refuse.add("gone@example.com")
    [token] = queue(app, to="gone@example.com")
    queue(app, to=ADA)

    with caplog.at_level(logging.INFO, logger="gatehouse"):
        reports = [send(app)]
        for _ in range(3):
            clock.advance(seconds=MAX_RETRY_DELAY.total_seconds())
            reports.append(send(app))

    assert reports == [
        SendReport(sent=1, retried=1),
        SendReport(retried=1),
        SendReport(failed=1),
        SendReport(),
    ]
    assert [m.rcpt_tos for m in smtp_server.messages] == [[ADA]]
    gone = next(row for row in outbox(app) if row.to_address == "gone@example.com")
    assert (gone.status, gone.attempts, gone.payload) == ("failed", 3, b"")
    assert gone.last_error == "recipient refused (SMTP 550)"
    [event] = [r for r in caplog.records if r.name == "gatehouse.security"]
    assert (event.msg, event.outcome, event.message_id) == ("mail_failed", "failure", str(gone.id))
    assert event.template == "test"
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert "gone@example.com" not in logged
    assert token not in logged


def test_send_with_starttls_required_but_not_offered_never_sends_in_clear(mail_app, smtp_server):
    """MAIL_USE_TLS: a server without STARTTLS gets nothing; the message is retried."""
    app = mail_app(MAIL_USE_TLS=True)
    queue(app)

    assert send(app) == SendReport(retried=1, unavailable=True)

    assert smtp_server.messages == []
    assert "STARTTLS" in (outbox(app)[0].last_error or "")


def test_send_with_server_down_stops_the_pass_after_one_attempt(mail_app, smtp_server):
    """A dead server costs one connection per pass; the other messages spend no attempt."""
    app = mail_app()
    smtp_server.stop()
    queue(app, count=3)

    assert send(app) == SendReport(retried=1, unavailable=True)

    assert sorted(row.attempts for row in outbox(app)) == [0, 0, 1]


def test_backoff_doubles_from_the_base_and_stops_at_one_hour():
    assert [backoff(n, 30).total_seconds() for n in range(1, 9)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
    ]
    assert backoff(500, 30) == MAX_RETRY_DELAY


def test_send_with_limit_attempts_at_most_that_many(mail_app, smtp_server):
    app = mail_app()
    queue(app, count=3)

    assert send(app, limit=2) == SendReport(sent=2)
    assert send(app, limit=2) == SendReport(sent=1)
    assert len(smtp_server.messages) == 3


# --- Concurrent senders -----------------------------------------------------------------------


def race_senders(apps: list[Flask], senders: int) -> list[SendReport]:
    """``send_pending`` from ``senders`` threads released at once, each in an app context of
    its own (thread ``i`` on ``apps[i % len(apps)]``: two apps are two instances)."""
    barrier = threading.Barrier(senders)
    reports: list[SendReport] = []
    failures: list[BaseException] = []

    def run(index: int) -> None:
        app = apps[index % len(apps)]
        try:
            with app.app_context():
                barrier.wait(timeout=30)
                reports.append(send_pending())
        except BaseException as exc:  # reported in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a sender hung"
    assert failures == []
    return reports


@pytest.mark.parametrize("senders", [2, 4])
def test_concurrent_senders_send_each_message_once(make_app, smtp_server, senders):
    """REL-11: senders in threads of two instances (own app contexts) never send a message
    twice: FOR UPDATE SKIP LOCKED on PostgreSQL, a compare-and-set claim everywhere."""
    apps = [make_app(**smtp_server.settings()) for _ in range(2)]
    for attempt in range(REPEATS):
        smtp_server.messages.clear()
        queue(apps[0], to=f"racer{attempt}@example.com", count=12)

        reports = race_senders(apps, senders)

        assert sum(report.sent for report in reports) == 12
        assert sum(report.attempted for report in reports) == 12
        ids = Counter(m.message["Message-ID"] for m in smtp_server.messages)
        assert len(ids) == 12 and set(ids.values()) == {1}
        assert {row.status for row in outbox(apps[0])} == {"sent"}


# --- Without an SMTP server -------------------------------------------------------------------


def test_send_without_mail_server_writes_owner_only_eml_file(make_app, tmp_path: Path, caplog):
    """OPS-01: the file transport keeps the message (0600 in a 0700 directory) and, outside
    development, logs where, never the body."""
    directory = tmp_path / "outbox"
    app = make_app(MAIL_SERVER=None, MAIL_OUTBOX_DIR=str(directory))
    [token] = queue(app)

    with caplog.at_level(logging.DEBUG, logger="gatehouse"):
        assert send(app) == SendReport(sent=1)

    [row] = outbox(app)
    [path] = list(directory.iterdir())
    assert path.name == f"{row.id}.eml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert message["To"] == ADA
    assert token in message.get_body(preferencelist=("plain",)).get_content()
    assert str(path) in caplog.text
    assert token not in caplog.text
    assert row.payload == b""


def test_send_without_mail_server_in_development_logs_the_text_body(
    make_app, tmp_path: Path, caplog
):
    """OPS-01: only development shows the links in the log (``make run`` needs no mail)."""
    app = make_app(
        "development",
        MAIL_SERVER=None,
        MAIL_OUTBOX_DIR=str(tmp_path / "outbox"),
        SECRET_KEY="development-test-secret-key-" + "d" * 32,
        JWT_GENERATE_KEY_FILE=str(tmp_path / "jwt-signing-key.pem"),
    )
    [token] = queue(app)

    with caplog.at_level(logging.DEBUG, logger="gatehouse"):
        send(app)

    assert f"https://app.example/verify?token={token}" in caplog.text
    assert len(list((tmp_path / "outbox").iterdir())) == 1


def test_production_without_mail_server_refuses_to_start(make_app):
    """OPS-01: no file transport (and no bodies in logs) in production."""
    with pytest.raises(ConfigurationError, match="MAIL_SERVER"):
        make_app("production", MAIL_SERVER=None)


# --- The command ------------------------------------------------------------------------------


def test_cli_send_pending_sends_due_messages_and_prints_what_it_did(mail_app, smtp_server):
    app = mail_app()
    queue(app, count=2)

    result = app.test_cli_runner().invoke(mail, ["send-pending"])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "sent 2, retrying 0, failed 0"
    assert len(smtp_server.messages) == 2


def test_cli_send_pending_with_limit_and_server_down_says_so(mail_app, smtp_server):
    app = mail_app()
    queue(app, count=2)
    runner = app.test_cli_runner()

    limited = runner.invoke(mail, ["send-pending", "--limit", "1"])
    smtp_server.stop()
    down = runner.invoke(mail, ["send-pending"])

    assert limited.output.strip() == "sent 1, retrying 0, failed 0"
    assert down.exit_code == 0
    assert "retrying 1" in down.output and "unavailable" in down.output


def test_cli_send_pending_loop_sends_then_stops_on_sigterm(mail_app, smtp_server):
    """The worker mode: passes every MAIL_POLL_SECONDS until SIGTERM, then exits 0."""
    app = mail_app(MAIL_POLL_SECONDS=0.05)
    queue(app)
    smtp_server.mailbox.on_data = lambda _delivered: os.kill(os.getpid(), signal.SIGTERM)
    previous = signal.getsignal(signal.SIGTERM)

    result = app.test_cli_runner().invoke(mail, ["send-pending", "--loop"])

    assert result.exit_code == 0, result.output
    assert "sent 1, retrying 0, failed 0" in result.output
    assert result.output.strip().endswith("stopped")
    assert signal.getsignal(signal.SIGTERM) is previous
    assert outbox(app)[0].status == "sent"


def test_cli_send_pending_in_production_without_a_server_fails(database_url):
    """OPS-01: a command app (``serving=False``) may lack MAIL_SERVER; sending then fails with
    one line, and no file transport stands in."""
    app = create_app(
        "production",
        {"DATABASE_URL": database_url, "SECRET_KEY": "production-test-secret-key-" + "y" * 32},
        serving=False,
    )
    try:
        result = app.test_cli_runner().invoke(mail, ["send-pending"])
    finally:
        with app.app_context():
            db.engine.dispose()

    assert result.exit_code == 1
    assert "MAIL_SERVER" in result.output


# --- The in-process sender --------------------------------------------------------------------


def test_in_process_sender_delivers_after_commit_and_stops_on_request(
    mail_app, smtp_server, stop_senders
):
    """REL-11: a commit wakes this process's sender, which delivers without anyone polling."""
    app = stop_senders(mail_app(MAIL_SENDER_ENABLED=True, MAIL_POLL_SECONDS=30.0))
    sender = sender_for(app)
    assert not sender.running  # create_app starts nothing (gunicorn forks after it)

    [token] = queue(app)

    [delivered] = smtp_server.mailbox.wait_for(1)
    assert token in delivered.text
    assert sender.running
    assert sender.stop(timeout=10)
    assert not sender.running
    assert not any(
        t.name == "gatehouse-mail-sender" and t.is_alive() for t in threading.enumerate()
    )


def test_in_process_sender_with_server_down_leaves_the_commit_alone_and_delivers_later(
    mail_app, smtp_server, stop_senders, clock_factory
):
    """REL-11: the caller commits while SMTP is down; the sender's thread meets the outage,
    backs off, and delivers once the server is back and the retry is due."""
    app = stop_senders(mail_app(MAIL_SENDER_ENABLED=True, MAIL_POLL_SECONDS=0.05))
    clock = clock_factory(app)
    smtp_server.stop()

    [token] = queue(app)

    assert until(lambda: outbox(app)[0].attempts == 1)
    assert outbox(app)[0].status == "pending"
    smtp_server.start()
    clock.advance(seconds=30)
    sender_for(app).wake()
    [delivered] = smtp_server.mailbox.wait_for(1)
    assert token in delivered.text
    assert until(lambda: outbox(app)[0].status == "sent")


def until(condition, timeout: float = 10.0) -> bool:
    """Wait for another thread's effect (polling, bounded); the clock is never slept past."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        pause.wait(0.02)
    return condition()


def test_in_process_sender_disabled_is_never_started_by_a_commit(mail_app, smtp_server):
    app = mail_app(MAIL_SENDER_ENABLED=False)

    queue(app)

    assert not sender_for(app).running
    assert outbox(app)[0].status == "pending"  # left for `flask mail send-pending`


def test_in_process_sender_starts_on_first_request_and_sends_older_mail(
    mail_app, smtp_server, stop_senders
):
    """Mail left by an earlier process goes once this one serves, without new mail."""
    app = stop_senders(mail_app(MAIL_SENDER_ENABLED=True, MAIL_POLL_SECONDS=30.0))
    mail_service.init_app(app)
    queue(mail_app(MAIL_SENDER_ENABLED=False))  # queued by "another process"
    assert not sender_for(app).running

    app.test_client().get("/healthz")

    assert len(smtp_server.mailbox.wait_for(1)) == 1
    assert sender_for(app).running
    thread = next(t for t in threading.enumerate() if t.name == "gatehouse-mail-sender")
    assert thread.daemon  # never keeps the interpreter alive; atexit stops it cleanly
