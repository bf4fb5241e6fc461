"""Operations on login sessions shared by the account and auth services."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update

from app.extensions import db
from app.models import AuthSession


def end_sessions(
    session_ids: list[uuid.UUID], *, reason: str, now: datetime
) -> list[uuid.UUID]:
    """Mark live sessions revoked in the caller's transaction; return the ids to announce."""
    if not session_ids:
        return []
    db.session.execute(
        update(AuthSession)
        .where(AuthSession.id.in_(session_ids), AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return session_ids
