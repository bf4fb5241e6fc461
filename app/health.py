"""``/healthz`` and ``/readyz``: is the process alive, and can it serve right now.

Liveness checks nothing outside the process, so an orchestrator restarts a wedged process, not
a healthy one whose database is down. Readiness checks what a request needs: the database
answers and carries the schema this code expects (its migration revision is the code's head),
and Redis answers when one is configured; otherwise 503 ``not_ready`` names the checks that
failed, never how they were reached. This is where a configured Redis is pinged (REL-07).
"""

from __future__ import annotations

import logging
from functools import cache

from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.errors import NotReady
from app.extensions import db
from app.runtime import runtime

log = logging.getLogger("gatehouse.health")
blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    """The process answers; nothing else is checked."""
    return jsonify(status="alive")


@blueprint.get("/readyz")
def readyz():
    """The database, its schema and Redis (when configured), each named in the answer."""
    checks = {"database": _database(), "migrations": "skipped", "redis": _redis()}
    if checks["database"] == "ok":
        checks["migrations"] = _migrations()
    failed = sorted(name for name, result in checks.items() if result not in ("ok", "skipped"))
    if failed:
        log.warning("not ready: %s", ", ".join(f"{name}={checks[name]}" for name in failed))
        raise NotReady(checks)
    return jsonify(status="ready", checks=checks)


def _database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return "unavailable"
    finally:
        db.session.rollback()
    return "ok"


def _migrations() -> str:
    try:
        current = db.session.execute(text("SELECT version_num FROM alembic_version")).scalars()
        revisions = set(current)
    except SQLAlchemyError:
        return "not_migrated"
    finally:
        db.session.rollback()
    return "ok" if revisions == code_heads() else "behind"


def code_heads() -> set[str]:
    """The head revisions of the migration scripts shipped with this code."""
    return _heads(str(current_app.extensions["migrate"].directory))


@cache
def _heads(directory: str) -> set[str]:
    return set(ScriptDirectory(directory).get_heads())


def _redis() -> str:
    redis = runtime().redis
    if not redis.configured:
        return "skipped"
    return "ok" if redis.ping() else "unavailable"
