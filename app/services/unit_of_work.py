"""One operation, one transaction, and the work that must come just before or after its commit.

Every service function that writes opens ``with unit_of_work() as uow:`` and does its work on
``uow.session``; the block commits when it ends and rolls back when an exception leaves it, so
a failed request leaves the database as it was and nothing else has to roll back for it.

A block opened inside another (a CLI command or an admin action that calls a service and then
writes its own audit record) does not commit: it runs in a SAVEPOINT of the outer transaction.
If it fails, only its own writes and hooks are undone; if it succeeds, its hooks join the outer
block's and everything commits, or not, with the outermost block.

Side effects register on it instead of running inline:

- ``uow.before_commit(fn)``: runs inside the transaction, just before the commit; for rows that
  must commit or vanish with the change they describe (audit records, outbox messages).
- ``uow.after_commit(fn)``: runs once the commit has succeeded, never after a rollback; for what
  must not happen unless the change is durable (security-event log lines, mail delivery,
  invalidating another store). A failing hook is logged; the commit stands. A hook may open a
  unit of work of its own: it starts a new transaction.

``uow.commit()`` commits early, for the rare operation that must keep what it did and still
fail (refresh-token reuse ends the session, then answers 401); only the outermost block may.
``uow.savepoint()`` marks a point to roll back to without losing the rest (a unique index
deciding a race: ``IntegrityError`` undoes the insert, not the transaction).

Reads outside a unit of work (resolving a token, reading an account) need no transaction: on
PostgreSQL they run in autocommit, so a request that only reads costs its statements and no
``BEGIN``/``ROLLBACK`` round trips. The outermost block turns the connection transactional
before its first statement; everything it reads and writes is one transaction, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from app.extensions import db

log = logging.getLogger("gatehouse.unit_of_work")

Hook = Callable[[], None]
_SESSION_KEY = "gatehouse.unit_of_work"


class UnitOfWork:
    """The transaction of one operation on ``session``, with its commit hooks.

    ``parent`` is the enclosing unit of work for a nested block, which runs in ``savepoint``.
    """

    def __init__(
        self,
        session: Session,
        parent: UnitOfWork | None = None,
        savepoint: SessionTransaction | None = None,
    ) -> None:
        self.session = session
        self.parent = parent
        self._savepoint = savepoint
        self._before_commit: list[Hook] = []
        self._after_commit: list[Hook] = []

    @property
    def is_outermost(self) -> bool:
        return self.parent is None

    def before_commit(self, hook: Hook) -> None:
        """Run ``hook`` in the transaction, just before it commits (it may add rows)."""
        self._before_commit.append(hook)

    def after_commit(self, hook: Hook) -> None:
        """Run ``hook`` once the transaction has committed; dropped if it rolls back."""
        self._after_commit.append(hook)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo only what the block wrote if it raises (the exception still propagates)."""
        with self.session.begin_nested():
            yield

    def flush_unique(self, refusal: Exception, *new: object) -> None:
        """Add ``new`` (if any) and flush in a savepoint, where a unique index decides a race.

        When the index refuses the flush, only it is undone and ``refusal`` (a domain error,
        e.g. EmailTaken) is raised in place of the ``IntegrityError``.
        """
        try:
            with self.savepoint():
                self.session.add_all(new)
                self.session.flush()
        except IntegrityError:
            raise refusal from None

    def commit(self) -> None:
        """Run the before-commit hooks, commit, then run the after-commit hooks.

        Raises RuntimeError in a nested block: only the outermost one decides.
        """
        if not self.is_outermost:
            raise RuntimeError("only the outermost unit of work commits")
        while self._before_commit:
            self._before_commit.pop(0)()
        self.session.commit()
        hooks, self._after_commit = self._after_commit, []
        # A hook that writes opens a unit of work of its own, not this finished one.
        registered = self.session.info.pop(_SESSION_KEY, None)
        try:
            for hook in hooks:
                try:
                    hook()
                except Exception:  # the change is committed; a side effect must not undo it
                    log.exception("after-commit hook %r failed", hook)
        finally:
            if registered is not None:
                self.session.info[_SESSION_KEY] = registered

    def rollback(self) -> None:
        """Undo this block's writes and forget the hooks it registered meanwhile.

        The outermost block rolls the transaction back; a nested one, its savepoint.
        """
        self._before_commit.clear()
        self._after_commit.clear()
        if self._savepoint is not None:
            if self._savepoint.is_active:
                self._savepoint.rollback()
            self._savepoint = self.session.begin_nested()
        else:
            self.session.rollback()

    def _hand_hooks_to_parent(self) -> None:
        assert self.parent is not None
        self.parent._before_commit.extend(self._before_commit)
        self.parent._after_commit.extend(self._after_commit)


