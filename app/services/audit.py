"""The audit log: one hash-chained record per security event and admin action (ADM-06, ADM-07).

``record(uow, event, actor_id=…, subject_id=…, outcome=…, details=…)`` adds the record to
``uow``'s transaction (a rolled-back change leaves none; a committed one always has its record)
and, once the transaction has committed, emits the same event as a structured log line through
``events.security_event`` (so the log and the metrics see every audited event). The request's
client address, User-Agent and request id are captured when there is a request. An event with
no change to ride on (a failed login of an unknown address) is recorded by
:func:`record_alone`, in a unit of work of its own.

Rows hold account ids, never a clear address: where one must be referenced, a keyed digest
(:func:`email_reference`, HMAC-SHA256 under a key derived from ``SECRET_KEY``). No password,
token, code or hash goes in ``details`` (a key naming one is refused).

**The chain.** Each record stores ``prev_hash`` (the ``hash`` of the record before it, or 64
zeros for the first) and ``hash``: SHA-256 over a canonical serialisation of all its columns
(:func:`canonical`). Sequence numbers run 1, 2, 3… without gaps. A transaction's records are
appended in one ``before_commit`` hook that runs after the transaction's other work: it locks
the one ``audit_chain_head`` row (an ``UPDATE … RETURNING``, the row lock on PostgreSQL, the
write lock on SQLite), numbers and links its records after the head, inserts them and moves
the head. The lock is held from the append to the commit only, and parallel writers queue on
it, so the chain never forks. :func:`verify` walks it from the latest checkpoint and names the
first record that was altered, inserted or deleted; :func:`purge` deletes old records and
anchors a checkpoint (the sequence and hash of the last one deleted) so the rest still
verifies.

What a chain of plain hashes cannot show: someone with write access to the database who
rewrites every record after the one they changed, and the head. Compare the head that
``flask audit verify`` prints with a copy kept elsewhere to catch that too.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import AuditChainHead, AuditCheckpoint, AuditEvent
from app.runtime import runtime
from app.services.emails import email_lookup_key
from app.services.events import security_event
from app.services.tokens import load_secret_key
from app.services.unit_of_work import UnitOfWork, unit_of_work

GENESIS_HASH = "0" * 64
HEAD_ID = 1
# Written in front of every serialisation: a later format changes it, and old records keep theirs.
CHAIN_FORMAT = "gatehouse-audit-v1"
# Events logged at WARNING rather than INFO (as they were before the audit log).
WARNING_EVENTS = frozenset({"authn_token_reuse"})
# Keys a ``details`` mapping may never carry: their values are secrets or clear addresses.
FORBIDDEN_DETAILS = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "password_hash",
        "token",
        "access_token",
        "refresh_token",
        "token_hash",
        "mfa_token",
        "code",
        "recovery_code",
        "secret",
        "email",
        "new_email",
    }
)
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 100
_HKDF_INFO = b"gatehouse audit email"


# --- Where a request came from --------------------------------------------------------------


class Origin(Protocol):
    client_ip: str | None
    user_agent: str | None
    request_id: str | None


_origin_source: Callable[[], Origin | None] = lambda: None  # noqa: E731


def read_origin_from(source: Callable[[], Origin | None]) -> None:
    """Take the request's origin from ``source`` (``http.request_origin``, set by the factory:
    services never read the request themselves)."""
    global _origin_source
    _origin_source = source


# --- Recording ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    occurred_at: datetime
    event: str
    actor_id: uuid.UUID | None
    subject_id: uuid.UUID | None
    outcome: str
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any] = field(default_factory=dict)


# The records staged for each outermost unit of work, appended by one hook just before it commits.
_PENDING: weakref.WeakKeyDictionary[UnitOfWork, list[_Entry]] = weakref.WeakKeyDictionary()


def record(
    uow: UnitOfWork,
    event: str,
    *,
    actor_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = None,
    outcome: str = "success",
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record ``event`` in ``uow``'s transaction and log it once the transaction commits.

    ``actor_id`` is the account that did it (None when nobody proved who they are, as for a
    failed login), ``subject_id`` the account it was done to. In a nested block, the record
    goes if the block rolls back. Raises ValueError for a ``details`` key that names a secret.
    """
    origin = _origin_source()
    entry = _Entry(
        occurred_at=runtime().clock.now(),
        event=event,
        actor_id=actor_id,
        subject_id=subject_id,
        outcome=outcome,
        client_ip=origin.client_ip if origin else None,
        user_agent=origin.user_agent if origin else None,
        request_id=origin.request_id if origin else None,
        details=_clean_details(details or {}),
    )
    root = uow
    while root.parent is not None:
        root = root.parent
    # Staged only when the block's hooks reach the outermost commit, i.e. if it did not roll back.
    uow.before_commit(functools.partial(_stage, root, entry))
    uow.after_commit(functools.partial(_log, entry))


