"""Gatehouse: accounts and authentication as a service."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app import api, cli, health, http, surfaces
from app import logging as app_logging
from app.extensions import db, migrate
from app.runtime import build_runtime
from config import BASE_DIR, INSTANCE_DIR, load_config, typed_settings

MIGRATIONS_DIR = BASE_DIR / "migrations"


def create_app(config_name: str | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    """Build the application for ``config_name`` (default: ``GATEHOUSE_ENV``, else production).

    Wires settings, extensions, surfaces, blueprints and CLI commands; opens no connection
    (the database and Redis are reached on first use). Raises ConfigurationError when the
    settings are unsafe or incomplete.
    """
    config = load_config(config_name, overrides)
    settings = typed_settings(config)
    app = Flask(__name__, instance_path=str(INSTANCE_DIR), static_folder=None)
    app.config.from_mapping(config)
    if settings.env_name == "development":
        # Home of the development SQLite file and signing key.
        INSTANCE_DIR.mkdir(exist_ok=True)

    build_runtime(app, settings)
    app_logging.init_app(app)
    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True, compare_type=True
    )
    with app.app_context():
        _configure_engine(db.engine)
    surfaces.init_app(app)
    http.init_app(app)
    api.init_app(app)
    app.register_blueprint(health.blueprint)
    cli.init_app(app)
    return app


def _configure_engine(engine: Engine) -> None:
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
