"""Helpers the tests share: API steps and problem-document assertions."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Row, Table, select, text

from app.extensions import db
from app.models import OutboxMessage
from app.runtime import runtime
from app.services import mail
from app.services.tokens import load_secret_key

STRONG_PASSWORD = "correct horse battery staple"
# Primary keys of the rows the migrations seed, per table; filled once per run by conftest.
SEEDED_ROWS: dict[str, set[tuple[Any, ...]]] = {}
# The audit log grows with failures too and outlives deleted accounts (ADM-06, D-8): the state
# checks below leave it out; tests/test_audit.py checks what it records.
AUDIT_TABLES = frozenset({"audit_events", "audit_chain_head", "audit_checkpoints"})


@dataclass
class Tokens:
    access_token: str
    refresh_token: str
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class ApiActions:
    """Sign-up and login steps, so tests can say what they check and skip the ceremony."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def signup(
        self,
        email: str = "ada@example.com",
        password: str = STRONG_PASSWORD,
        *,
        verify: bool | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Sign up; 201, or 202 where sign-ups answer generically (production).

        ``verify`` follows the mailed verification link too; by default only where logins
        need a verified address (production), so that ``login`` works after it.
        """
        response = self.client.post(
            "/api/v1/accounts", json={"email": email, "password": password, **extra}
        )
        settings = app_runtime(self.client.application).settings
        expected = 202 if settings.signup_generic_answer else 201
        assert response.status_code == expected, response.get_json()
        if verify or (verify is None and settings.login_requires_verified_email):
            self.verify_email(email)
        return response.get_json()

    def verify_email(self, email: str = "ada@example.com") -> None:
        """Follow the verification link last mailed to ``email`` (read from the outbox)."""
        token = mailed_token(self.client.application, email, "verify_email")
        response = self.client.post("/api/v1/auth/verify-email", json={"token": token})
        assert response.status_code == 204, response.get_json()

    def login(self, email: str = "ada@example.com", password: str = STRONG_PASSWORD) -> Tokens:
        response = self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        return Tokens(body["access_token"], body["refresh_token"], body)

    def signup_and_login(
        self, email: str = "ada@example.com", password: str = STRONG_PASSWORD
    ) -> Tokens:
        self.signup(email, password)
        return self.login(email, password)

    def refresh(self, refresh_token: str):
        return self.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})

    def me(self, access_token: str):
        return self.client.get(
            "/api/v1/accounts/me", headers={"Authorization": f"Bearer {access_token}"}
        )


def mailed_messages(app: Flask, to: str, template: str | None = None) -> list[EmailMessage]:
    """The messages queued for ``to`` (of ``template``), oldest first, decrypted from the outbox.

    For tests that need a mailed token without an SMTP server; tests of delivery itself read
    what a real server received (tests/mail/).
    """
    with app.app_context():
        mail.run_jobs()  # deferred work (a reset request's) queues its messages first
        cipher = mail.outbox_cipher(load_secret_key(app_runtime(app).settings))
        query = select(OutboxMessage).where(OutboxMessage.to_address == to)
        if template is not None:
            query = query.where(OutboxMessage.template == template)
        rows = db.session.scalars(query.order_by(OutboxMessage.created_at)).all()
        messages = [
            BytesParser(policy=policy.default).parsebytes(cipher.decrypt(row.payload))
            for row in rows
            if row.payload
        ]
        db.session.remove()
    return messages


def link_in(message: EmailMessage) -> str:
    """The one link of a message's text body."""
    text = message.get_body(("plain",)).get_content()
    links = re.findall(r"https?://\S+", text)
    assert len(links) == 1, text
    return links[0]


def token_in(message: EmailMessage) -> str:
    """The token of a message's link (Gatehouse's pages carry it as ``#token=``)."""
    return re.search(r"[#?&]token=([A-Za-z0-9_-]+)", link_in(message)).group(1)


def mailed_token(app: Flask, to: str, template: str) -> str:
    """The token of the last ``template`` message queued for ``to``."""
    messages = mailed_messages(app, to, template)
    assert messages, f"no {template} message for {to}"
    return token_in(messages[-1])


def assert_problem(response, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem document with ``status`` and ``code``; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:gatehouse:problem:{code}"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def count_rows(app: Flask, table: str) -> int:
    with app.app_context():
        return db.session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def app_runtime(app: Flask):
    with app.app_context():
        return runtime()


def primary_key_of(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(row._mapping[column] for column in table.primary_key.columns)


def snapshot(app: Flask, *, ignore: tuple[str, ...] = ()) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table the models declare, as sortable text (DATA-01 checks).

    ``ignore`` names ``table.column`` values left out (a counter a failure is meant to move).
    The audit tables are left out (``AUDIT_TABLES``).
    """
    state = {}
    with app.app_context():
        for table in db.metadata.sorted_tables:
            if table.name in AUDIT_TABLES:
                continue
            columns = [c for c in table.columns if f"{table.name}.{c.name}" not in ignore]
            rows = db.session.execute(table.select().with_only_columns(*columns)).all()
            state[table.name] = sorted(tuple(str(value) for value in row) for row in rows)
    return state


def rows_beyond_seed(app: Flask) -> dict[str, int]:
    """Per table, how many rows exist besides what the migrations seed (audit tables aside)."""
    counts = {}
    with app.app_context():
        for table in db.metadata.sorted_tables:
            if table.name in AUDIT_TABLES:
                continue
            rows = db.session.execute(table.select()).all()
            seeded = SEEDED_ROWS.get(table.name, set())
            counts[table.name] = sum(primary_key_of(table, row) not in seeded for row in rows)
    return counts


class CountingListener:
    """A TCP port that accepts and counts connections, standing in for a Redis server."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


class TcpRelay:
    """A loopback port relaying to another (Redis): ``cut()`` stops it as an outage would.

    Lets a test take Redis away from the app mid-run, for real, without touching the server
    the rest of the suite uses.
    """

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self._open: list[socket.socket] = []
        self._cut = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.close()

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        self._cut.set()
        for connection in self._open:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
                connection.close()
        self._open.clear()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        self._stopped.set()
        self._thread.join()
        self.server.close()
