"""The database engine's set-up: SQLite pragmas, a PostgreSQL superuser warning, pool metrics.

Pool sizes and timeouts are settings (``config.engine_options``); this adds what needs the
engine itself. Nothing here connects: each hook runs on a connection's first use.
"""

from __future__ import annotations

import logging

from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import metrics

log = logging.getLogger("gatehouse.database")


def configure_engine(engine: Engine, *, serving: bool) -> None:
    """Per-dialect connection set-up, the superuser warning and the pool gauge."""
    metrics.watch_pool(engine)
    if engine.dialect.name == "postgresql" and serving:
        _warn_on_superuser(engine)
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked.
        cursor.execute("PRAGMA foreign_keys=ON")
        # Readers don't block the writer; a writer waits for another instead of failing.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


def _warn_on_superuser(engine: Engine) -> None:
    """Say so, once, when the service runs as a PostgreSQL superuser (DATA-05).

    Checked on the first connection, not at start: create_app opens none.
    """
    checked = False

    @event.listens_for(engine, "connect")
    def _check_role(dbapi_connection, _record) -> None:
        nonlocal checked
        if checked:
            return
        checked = True
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            row = cursor.fetchone()
        finally:
            cursor.close()
            dbapi_connection.rollback()
        if row and row[0]:
            log.warning(
                "connected to PostgreSQL as a superuser: give the service a role that may only "
                "read and write its tables, and migrate with MIGRATION_DATABASE_URL (an owner role)"
            )
