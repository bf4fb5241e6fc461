"""Operations on login sessions shared by the account and auth services."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update

from app.models import AuthSession
from app.services.events import security_event
from app.services.unit_of_work import UnitOfWork


def end_sessions(
    uow: UnitOfWork, session_ids: Sequence[uuid.UUID], *, reason: str, now: datetime
) -> None:
    """Mark live sessions revoked in ``uow``'s transaction.

    Their tokens die as soon as it commits, on every instance: each authenticated request reads
    its session row. What else must learn of it (the log today; metrics, the cookie-session
    store and the audit log later) hangs off this one place.
    """
    if not session_ids:
        return
    ids = list(session_ids)
    uow.session.execute(
        update(AuthSession)
        .where(AuthSession.id.in_(ids), AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    announce_ended_sessions(uow, ids, reason=reason)


def announce_ended_sessions(
    uow: UnitOfWork, session_ids: Sequence[uuid.UUID], *, reason: str
) -> None:
    """Tell whoever listens, once ``uow`` commits, that these sessions are over.

    For sessions ended by :func:`end_sessions`, or deleted with their account.
    """
    ids = list(session_ids)

    def announce() -> None:
        for session_id in ids:
            security_event("session_end", reason=reason, session_id=session_id)

    if ids:
        uow.after_commit(announce)