def record_alone(
    event: str,
    *,
    actor_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = None,
    outcome: str = "success",
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record an event that changes nothing else (a refused login), in its own unit of work."""
    with unit_of_work() as uow:
        record(
            uow,
            event,
            actor_id=actor_id,
            subject_id=subject_id,
            outcome=outcome,
            details=details,
        )


def email_reference(address: str) -> str | None:
    """A keyed digest of ``address`` (case-folded) for records that must name one (D-8):
    equal for the same address, useless without ``SECRET_KEY``. None for no address at all."""
    key = email_lookup_key(address)
    if key is None:
        return None
    mac = hmac.new(_email_key(load_secret_key(runtime().settings)), key.encode(), "sha256")
    return mac.hexdigest()


@functools.lru_cache(maxsize=4)
def _email_key(secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret)


def _clean_details(details: Mapping[str, Any]) -> dict[str, Any]:
    forbidden = FORBIDDEN_DETAILS.intersection(details)
    if forbidden:
        raise ValueError(f"audit details may not carry {sorted(forbidden)}")
    # Through JSON and back: what is hashed now is exactly what the column hands back later.
    return json.loads(json.dumps({key: _plain(value) for key, value in details.items()}))


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return _timestamp(value)
    return str(value)  # UUIDs, enums


def _stage(root: UnitOfWork, entry: _Entry) -> None:
    pending = _PENDING.setdefault(root, [])
    if not pending:
        # Registered while the commit runs its hooks: it runs after every hook queued so far,
        # so the head is locked as late as possible, once the transaction's other work is done.
        root.before_commit(functools.partial(_append, root))
    pending.append(entry)


def _append(root: UnitOfWork) -> None:
    entries = _PENDING.pop(root, [])
    if not entries:
        return
    session = root.session
    sequence, previous = _lock_head(session)
    rows = []
    for entry in entries:
        sequence += 1
        row = {
            "sequence": sequence,
            "occurred_at": entry.occurred_at,
            "event": entry.event,
            "actor_id": entry.actor_id,
            "subject_id": entry.subject_id,
            "outcome": entry.outcome,
            "client_ip": entry.client_ip,
            "user_agent": entry.user_agent,
            "request_id": entry.request_id,
            "details": entry.details,
            "prev_hash": previous,
        }
        row["hash"] = previous = content_hash(row)
        rows.append(row)
    move_head = (
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(sequence=sequence, hash=previous)
        .execution_options(synchronize_session=False)
    )
    if session.get_bind().dialect.name == "postgresql":
        # One round trip, not two, while every other audited transaction waits for the head:
        # the records go in a data-modifying WITH of the head's own UPDATE.
        session.execute(move_head.add_cte(insert(AuditEvent).values(rows).cte("appended")))
    else:  # SQLite has no data-modifying WITH (and one writer at a time anyway)
        session.execute(insert(AuditEvent), rows)
        session.execute(move_head)


def _lock_head(session: Session) -> tuple[int, str]:
    """Lock the chain's head row and return ``(sequence, hash)`` of the last record.

    An UPDATE that changes nothing takes the row lock on PostgreSQL (a writer racing this one
    waits here until this transaction ends, then reads the head it left) and the database's
    write lock on SQLite, which has no ``FOR UPDATE``. The first append ever creates the row.
    """
    lock = (
        update(AuditChainHead)
        .where(AuditChainHead.id == HEAD_ID)
        .values(sequence=AuditChainHead.sequence)
        .returning(AuditChainHead.sequence, AuditChainHead.hash)
        .execution_options(synchronize_session=False)
    )
    head = session.execute(lock).first()
    if head is None:
        sequence, last_hash = _chain_end(session)
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        # Two first appends race to create it: the primary key lets one in, both then lock it.
        session.execute(
            dialect_insert(AuditChainHead)
            .values(id=HEAD_ID, sequence=sequence, hash=last_hash)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        head = session.execute(lock).one()
    return head.sequence, head.hash


def _chain_end(session: Session) -> tuple[int, str]:
    """The last record, else the latest checkpoint, else the genesis: where a new head starts."""
    last = session.execute(
        select(AuditEvent.sequence, AuditEvent.hash).order_by(AuditEvent.sequence.desc()).limit(1)
    ).first()
    if last is not None:
        return last.sequence, last.hash
    return _start(session)


def _start(session: Session) -> tuple[int, str]:
    """Where verification starts: the latest checkpoint, else before the first record."""
    checkpoint = session.execute(
        select(AuditCheckpoint.sequence, AuditCheckpoint.hash)
        .order_by(AuditCheckpoint.sequence.desc())
        .limit(1)
    ).first()
    if checkpoint is not None:
        return checkpoint.sequence, checkpoint.hash
    return 0, GENESIS_HASH


def _log(entry: _Entry) -> None:
    fields: dict[str, Any] = dict(entry.details)
    fields["account_id"] = entry.subject_id
    if entry.actor_id is not None and entry.actor_id != entry.subject_id:
        fields["actor_id"] = entry.actor_id
    level = logging.WARNING if entry.event in WARNING_EVENTS else logging.INFO
    security_event(entry.event, outcome=entry.outcome, level=level, **fields)


# --- The chain ---------------------------------------------------------------------------


def canonical(row: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers: every column but ``hash``, as sorted, compact JSON."""
    document = {
        "sequence": int(row["sequence"]),
        "occurred_at": _timestamp(row["occurred_at"]),
        "event": row["event"],
        "actor_id": _text(row["actor_id"]),
        "subject_id": _text(row["subject_id"]),
        "outcome": row["outcome"],
        "client_ip": row["client_ip"],
        "user_agent": row["user_agent"],
        "request_id": row["request_id"],
        "details": row["details"],
        "prev_hash": row["prev_hash"],
    }
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return f"{CHAIN_FORMAT}\n{text}".encode()


def content_hash(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify` found. ``sequence`` names the first bad record (or where one is
    missing) when ``ok`` is False."""

    ok: bool
    checked: int
    start_sequence: int
    head_sequence: int | None
    head_hash: str | None
    sequence: int | None = None
    problem: str | None = None


_COLUMNS = [column for column in AuditEvent.__table__.columns]


def verify(*, batch_size: int = 1000) -> ChainReport:
    """Walk the chain from the latest checkpoint and check every link, hash and number.

    Reports the first record that was altered (its hash does not match its content), the
    first whose link is broken (a record before it was altered, inserted or deleted), a gap in
    the sequence (records deleted), records before the checkpoint, and a last record that is
    not the head (records deleted from, or added to, the end).
    """
    session = db.session()
    try:
        return _verify(session, batch_size)
    finally:
        session.rollback()


def _verify(session: Session, batch_size: int) -> ChainReport:
    start_sequence, previous = _start(session)
    head = session.execute(
        select(AuditChainHead.sequence, AuditChainHead.hash).where(AuditChainHead.id == HEAD_ID)
    ).first()
    head_sequence, head_hash = (head.sequence, head.hash) if head else (None, None)

    def failed(sequence: int | None, problem: str, checked: int) -> ChainReport:
        return ChainReport(
            False, checked, start_sequence, head_sequence, head_hash, sequence, problem
        )

    earliest = session.scalar(select(func.min(AuditEvent.sequence)))
    if earliest is not None and earliest <= start_sequence:
        return failed(earliest, f"record at or before the checkpoint {start_sequence}", 0)
    expected, checked = start_sequence + 1, 0
    while True:
        rows = (
            session.execute(
                select(*_COLUMNS)
                .where(AuditEvent.sequence >= expected)
                .order_by(AuditEvent.sequence)
                .limit(batch_size)
            )
            .mappings()
            .all()
        )
        for row in rows:
            if row["sequence"] != expected:
                return failed(
                    row["sequence"],
                    f"records {expected} to {row['sequence'] - 1} are missing (deleted)",
                    checked,
                )
            if content_hash(row) != row["hash"]:
                return failed(row["sequence"], "content does not match its hash (altered)", checked)
            if row["prev_hash"] != previous:
                return failed(
                    row["sequence"],
                    "link to the record before is broken (altered, inserted or deleted)",
                    checked,
                )
            previous, expected, checked = row["hash"], expected + 1, checked + 1
        if len(rows) < batch_size:
            break
    last = expected - 1
    if head is None:
        if checked:
            return failed(last, "the chain head is missing", checked)
    elif head_sequence != last or head_hash != previous:
        if head_sequence is not None and last > head_sequence:
            return failed(head_sequence + 1, "records after the head (inserted)", checked)
        return failed(
            last + 1, f"records {last + 1} to {head_sequence} are missing (deleted)", checked
        )
    return ChainReport(True, checked, start_sequence, head_sequence, head_hash)


# --- Retention -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeResult:
    purged: int
    checkpoint: int | None  # the sequence the chain now starts after


class ChainBroken(Exception):
    """A purge met a record that does not verify; it deletes nothing past the last good one."""

    def __init__(self, sequence: int, problem: str) -> None:
        super().__init__(f"sequence {sequence}: {problem}")
        self.sequence = sequence


def purge(*, older_than: timedelta, batch_size: int = 1000) -> PurgeResult:
    """Delete the oldest records, those before the first one newer than ``older_than``, in
    batches; each batch anchors a checkpoint (the last deleted record's sequence and hash) in
    its own transaction, so the chain verifies at every moment.

    Each batch is verified before it is deleted: a purge never hides an altered record.
    Raises ChainBroken.
    """
    cutoff = runtime().clock.now() - older_than
    purged, checkpoint = 0, None
    while True:
        with unit_of_work() as uow:
            session = uow.session
            start_sequence, previous = _start(session)
            keep_from = session.scalar(
                select(func.min(AuditEvent.sequence)).where(AuditEvent.occurred_at >= cutoff)
            )
            query = select(*_COLUMNS).where(AuditEvent.sequence > start_sequence)
            if keep_from is not None:
                query = query.where(AuditEvent.sequence < keep_from)
            rows = (
                session.execute(query.order_by(AuditEvent.sequence).limit(batch_size))
                .mappings()
                .all()
            )
            if not rows:
                return PurgeResult(purged, checkpoint)
            _check_segment(rows, start_sequence, previous)
            last = rows[-1]
            end = last["sequence"]
            session.execute(
                delete(AuditEvent)
                .where(AuditEvent.sequence > start_sequence, AuditEvent.sequence <= end)
                .execution_options(synchronize_session=False)
            )
            session.add(
                AuditCheckpoint(
                    sequence=last["sequence"],
                    hash=last["hash"],
                    occurred_at=last["occurred_at"],
                    created_at=runtime().clock.now(),
                    purged=len(rows),
                )
            )
        purged, checkpoint = purged + len(rows), last["sequence"]


def _check_segment(rows: Sequence[Mapping[str, Any]], start_sequence: int, previous: str) -> None:
    expected = start_sequence + 1
    for row in rows:
        if row["sequence"] != expected:
            raise ChainBroken(row["sequence"], f"records from {expected} are missing")
        if content_hash(row) != row["hash"] or row["prev_hash"] != previous:
            raise ChainBroken(row["sequence"], "does not verify")
        previous, expected = row["hash"], expected + 1


# --- Reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditPage:
    """Records newest first; ``next_cursor`` (a sequence) asks for the ones before them."""

    events: list[AuditEvent]
    next_cursor: int | None


def list_events(
    *,
    event: str | None = None,
    actor_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: int | None = None,
    limit: int = PAGE_SIZE_DEFAULT,
) -> AuditPage:
    """A page of records matching every filter given, newest (highest sequence) first.

    ``since`` is inclusive, ``until`` exclusive; ``cursor`` is the ``next_cursor`` of the page
    before. ``limit`` is capped at ``PAGE_SIZE_MAX``.
    """
    query = select(AuditEvent)
    if event is not None:
        query = query.where(AuditEvent.event == event)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if subject_id is not None:
        query = query.where(AuditEvent.subject_id == subject_id)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    if cursor is not None:
        query = query.where(AuditEvent.sequence < cursor)
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    rows = list(
        db.session.scalars(query.order_by(AuditEvent.sequence.desc()).limit(limit + 1)).all()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(rows, rows[-1].sequence if more and rows else None)


def list_activity(
    account_id: uuid.UUID, *, cursor: int | None = None, limit: int = PAGE_SIZE_DEFAULT
) -> AuditPage:
    """The account's own security events (it is their subject), newest first."""
    return list_events(subject_id=account_id, cursor=cursor, limit=limit)
