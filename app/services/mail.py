"""Outbound mail that loses nothing: an outbox table, written in the caller's transaction, and a
sender that delivers it over SMTP with retries (SECURITY.md REL-11, EM-08, DATA-03, OPS-01).

The public API:

:func:`enqueue`
    renders a message from ``app/templates/mail/<template>.{subject.txt,txt,html}`` and adds it
    to the outbox in the caller's unit of work, so it exists if and only if the change that
    caused it commits; after the commit it wakes this process's sender. It never talks to an
    SMTP server, so a mail outage never fails or slows the request that caused the message.
:func:`forget`
    deletes the outbox rows of an address in the caller's unit of work (account deletion).
:func:`send_pending`
    one pass of the sender: claims each due message (so concurrent senders, in threads,
    processes or instances, never send one twice at once), sends it, and records the outcome.
    Run by the in-process sender thread (:class:`MailSender`) and by ``flask mail
    send-pending`` (``app/mail_cli.py``).

Deferred work. :func:`defer` queues a job instead of a message: a request that must do the
same work whatever it finds (a password reset for an address that may have no account, EM-01)
writes one encrypted job row and answers; the sender later runs the job's handler (registered
with :func:`job`), which looks things up, queues the messages there are to send and removes the
job row in one unit of work of its own, so a job's messages exist once or not at all. Jobs are
claimed like messages and retried like them when their handler fails.

Delivery. A message is marked ``sent`` only once the SMTP server has accepted it (the reply to
DATA). Every failure, whether the server is down (connection refused, timeout, disconnect), busy
(4xx) or refusing (5xx: recipient, sender, content), costs one attempt and schedules the next
after an exponential backoff (``MAIL_RETRY_BASE_SECONDS`` doubled per attempt, at most an hour);
after ``MAIL_MAX_ATTEMPTS`` the message is ``failed`` and a ``mail_failed`` security event is
logged. A 5xx is retried too: from our own relay it is as often a configuration fault being fixed
(relaying denied, authentication, a sender refused) as a dead mailbox, and a few more tries cost
less than a lost reset link. Only a payload that cannot be decrypted (``SECRET_KEY`` changed) or
does not belong to its row fails at once: retrying cannot help. Delivery is at least once: if
the database fails between the server's acceptance and the ``sent`` mark, the claim runs out
and the message is sent again, under the same Message-ID so clients can tell.

A pass stops at the first failure that says the server is unavailable rather than refusing one
message: that message is backed off, the others stay due and untouched (no attempt spent on
them), and the next pass, a poll interval later, tries again. A dead server thus sees one
connection per poll, whatever the queue.

At rest. The payload (the whole RFC 5322 message, with its one-time links) is Fernet-encrypted
under a key derived from ``SECRET_KEY`` with HKDF-SHA256 (info ``gatehouse outbox``), and
erased (empty) once the message is sent or failed for good, so no token stays in a table
(DATA-03). The recipient, template name, times, attempts and a short reason (an SMTP code or an
exception's name, never the server's text, which may echo the address) stay as the record.

Logs. Ids, template names, attempt counts and reasons; never a body. The one exception is the
file transport in development (no ``MAIL_SERVER``), which logs each text body line so ``make
run`` shows the links; production refuses to start without ``MAIL_SERVER`` (OPS-01).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import json
import logging
import os
import re
import smtplib
import ssl
import threading
import unicodedata
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, Protocol

import jinja2
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app
from sqlalchemy import delete, or_, select, update

from app.errors import InvalidEmail
from app.models.outbox import OutboxMessage
from app.runtime import runtime
from app.services.emails import email_lookup_key
from app.services.events import security_event
from app.services.tokens import load_secret_key
from app.services.unit_of_work import UnitOfWork, unit_of_work
from config import ConfigurationError, Settings

log = logging.getLogger("gatehouse.mail")

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
# Names of sendable templates; layouts and macros start with "_" and are never sent.
TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# A line break or control character in an address would be a header injection (EM-08).
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
HKDF_INFO = b"gatehouse outbox"
MAX_RETRY_DELAY = timedelta(hours=1)
# A claim outlives any single send (every SMTP command may take the timeout), then lapses, so
# a sender that died mid-send leaves its message to another.
MIN_CLAIM = timedelta(minutes=5)
# Messages one pass of the in-process sender attempts before it looks for a stop request.
PASS_LIMIT = 100
_CLAIM_TRIES = 5
_LAST_ERROR_LENGTH = 200
_EXTENSION_KEY = "gatehouse.mail"


# --- Rendering and enqueueing ----------------------------------------------------------------


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@functools.cache
def _templates() -> jinja2.Environment:
    """The mail templates: HTML autoescaped, text not; an undefined variable is an error."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html",), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template: str, context: Mapping[str, Any]) -> RenderedMail:
    """Render ``mail/<template>.subject.txt``, ``.txt`` and ``.html`` with ``context``.

    The subject is folded to one line with control characters blanked (a line break from the
    context cannot start a header) and is given to the bodies as ``subject``. Raises ValueError
    for a name that is not a template's, jinja2.TemplateNotFound for a missing file and
    jinja2.UndefinedError for a variable the context lacks: programming errors, which fail the
    caller's operation.
    """
    if not TEMPLATE_NAME.fullmatch(template):
        raise ValueError(f"not a mail template name: {template!r}")
    env = _templates()
    subject = env.get_template(f"mail/{template}.subject.txt").render(context)
    subject = " ".join(
        "".join(" " if unicodedata.category(char) == "Cc" else char for char in subject).split()
    )
    bodies = {**context, "subject": subject}
    return RenderedMail(
        subject=subject,
        text=env.get_template(f"mail/{template}.txt").render(bodies),
        html=env.get_template(f"mail/{template}.html").render(bodies),
    )


