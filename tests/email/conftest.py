"""The email flows end to end: apps that mail through a real SMTP server on loopback.

``inbox.deliver(app)`` runs one pass of the outbox sender, as the in-process sender or
``flask mail send-pending`` would, and returns what the server received since the last call;
tests follow the links in those messages (``tests.helpers.token_in``/``link_in``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from app.services.mail import send_pending
from tests.mail.conftest import Delivered, SmtpServer, mail_app, smtp_server, stop_senders

__all__ = ["mail_app", "smtp_server", "stop_senders"]


class Inbox:
    """What the SMTP server received, read in the order it arrived."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server
        self._seen = 0

    def deliver(self, app: Flask) -> list[Delivered]:
        """Send what is due in ``app``'s outbox; the messages that arrived since last time."""
        with app.app_context():
            send_pending()
        return self.new()

    def new(self) -> list[Delivered]:
        messages = self.server.messages[self._seen :]
        self._seen = len(self.server.messages)
        return messages

    def to(self, address: str) -> list[Delivered]:
        """Every message received for ``address`` so far, oldest first."""
        return [m for m in self.server.messages if address in m.rcpt_tos]

    def last_to(self, address: str) -> Delivered:
        messages = self.to(address)
        assert messages, f"no message for {address}"
        return messages[-1]


@pytest.fixture
def inbox(smtp_server: SmtpServer) -> Inbox:
    return Inbox(smtp_server)


@pytest.fixture
def flow_app(make_app, smtp_server: SmtpServer) -> Callable[..., Flask]:
    """``flow_app(config_name="testing", **overrides)``: an app mailing through the server.

    No background sender: tests deliver with ``inbox.deliver(app)``, so what a test reads is
    exactly what its requests caused.
    """

    def build(config_name: str = "testing", **overrides: Any) -> Flask:
        return make_app(
            config_name, **{**smtp_server.settings(), "MAIL_SENDER_ENABLED": False, **overrides}
        )

    return build


@pytest.fixture
def build(flow_app, clock_factory) -> Callable[..., Flask]:
    """``build(config_name="testing", **overrides)``: a flow app, its clock frozen (time is
    moved by the tests, never slept). Its Redis prefix is the test's own (``make_app``)."""

    def make(config_name: str = "testing", **overrides: Any) -> Flask:
        app = flow_app(config_name, **overrides)
        clock_factory(app)
        return app

    return make
