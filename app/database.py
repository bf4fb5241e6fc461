"""The database engine's set-up: SQLite pragmas, PostgreSQL pooling, a superuser warning, metrics.

Pool sizes and timeouts are settings (``config.engine_options``); this adds what needs the
engine itself. Nothing here connects: each hook runs on a connection's first use.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

from app import metrics

log = logging.getLogger("gatehouse.database")


def configure_engine(engine: Engine, *, serving: bool, ping_after_idle: float = 0.0) -> None:
    """Per-dialect connection set-up, the superuser warning and the pool gauge."""
    metrics.watch_pool(engine)
    if engine.dialect.name == "postgresql":
        _ping_when_idle(engine, ping_after_idle)
        if serving:
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


def _ping_when_idle(engine: Engine, after_seconds: float) -> None:
    """Ping a pooled connection before use only if it sat idle ``after_seconds`` or more.

    ``pool_pre_ping`` costs a round trip on every checkout, that is on every request, to catch
    a connection a database restart broke. A connection that was in use a moment ago is as good
    as the ping would say; one that idled is pinged, and replaced when the ping fails. A
    connection that breaks while in use fails its request and, being a disconnect, makes the
    pool drop every connection opened before it (SQLAlchemy's own handling).

    Each checkout also leaves the connection transactional (psycopg's ``autocommit`` off): reads
    outside a unit of work switch it on for their session only (``unit_of_work``), and nothing
    else (migrations, the CLI's own connections) may inherit that.
    """

    @event.listens_for(engine, "checkin")
    def _note_idle_since(_dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.pop("idle_since", None)
        try:
            dbapi_connection.autocommit = idle_since is not None and (
                time.monotonic() - idle_since >= after_seconds
            )
            if dbapi_connection.autocommit:  # no transaction opened by the ping
                dbapi_connection.execute("SELECT 1")
            dbapi_connection.autocommit = False
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError(f"pooled connection unusable: {error}") from error


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
