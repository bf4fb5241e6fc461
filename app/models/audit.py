"""The audit log: hash-chained records of security events and admin actions (ADM-06, ADM-07).

Rows hold account ids, never a clear address, and no foreign key to ``accounts``: deleting an
account keeps every record that names it, so the chain stays whole (D-8). Records are written
only by ``services/audit.py``; their order is ``sequence`` (1, 2, 3… without gaps), each
linked to the one before by ``prev_hash``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import UTCDateTime, db


class AuditEvent(db.Model):
    """One security event or admin action, with the SHA-256 link to the record before it.

    ``hash`` is SHA-256 over the canonical serialisation of every other column
    (``services/audit.canonical``), ``prev_hash`` included; ``details`` holds event-specific
    ids and reasons, never a password, token, hash or clear email.
    """

    __tablename__ = "audit_events"

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    subject_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    outcome: Mapped[str] = mapped_column(String(32))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        # The filters of GET /admin/audit-events and /accounts/me/activity, newest first.
        Index("ix_audit_events_subject_id_sequence", "subject_id", "sequence"),
        Index("ix_audit_events_actor_id_sequence", "actor_id", "sequence"),
        Index("ix_audit_events_event_sequence", "event", "sequence"),
        Index("ix_audit_events_occurred_at", "occurred_at"),
    )


class AuditChainHead(db.Model):
    """The one row (``id`` 1) naming the last record: its sequence and hash.

    Appending locks it (``SELECT … FOR UPDATE``) just before the commit, so parallel writers
    queue there and never fork the chain; ``flask audit verify`` checks the last record
    against it, so deleting records from the end shows.
    """

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    sequence: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(db.Model):
    """Where a purge cut the chain: the sequence and hash of the last record it deleted.

    Verification starts from the latest checkpoint, so purging old records keeps what is left
    verifiable.
    """

    __tablename__ = "audit_checkpoints"

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    purged: Mapped[int] = mapped_column(BigInteger)