def check_address(to: str) -> None:
    """Refuse an address that could not be one mailbox: InvalidEmail (field ``to``).

    Control characters and line breaks first, before anything reads it (EM-08); then the syntax
    (a single address, no display name, no list).
    """
    if not isinstance(to, str) or any(
        unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in to
    ):
        raise InvalidEmail(
            "to", "The email address must not contain control characters or line breaks."
        )
    if email_lookup_key(to) is None:
        raise InvalidEmail("to")


def enqueue(
    uow: UnitOfWork,
    *,
    to: str,
    template: str,
    context: Mapping[str, Any],
    account_id: uuid.UUID | None = None,
) -> None:
    """Queue ``template`` rendered with ``context`` for ``to``, in ``uow``'s transaction.

    ``account_id``: the account the message is about; it is deleted with the account.

    The message exists if and only if ``uow`` commits; once it has, this process's sender is
    woken (when ``MAIL_SENDER_ENABLED``). No SMTP here: an outage never fails the caller.
    Raises InvalidEmail for an address with control characters or line breaks (EM-08) or one
    that is not a single address, before anything is rendered or stored; and what
    :func:`render` raises for a bad template or context.
    """
    check_address(to)
    rendered = render(template, context)
    now = runtime().clock.now()
    message_id = uuid.uuid4()
    raw = _build_message(
        message_id, to=to, sender=runtime().settings.mail_from, rendered=rendered, now=now
    )
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    uow.session.add(
        OutboxMessage(
            id=message_id,
            account_id=account_id,
            created_at=now,
            to_address=to,
            template=template,
            payload=_cipher(app).encrypt(raw),
            status="pending",
            attempts=0,
            next_attempt_at=now,
        )
    )
    uow.after_commit(functools.partial(wake, app))


