"""One operation, one transaction, and the work that must come just before or after its commit.

Every service function that writes opens ``with unit_of_work() as uow:`` and does its work on
``uow.session``; the block commits when it ends and rolls back when an exception leaves it, so
a failed request leaves the database as it was and nothing else has to roll back for it.
A block opened inside another joins it: the outermost block owns the transaction.

Side effects register on it instead of running inline:

- ``uow.before_commit(fn)``: runs inside the transaction, just before the commit; for rows that
  must commit or vanish with the change they describe (audit records, outbox messages).
- ``uow.after_commit(fn)``: runs once the commit has succeeded, never after a rollback; for what
  must not happen unless the change is durable (security-event log lines, mail delivery,
  invalidating another store). A failing hook is logged; the commit stands.

``uow.commit()`` commits early, for the rare operation that must keep what it did and still
fail (refresh-token reuse ends the session, then answers 401).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from app.extensions import db

log = logging.getLogger("gatehouse.unit_of_work")

Hook = Callable[[], None]
_SESSION_KEY = "gatehouse.unit_of_work"


class UnitOfWork:
    """The transaction of one operation on ``session``, with its commit hooks."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._before_commit: list[Hook] = []
        self._after_commit: list[Hook] = []

    def before_commit(self, hook: Hook) -> None:
        """Run ``hook`` in the transaction, just before it commits (it may add rows)."""
        self._before_commit.append(hook)

    def after_commit(self, hook: Hook) -> None:
        """Run ``hook`` once the transaction has committed; dropped if it rolls back."""
        self._after_commit.append(hook)

    def commit(self) -> None:
        """Run the before-commit hooks, commit, then run the after-commit hooks."""
        while self._before_commit:
            self._before_commit.pop(0)()
        self.session.commit()
        hooks, self._after_commit = self._after_commit, []
        for hook in hooks:
            try:
                hook()
            except Exception:  # the change is committed; a side effect must not undo the answer
                log.exception("after-commit hook %r failed", hook)

    def rollback(self) -> None:
        """Undo everything since the last commit and forget the hooks registered meanwhile."""
        self._before_commit.clear()
        self._after_commit.clear()
        self.session.rollback()


@contextmanager
def unit_of_work() -> Iterator[UnitOfWork]:
    """Open (or join) the unit of work of the current database session.

    Commits when the outermost block ends; rolls back when an exception leaves it.
    """
    session = db.session()
    current: UnitOfWork | None = session.info.get(_SESSION_KEY)
    if current is not None:
        yield current
        return
    uow = UnitOfWork(session)
    session.info[_SESSION_KEY] = uow
    try:
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
