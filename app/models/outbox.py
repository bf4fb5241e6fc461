"""Mail waiting to be delivered: the outbox, written in the transaction that causes it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import UTCDateTime, db

OUTBOX_STATUSES = ("pending", "sent", "failed")


class OutboxMessage(db.Model):
    """One message to one recipient, kept until the SMTP server has accepted it.

    ``payload`` is the rendered message (headers, text and HTML bodies), encrypted with a key
    derived from ``SECRET_KEY`` (``services/mail.py``): the bodies hold one-time tokens, which
    no table may keep in the clear (DATA-03). It is erased (empty) once the message is sent or
    has failed for good; the other columns stay as the record of what was sent, when.

    ``status`` is ``pending`` until the server accepted it (``sent``) or it ran out of attempts
    (``failed``); ``next_attempt_at`` is when a sender may try it next, and ``claimed_until``
    the lease of the sender trying it now, so two senders never deliver one message at once.
    ``last_error`` is a short reason (an SMTP code, an exception's name), never the message.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        # What a sender asks for: due pending messages, oldest first.
        Index("ix_outbox_messages_status_next_attempt_at", "status", "next_attempt_at"),
        CheckConstraint(
            "status IN ('pending', 'sent', 'failed')",
            name="status",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    to_address: Mapped[str] = mapped_column(String(254))
    # The account the message is about (None for deferred jobs): its mail, to any address it
    # had, goes when it is deleted (DATA-04).
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    template: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
