"""Login sessions: ending them (shared by the account and auth services), the account's own
view of its sessions, recording their use, and purging the dead ones."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, or_, select, update

from app.errors import SessionNotFound
from app.extensions import db
from app.models import AuthSession, RefreshToken
from app.runtime import runtime
from app.services import audit
from app.services.unit_of_work import UnitOfWork, unit_of_work
from app.services.user_agents import describe_user_agent

if TYPE_CHECKING:
    from app.services.principal import Principal


def end_sessions(
    uow: UnitOfWork,
    session_ids: Sequence[uuid.UUID],
    *,
    reason: str,
    now: datetime,
    account_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
) -> None:
    """Mark live sessions revoked in ``uow``'s transaction.

    Their tokens die as soon as it commits, on every instance: each authenticated request reads
    its session row. What else must learn of it (the audit log and its log line, metrics, the
    cookie-session store) hangs off this one place. ``account_id`` is the sessions' account,
    ``actor_id`` whoever ended them (the account itself unless said otherwise).
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
    announce_ended_sessions(uow, ids, reason=reason, account_id=account_id, actor_id=actor_id)


def announce_ended_sessions(
    uow: UnitOfWork,
    session_ids: Sequence[uuid.UUID],
    *,
    reason: str,
    account_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
) -> None:
    """Record each ended session in the audit log (``session_end``, logged once ``uow``
    commits). For sessions ended by :func:`end_sessions`, or deleted with their account.
    """
    for session_id in session_ids:
        audit.record(
            uow,
            "session_end",
            actor_id=actor_id or account_id,
            subject_id=account_id,
            details={"reason": reason, "session_id": session_id},
        )


# --- The account's own view of its sessions ----------------------------------------------------

# An accepted access token moves ``last_used_at`` at most this often: a write a minute per
# active session instead of one per request.
TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionView:
    """One live session as its account sees it."""

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    device: str
    current: bool


def list_sessions(principal: Principal) -> list[SessionView]:
    """The account's live sessions (not ended, not expired), the most recently used first."""
    now = runtime().clock.now()
    rows = db.session.scalars(
        select(AuthSession).where(
            AuthSession.account_id == principal.account_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
        )
    ).all()
    views = [
        SessionView(
            id=row.id,
            created_at=row.created_at,
            last_used_at=row.last_seen_at,
            expires_at=row.expires_at,
            ip_address=row.ip_address,
            user_agent=row.user_agent,
            device=describe_user_agent(row.user_agent),
            current=row.id == principal.session_id,
        )
        for row in rows
    ]
    return sorted(views, key=lambda view: (view.last_used_at, view.created_at), reverse=True)


def end_own_session(principal: Principal, session_id: uuid.UUID) -> None:
    """End one of the caller's live sessions (the current one too: that is a logout).

    Raises SessionNotFound for an id that is unknown, already ended, expired or another
    account's: one answer, so ids cannot be probed.
    """
    now = runtime().clock.now()
    with unit_of_work() as uow:
        ended = uow.session.execute(
            update(AuthSession)
            .where(
                AuthSession.id == session_id,
                AuthSession.account_id == principal.account_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .values(revoked_at=now, revoked_reason="ended_by_user")
            .execution_options(synchronize_session=False)
        )
        if ended.rowcount != 1:  # type: ignore[attr-defined]
            raise SessionNotFound()
        announce_ended_sessions(
            uow, [session_id], reason="ended_by_user", account_id=principal.account_id
        )


def end_other_sessions(principal: Principal) -> int:
    """End every live session of the caller's account but the one making the request.

    A credential with no session (a personal access token) ends them all. Returns how many.
    """
    now = runtime().clock.now()
    with unit_of_work() as uow:
        query = select(AuthSession.id).where(
            AuthSession.account_id == principal.account_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
        )
        if principal.session_id is not None:
            query = query.where(AuthSession.id != principal.session_id)
        ids = uow.session.scalars(query).all()
        end_sessions(uow, ids, reason="ended_by_user", now=now, account_id=principal.account_id)
        return len(ids)


def touch(session: AuthSession, now: datetime) -> bool:
    """Whether ``session``'s last use is stale enough to record ``now`` (see TOUCH_INTERVAL)."""
    return session.last_used_at is None or now - session.last_used_at >= TOUCH_INTERVAL


def record_use(session_id: uuid.UUID, now: datetime) -> None:
    """Record that an access token of the session was accepted at ``now``.

    Its own small transaction, run after the answer is built; the condition keeps concurrent
    requests of one session from writing more than once per interval.
    """
    with unit_of_work() as uow:
        uow.session.execute(
            update(AuthSession)
            .where(
                AuthSession.id == session_id,
                or_(
                    AuthSession.last_used_at.is_(None),
                    AuthSession.last_used_at <= now - TOUCH_INTERVAL,
                ),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )


# --- Purge -------------------------------------------------------------------------------------


def purge(*, older_than: timedelta, batch_size: int = 500) -> int:
    """Delete sessions that ended or expired more than ``older_than`` ago, with their tokens.

    Safe while serving: each batch is a short transaction of its own; a live session is never
    selected (it is neither ended nor expired), and one that ends meanwhile waits for the next
    purge. Returns how many sessions were deleted.
    """
    cutoff = runtime().clock.now() - older_than
    deleted = 0
    while True:
        with unit_of_work() as uow:
            ids = uow.session.scalars(
                select(AuthSession.id)
                .where(or_(AuthSession.revoked_at < cutoff, AuthSession.expires_at < cutoff))
                .limit(batch_size)
            ).all()
            if not ids:
                return deleted
            # Children first: SQLite enforces ON DELETE CASCADE only with its pragma on.
            uow.session.execute(
                delete(RefreshToken)
                .where(RefreshToken.session_id.in_(ids))
                .execution_options(synchronize_session=False)
            )
            uow.session.execute(
                delete(AuthSession)
                .where(AuthSession.id.in_(ids))
                .execution_options(synchronize_session=False)
            )
        deleted += len(ids)