@contextmanager
def unit_of_work() -> Iterator[UnitOfWork]:
    """Open the unit of work of the current database session, or a nested one inside it.

    The outermost block commits when it ends; any block rolls back (its own part) when an
    exception leaves it.
    """
    session = db.session()
    parent: UnitOfWork | None = session.info.get(_SESSION_KEY)
    if parent is not None:
        yield from _nested(session, parent)
        return
    uow = UnitOfWork(session)
    session.info[_SESSION_KEY] = uow
    try:
        _make_transactional(session)
        yield uow
        uow.commit()
    except BaseException:
        try:
            uow.rollback()
        except Exception:  # the database may be what failed; the original error matters more
            log.warning("rollback failed", exc_info=True)
        raise
    finally:
        session.info.pop(_SESSION_KEY, None)


def _make_transactional(session: Session) -> None:
    """Reads before this block may have run in autocommit; its own statements need a transaction.

    With no transaction begun yet, the one the block begins is a real one (``_reads_autocommit``
    sees the block). Otherwise the connection is switched back now, before any statement of the
    block: psycopg then opens the transaction with the next one.
    """
    if not session.in_transaction():
        return
    dbapi_connection = session.connection().connection.dbapi_connection
    if getattr(dbapi_connection, "autocommit", False):
        dbapi_connection.autocommit = False


@event.listens_for(Session, "after_begin")
def _reads_autocommit(session: Session, _transaction, connection: Connection) -> None:
    """A session's reads outside a unit of work run in autocommit on PostgreSQL.

    Called as the session takes a connection, before any statement. The pool's checkout leaves
    every connection transactional (``app.database``), so only this session's reads change.
    """
    if connection.dialect.name == "postgresql" and session.info.get(_SESSION_KEY) is None:
        connection.connection.dbapi_connection.autocommit = True


def _nested(session: Session, parent: UnitOfWork) -> Iterator[UnitOfWork]:
    child = UnitOfWork(session, parent=parent, savepoint=session.begin_nested())
    session.info[_SESSION_KEY] = child
    try:
        yield child
        if child._savepoint is not None and child._savepoint.is_active:
            child._savepoint.commit()  # RELEASE SAVEPOINT: the writes stay in the parent's
        child._hand_hooks_to_parent()
    except BaseException:
        if child._savepoint is not None and child._savepoint.is_active:
            child._savepoint.rollback()
        raise
    finally:
        session.info[_SESSION_KEY] = parent


def release_connection() -> None:
    """Give the connection this request's reads hold back to the pool, before slow work.

    A read begins a transaction that keeps a pooled connection until the request ends; a
    password hash takes tens of milliseconds, during which the connection would sit idle while
    other requests wait for one (REL-10). Loaded objects stay usable: their attributes are read
    again when next touched. Raises RuntimeError inside a unit of work, or with writes pending.
    """
    session = db.session()
    if (
        session.info.get(_SESSION_KEY) is not None
        or session.new
        or session.dirty
        or session.deleted
    ):
        raise RuntimeError("release_connection() is for reads only, outside a unit of work")
    session.rollback()
