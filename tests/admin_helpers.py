"""Steps the administration tests share: administrators made the supported way (the service the
CLI calls, ADM-05), logins with and without a second factor, and a state snapshot."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Account
from app.services import admin
from tests.helpers import STRONG_PASSWORD, ApiActions, Tokens, snapshot

ADMIN = "/api/v1/admin"
ADMIN_EMAIL = "root@example.com"


def create_admin(app: Flask, email: str = ADMIN_EMAIL, password: str = STRONG_PASSWORD) -> str:
    """An administrator, as ``flask users create-admin`` makes one; returns its id."""
    with app.app_context():
        user = admin.create_admin(email=email, password=password)
        db.session.remove()
    return str(user.id)


def admin_tokens(app: Flask, api: ApiActions, email: str = ADMIN_EMAIL) -> Tokens:
    create_admin(app, email)
    return api.login(email)


def account_id(app: Flask, email: str) -> str:
    with app.app_context():
        found = db.session.scalar(select(Account.id).where(Account.email == email))
        db.session.remove()
    return str(found)


def account(app: Flask, user_id: str | uuid.UUID) -> Account | None:
    with app.app_context():
        found = db.session.get(Account, uuid.UUID(str(user_id)))
        if found is not None:
            db.session.expunge(found)
        db.session.remove()
    return found


def roles_of(app: Flask, user_id: str) -> list[str]:
    with app.app_context():
        names = db.session.get_one(Account, uuid.UUID(user_id)).role_names
        db.session.remove()
    return names


def grant(client: FlaskClient, by: Tokens, user_id: str, roles: list[str]):
    return client.patch(f"{ADMIN}/users/{user_id}", json={"roles": roles}, headers=by.headers)


def state(app: Flask) -> dict[str, Any]:
    """Every table but the audit log's (a refusal may be audited) and the sessions' last use
    (an accepted credential moves it): a refusal must change nothing else."""
    rows = snapshot(app, ignore=("sessions.last_used_at",))
    return {table: data for table, data in rows.items() if not table.startswith("audit_")}
