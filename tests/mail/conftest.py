"""A real SMTP server on loopback (aiosmtpd) for the mail tests, and apps that send through it.

``smtp_server`` listens on a free port of 127.0.0.1 and keeps every message it accepts in
``smtp_server.messages``; ``stop()`` and ``start()`` take it down and bring it back on the same
port (an outage), and ``refuse`` makes it answer 550 to the addresses listed (a dead mailbox).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

from app.services.mail import sender_for


@dataclass
class Delivered:
    """One message the server accepted: its envelope and the message itself."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[return-value]

    @property
    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]

    @property
    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]


@dataclass
class Mailbox:
    """The aiosmtpd handler: accepts and records, or refuses the addresses in ``refuse``.

    ``on_data`` (if set) runs as a message arrives, before the server answers the DATA.
    """

    messages: list[Delivered] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    on_data: Callable[[Delivered], None] | None = None
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address in self.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        delivered = Delivered(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        if self.on_data is not None:
            self.on_data(delivered)
        with self.arrived:
            self.messages.append(delivered)
            self.arrived.notify_all()
        return "250 2.0.0 Message accepted"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Delivered]:
        """Block until ``count`` messages have arrived (or ``timeout`` passes); return them."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            return list(self.messages)


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1:``port`` that can go down and come back."""

    def __init__(self, port: int) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.mailbox = Mailbox()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[Delivered]:
        return self.mailbox.messages

    @property
    def refuse(self) -> set[str]:
        return self.mailbox.refuse

    def start(self) -> None:
        self._controller = Controller(
            self.mailbox, hostname=self.host, port=self.port, enable_SMTPUTF8=True
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def settings(self) -> dict[str, Any]:
        """The app overrides that send through this server (plain SMTP on loopback)."""
        return {
            "MAIL_SERVER": self.host,
            "MAIL_PORT": self.port,
            "MAIL_USE_TLS": False,
            "MAIL_USE_SSL": False,
            "MAIL_TIMEOUT_SECONDS": 5.0,
        }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_app(make_app, smtp_server: SmtpServer) -> Callable[..., Flask]:
    """``mail_app(**overrides)``: a testing app that sends through ``smtp_server``."""

    def build(**overrides: Any) -> Flask:
        return make_app(**{**smtp_server.settings(), **overrides})

    return build


@pytest.fixture
def stop_senders() -> Iterator[Callable[[Flask], Flask]]:
    """Register apps whose in-process sender a test starts; they are stopped when it ends."""
    apps: list[Flask] = []

    def register(app: Flask) -> Flask:
        apps.append(app)
        return app

    yield register
    for app in apps:
        assert sender_for(app).stop(timeout=10), "the mail sender thread did not stop"