def forget(uow: UnitOfWork, *, to: str, account_id: uuid.UUID | None = None) -> int:
    """Delete every outbox row for ``to`` or about ``account_id`` (whatever address it went
    to: an earlier one, or one a pending change would move to), in ``uow``'s transaction
    (account deletion, DATA-04).

    Pending messages are cancelled (their links die with the account anyway) and the record of
    past ones goes. A message queued after this in the same unit of work without an account (a
    "your account was deleted" notice) is kept. Returns the number of rows deleted; the address
    is compared exactly, as stored (the account's display address).
    """
    uow.session.flush()
    which = OutboxMessage.to_address == to
    if account_id is not None:
        which = or_(which, OutboxMessage.account_id == account_id)
    result = uow.session.execute(
        delete(OutboxMessage).where(which).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- Deferred jobs ------------------------------------------------------------------------------

JOB_PREFIX = "job:"
JobHandler = Callable[[uuid.UUID, dict[str, Any]], None]
_JOBS: dict[str, JobHandler] = {}


def job(name: str) -> Callable[[JobHandler], JobHandler]:
    """Register the handler of the deferred job ``name``: ``handler(job_id, data)``.

    It runs in a sender, in an app context, outside any unit of work; it opens its own, does
    its work there (queueing messages with :func:`enqueue`) and calls :func:`finish_job` in
    it, so the job is gone exactly when its effects are committed. An exception leaves the job
    to be retried with backoff, and failed after ``MAIL_MAX_ATTEMPTS``.
    """

    def register(handler: JobHandler) -> JobHandler:
        _JOBS[name] = handler
        return handler

    return register


def defer(uow: UnitOfWork, *, job: str, data: Mapping[str, Any]) -> None:
    """Queue the job ``job`` with ``data`` (encrypted at rest) in ``uow``'s transaction.

    The work a request does here is the same whatever the job will find: one row, written
    and committed. After the commit this process's sender is woken. Raises KeyError for a job
    nobody registered.
    """
    if job not in _JOBS:
        raise KeyError(f"no handler registered for the job {job!r}")
    now = runtime().clock.now()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    uow.session.add(
        OutboxMessage(
            id=uuid.uuid4(),
            created_at=now,
            to_address="",
            template=JOB_PREFIX + job,
            payload=_cipher(app).encrypt(json.dumps(dict(data)).encode()),
            status="pending",
            attempts=0,
            next_attempt_at=now,
        )
    )
    uow.after_commit(functools.partial(wake, app))


def finish_job(uow: UnitOfWork, job_id: uuid.UUID) -> None:
    """Remove the job's row in ``uow``: it commits with what the job did, or not at all.

    Raises JobGone when the row is no longer there (a second sender ran the job after this
    one's claim lapsed and finished first): ``uow`` then rolls back, so the job's effects
    happen once.
    """
    result = uow.session.execute(
        delete(OutboxMessage)
        .where(OutboxMessage.id == job_id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise JobGone(job_id)


class JobGone(RuntimeError):
    """The job was finished by another sender; this run's work is rolled back."""


def run_jobs(*, limit: int | None = None) -> int:
    """Run the due jobs (at most ``limit``), sending nothing; returns how many ran.

    For tests and tools that need a job's messages queued without a mail transport;
    :func:`send_pending` runs jobs too.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = runtime().settings
    ran = 0
    while limit is None or ran < limit:
        claim = _claim_next(jobs_only=True)
        if claim is None:
            break
        outcome, reason = _run_job(app, claim)
        if outcome != "done":
            _record(claim, outcome, reason, settings)
        ran += 1
    return ran


def _run_job(app: Flask, claim: _Claim) -> tuple[str, str | None]:
    """Run one claimed job: ``("done", None)``, or ``("refused"|"broken", reason)``."""
    handler = _JOBS.get(claim.template.removeprefix(JOB_PREFIX))
    if handler is None:
        return "broken", "no handler for this job"
    try:
        data = json.loads(_cipher(app).decrypt(claim.payload))
    except (InvalidToken, ValueError):
        return "broken", "job data cannot be decrypted (SECRET_KEY changed?)"
    try:
        handler(claim.id, data)
    except Exception as exc:  # the job is retried; the sender carries on
        log.exception("job %s (%s) failed", claim.id, claim.template)
        return "refused", type(exc).__name__[:_LAST_ERROR_LENGTH]
    return "done", None


def _build_message(
    message_id: uuid.UUID, *, to: str, sender: str, rendered: RenderedMail, now: datetime
) -> bytes:
    """The RFC 5322 message, text and HTML alternatives; SMTPUTF8 only when an address needs it."""
    international = not (to.isascii() and sender.isascii())
    message_policy = policy.SMTPUTF8 if international else policy.SMTP
    message = EmailMessage(policy=message_policy)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{message_id.hex}@{_domain_of(sender)}>"
    # RFC 3834: no vacation auto-replies to a machine's message.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message.as_bytes(policy=message_policy)


def _domain_of(sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2]
    try:
        return domain.encode("idna").decode("ascii") if domain else "localhost"
    except UnicodeError:
        return "localhost"


# --- Encryption at rest -----------------------------------------------------------------------


@dataclass
class _MailState:
    """What one app keeps for mail: its cipher (derived once) and its in-process sender."""

    sender: MailSender
    cipher: Fernet | None = None


_STATE_LOCK = threading.Lock()


def _state(app: Flask) -> _MailState:
    state = app.extensions.get(_EXTENSION_KEY)
    if state is None:
        with _STATE_LOCK:
            state = app.extensions.get(_EXTENSION_KEY)
            if state is None:
                state = _MailState(sender=MailSender(app))
                app.extensions[_EXTENSION_KEY] = state
    return state


def _cipher(app: Flask) -> Fernet:
    """The app's payload cipher, derived from ``SECRET_KEY`` on first use.

    Raises ConfigurationError without a secret key (as the rest of the service would).
    """
    state = _state(app)
    if state.cipher is None:
        secret = load_secret_key(app.extensions["gatehouse"].settings)
        state.cipher = outbox_cipher(secret)
    return state.cipher


def outbox_cipher(secret: bytes) -> Fernet:
    """The Fernet cipher of outbox payloads for ``secret`` (HKDF-SHA256, info ``gatehouse
    outbox``): a key of its own, so no other use of ``SECRET_KEY`` can stand in for it."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


# --- Transports -------------------------------------------------------------------------------


class TransportUnavailable(Exception):
    """The server cannot be reached or dropped us: no message can go now (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MessageRefused(Exception):
    """The server answered, and refused this message (``reason``: the SMTP code)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transport(Protocol):
    def send(self, *, sender: str, to: str, raw: bytes) -> None:
        """Hand ``raw`` over for ``to``; return only once it was accepted.

        Raises TransportUnavailable or MessageRefused.
        """

    def close(self) -> None: ...


class SmtpTransport:
    """SMTP through smtplib: one connection per pass, opened on the first message.

    STARTTLS (``MAIL_USE_TLS``) or TLS from the start (``MAIL_USE_SSL``) verify the server's
    certificate and host name; a server that offers no STARTTLS when it is asked for gets
    nothing (TransportUnavailable), never the message in clear.
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.mail_server:
            raise ConfigurationError("MAIL_SERVER is not set")
        self.host = settings.mail_server
        self.port = settings.mail_port
        self.use_tls = settings.mail_use_tls
        self.use_ssl = settings.mail_use_ssl
        self.username = settings.mail_username
        self.password = settings.mail_password
        self.timeout = settings.mail_timeout_seconds
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        try:
            if self.use_ssl:
                smtp = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    timeout=self.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            try:
                smtp.ehlo()
                if self.use_tls and not self.use_ssl:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
            except BaseException:
                _quietly_close(smtp)
                raise
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportUnavailable(_reason(exc)) from None
        return smtp

    def send(self, *, sender: str, to: str, raw: bytes) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        options = [] if (sender.isascii() and to.isascii()) else ["SMTPUTF8"]
        try:
            refused = self._smtp.sendmail(sender, [to], raw, mail_options=options)
        except (
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused,
            smtplib.SMTPDataError,
            smtplib.SMTPNotSupportedError,
        ) as exc:
            raise MessageRefused(_reason(exc)) from None
        except (OSError, smtplib.SMTPException) as exc:  # disconnected, timed out, reset
            self.close()
            raise TransportUnavailable(_reason(exc)) from None
        if refused:  # one recipient only: sendmail raises when all are refused; defensive
            raise MessageRefused("recipient refused")

    def close(self) -> None:
        if self._smtp is not None:
            smtp, self._smtp = self._smtp, None
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                _quietly_close(smtp)


def _quietly_close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()


class FileTransport:
    """Without ``MAIL_SERVER``: each message becomes ``<dir>/<outbox id>.eml`` (mode 0600, the
    directory 0700), and a log line says where. In development only, the text body is logged
    too, a line at a time, so ``make run`` shows the links (never in production: OPS-01)."""

    def __init__(self, directory: str, *, log_bodies: bool) -> None:
        self.directory = Path(directory)
        self.log_bodies = log_bodies

    def send(self, *, sender: str, to: str, raw: bytes) -> None:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(raw)
        # Named by the outbox row's id, as the log lines name it.
        name = str(uuid.UUID(hex=str(headers["Message-ID"]).strip("<>").partition("@")[0]))
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory.chmod(0o700)
            path = self.directory / f"{name}.eml"
            partial = self.directory / f".{name}.eml.partial"
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(raw)
            os.replace(partial, path)
        except OSError as exc:
            raise TransportUnavailable(_reason(exc)) from None
        log.info("mail %s written to %s (no MAIL_SERVER)", name, path)
        if self.log_bodies:
            message = BytesParser(policy=policy.default).parsebytes(raw)
            body = message.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""  # type: ignore[attr-defined]
            log.info("mail %s | Subject: %s", name, headers["Subject"])
            for line in text.splitlines():
                log.info("mail %s | %s", name, line)

    def close(self) -> None:
        pass


def transport_for(settings: Settings) -> Transport:
    """SMTP when ``MAIL_SERVER`` is set, else the file transport (not in production).

    Raises ConfigurationError in production without ``MAIL_SERVER``, or without either setting.
    """
    if settings.mail_server:
        return SmtpTransport(settings)
    if settings.env_name == "production" or not settings.mail_outbox_dir:
        raise ConfigurationError("no MAIL_SERVER: mail cannot be sent (set MAIL_SERVER)")
    return FileTransport(settings.mail_outbox_dir, log_bodies=settings.env_name == "development")


def _reason(exc: BaseException) -> str:
    """A short, secret-free reason: the SMTP code and the kind of failure, never the server's
    text (which may echo the address or a credential) nor the message."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({str(code) for code, _ in exc.recipients.values()})
        reason = f"recipient refused (SMTP {', '.join(codes)})"
    elif isinstance(exc, smtplib.SMTPSenderRefused):
        reason = f"sender refused (SMTP {exc.smtp_code})"
    elif isinstance(exc, smtplib.SMTPDataError):
        reason = f"message refused (SMTP {exc.smtp_code})"
    elif isinstance(exc, smtplib.SMTPAuthenticationError):
        reason = f"authentication failed (SMTP {exc.smtp_code})"
    elif isinstance(exc, smtplib.SMTPResponseException):
        reason = f"{type(exc).__name__} (SMTP {exc.smtp_code})"
    elif isinstance(exc, smtplib.SMTPNotSupportedError):
        reason = "server lacks a required extension (STARTTLS or SMTPUTF8)"
    else:
        reason = type(exc).__name__
    return reason[:_LAST_ERROR_LENGTH]


# --- Sending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendReport:
    """What one pass did: messages accepted by the server, put back for later, given up on;
    ``unavailable`` when it stopped early because the server could not be reached."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    unavailable: bool = False
    jobs: int = 0  # deferred jobs that ran to the end (their messages are queued)

    @property
    def attempted(self) -> int:
        return self.sent + self.retried + self.failed


@dataclass(frozen=True)
class _Claim:
    id: uuid.UUID
    to_address: str
    template: str
    attempts: int
    payload: bytes


def backoff(attempts: int, base_seconds: float) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: base, doubled each time, at most 1 h."""
    exponent = min(max(attempts - 1, 0), 32)
    return min(timedelta(seconds=base_seconds * 2**exponent), MAX_RETRY_DELAY)


def send_pending(*, limit: int | None = None) -> SendReport:
    """Send the due messages (at most ``limit``) and record each outcome; one sender's pass.

    Needs an app context, outside any unit of work (each claim and each outcome is a
    transaction of its own, and no transaction stays open while SMTP is talked to). SMTP
    failures never raise: they are recorded as retries or failures. Raises ConfigurationError
    when no transport is configured, and database errors (the claimed message is then retried
    once its claim lapses).
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = runtime().settings
    transport = transport_for(settings)
    counts = {"sent": 0, "retried": 0, "failed": 0}
    jobs = 0
    unavailable = False
    try:
        while limit is None or sum(counts.values()) + jobs < limit:
            claim = _claim_next()
            if claim is None:
                break
            if claim.template.startswith(JOB_PREFIX):
                outcome, reason = _run_job(app, claim)
                if outcome == "done":
                    jobs += 1
                else:
                    counts[_record(claim, outcome, reason, settings)] += 1
                continue
            outcome, reason = _deliver(app, transport, claim, settings)
            counts[_record(claim, outcome, reason, settings)] += 1
            if outcome == "unavailable":
                unavailable = True
                break
    finally:
        transport.close()
    return SendReport(**counts, unavailable=unavailable, jobs=jobs)


def _due(now: datetime) -> Any:
    return (
        (OutboxMessage.status == "pending")
        & (OutboxMessage.next_attempt_at <= now)
        & or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now)
    )


def _claim_next(*, jobs_only: bool = False) -> _Claim | None:
    """Claim the next due message for this sender, in a transaction of its own.

    PostgreSQL: the candidate is locked ``FOR UPDATE SKIP LOCKED`` (a concurrent sender skips
    to the next one instead of waiting); everywhere, the claim itself is a compare-and-set
    ``UPDATE … WHERE`` still due and unclaimed, so of two senders that read one candidate
    (SQLite has no row locks) only one gets rowcount 1; the other tries the next.
    """
    settings = runtime().settings
    lease = max(MIN_CLAIM, timedelta(seconds=10 * settings.mail_timeout_seconds))
    for _ in range(_CLAIM_TRIES):
        now = runtime().clock.now()
        with unit_of_work() as uow:
            due = _due(now)
            if jobs_only:
                due = due & OutboxMessage.template.startswith(JOB_PREFIX, autoescape=True)
            candidate = uow.session.scalar(
                select(OutboxMessage.id)
                .where(due)
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if candidate is None:
                return None
            claimed = uow.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == candidate, _due(now))
                .values(claimed_until=now + lease)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another sender was first; commit nothing, look again
            row = uow.session.execute(
                select(
                    OutboxMessage.to_address,
                    OutboxMessage.template,
                    OutboxMessage.attempts,
                    OutboxMessage.payload,
                ).where(OutboxMessage.id == candidate)
            ).one()
            return _Claim(candidate, row.to_address, row.template, row.attempts, row.payload)
    return None


def _deliver(
    app: Flask, transport: Transport, claim: _Claim, settings: Settings
) -> tuple[str, str | None]:
    """Send one claimed message: ``(outcome, reason)``, outcome ``sent``, ``unavailable``,
    ``refused`` or ``broken`` (cannot ever be sent)."""
    try:
        raw = _cipher(app).decrypt(claim.payload)
    except InvalidToken:
        return "broken", "payload cannot be decrypted (SECRET_KEY changed?)"
    headers = BytesHeaderParser(policy=policy.default).parsebytes(raw)
    # A payload copied into another row (a database writer redirecting someone's link) would
    # name another message and recipient: refuse it rather than deliver it.
    if f"<{claim.id.hex}@" not in str(headers["Message-ID"]) or _address_of(
        headers["To"]
    ) != _address_of(claim.to_address):
        return "broken", "payload does not belong to this message"
    sender = parseaddr(settings.mail_from)[1]
    try:
        transport.send(sender=sender, to=claim.to_address, raw=raw)
    except TransportUnavailable as exc:
        return "unavailable", exc.reason
    except MessageRefused as exc:
        return "refused", exc.reason
    return "sent", None


def _address_of(value: object) -> str:
    try:
        return Address(addr_spec=parseaddr(str(value))[1]).addr_spec
    except (ValueError, IndexError):
        return str(value)


def _record(claim: _Claim, outcome: str, reason: str | None, settings: Settings) -> str:
    """Write the outcome of one attempt and release the claim; returns the report's column."""
    now = runtime().clock.now()
    attempts = claim.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "claimed_until": None}
    if outcome == "sent":
        values.update(status="sent", sent_at=now, payload=b"", last_error=None)
        column = "sent"
    elif outcome == "broken" or attempts >= settings.mail_max_attempts:
        values.update(status="failed", payload=b"", last_error=reason)
        column = "failed"
    else:
        delay = backoff(attempts, settings.mail_retry_base_seconds)
        values.update(next_attempt_at=now + delay, last_error=reason)
        column = "retried"
    with unit_of_work() as uow:
        uow.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == claim.id, OutboxMessage.status == "pending")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    if column == "sent":
        log.info("mail %s sent (%s, attempt %d)", claim.id, claim.template, attempts)
    elif column == "retried":
        log.warning(
            "mail %s not sent (%s, attempt %d of %d): %s; next attempt at %s",
            claim.id,
            claim.template,
            attempts,
            settings.mail_max_attempts,
            reason,
            values["next_attempt_at"].isoformat(),
        )
    else:
        security_event(
            "mail_failed",
            outcome="failure",
            level=logging.WARNING,
            reason=reason,
            message_id=claim.id,
            template=claim.template,
            attempts=attempts,
        )
    return column


# --- The in-process sender --------------------------------------------------------------------

_SENDERS: weakref.WeakSet[MailSender] = weakref.WeakSet()


class MailSender:
    """One app's sender thread in this process: a daemon that runs :func:`send_pending` in the
    app's context, then sleeps until woken (a commit that queued mail) or ``MAIL_POLL_SECONDS``
    pass. Started lazily, by the first wake-up or the first request (:func:`init_app`), never
    by ``create_app``: gunicorn builds the app before it forks, and threads do not survive a
    fork. Stopped at interpreter exit, or by :meth:`stop`.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._reset()
        _SENDERS.add(self)

    def _reset(self) -> None:
        """Fresh state: at creation, and in a forked child (the parent's thread is not there)."""
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pid = os.getpid()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

    @property
    def enabled(self) -> bool:
        return bool(self.app.extensions["gatehouse"].settings.mail_sender_enabled)

    def start(self) -> None:
        """Start the thread unless it runs (whatever ``MAIL_SENDER_ENABLED`` says)."""
        if self.running:
            return
        with self._lock:
            if self.running:
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="gatehouse-mail-sender", daemon=True
            )
            self._thread.start()

    def ensure_started(self) -> None:
        """Start the thread if ``MAIL_SENDER_ENABLED`` and it does not run yet."""
        if not self.running and self.enabled:
            self.start()

    def wake(self) -> None:
        """Have the thread look now (starting it when enabled); nothing when disabled."""
        if self.enabled:
            self.ensure_started()
            self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to stop after the message in hand; True once it has (within
        ``timeout`` seconds; default: the SMTP timeout and a margin)."""
        thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is None or self._pid != os.getpid():
            return True
        if timeout is None:
            timeout = self.app.extensions["gatehouse"].settings.mail_timeout_seconds * 3 + 1
        if thread is not threading.current_thread():
            thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        poll = self.app.extensions["gatehouse"].settings.mail_poll_seconds
        while not self._stop.is_set():
            self._wake.clear()
            busy = False
            try:
                with self.app.app_context():
                    report = send_pending(limit=PASS_LIMIT)
                busy = report.attempted >= PASS_LIMIT and not report.unavailable
            except Exception:  # the database is down, say; try again next poll
                log.exception("mail sender pass failed; retrying in %s s", poll)
            if not busy:
                self._wake.wait(poll)


def sender_for(app: Flask) -> MailSender:
    """``app``'s in-process sender (created on first use, not started)."""
    return _state(app).sender


def wake(app: Flask) -> None:
    """Wake ``app``'s sender in this process (after a commit that queued mail)."""
    sender_for(app).wake()


def init_app(app: Flask) -> None:
    """Start the in-process sender on the app's first request in each process, so mail left
    by an earlier process (an outage, a restart) goes without waiting for new mail."""
    sender = sender_for(app)
    app.before_request(sender.ensure_started)


@atexit.register
def _stop_senders() -> None:
    for sender in list(_SENDERS):
        sender.stop()


def _after_fork_in_child() -> None:
    for sender in list(_SENDERS):
        sender._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
