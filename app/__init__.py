"""Gatehouse: accounts and authentication as a service."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import (
    api,
    cli,
    cors,
    database,
    health,
    http,
    metrics,
    pages,
    rate_limits,
    surfaces,
    tracing,
)
from app import logging as app_logging
from app.extensions import db, migrate
from app.runtime import build_runtime
from app.services import audit
from app.services import mail as outbox_mail
from config import BASE_DIR, INSTANCE_DIR, load_config, typed_settings

MIGRATIONS_DIR = BASE_DIR / "migrations"


def create_app(
    config_name: str | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    serving: bool = True,
) -> Flask:
    """Build the application for ``config_name`` (default: ``GATEHOUSE_ENV``, else production).

    Wires settings, extensions, surfaces, blueprints and CLI commands; opens no connection
    (the database and Redis are reached on first use). ``serving=False`` builds it for the
    command line (``manage.py``): no signing key, and ``MIGRATION_DATABASE_URL`` when set.
    Raises ConfigurationError when the settings are unsafe or incomplete.
    """
    config = load_config(config_name, overrides, serving=serving)
    settings = typed_settings(config)
    app = Flask(__name__, instance_path=str(INSTANCE_DIR), static_folder=None)
    app.config.from_mapping(config)
    if settings.env_name == "development":
        # Home of the development SQLite file and signing key.
        INSTANCE_DIR.mkdir(exist_ok=True)

    build_runtime(app, settings, serving=serving)
    app_logging.init_app(app)
    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True, compare_type=True
    )
    with app.app_context():
        database.configure_engine(
            db.engine,
            serving=serving,
            ping_after_idle=settings.database_ping_after_idle_seconds,
        )
    surfaces.init_app(app)
    http.init_app(app)
    audit.read_origin_from(http.request_origin)
    metrics.init_app(app)
    api.init_app(app)
    rate_limits.init_app(app)
    cors.init_app(app)
    app.register_blueprint(health.blueprint)
    pages.init_app(app)
    cli.init_app(app)
    outbox_mail.init_app(app)
    tracing.init_app(app)
    if settings.trusted_proxy_hops:
        # Only as many X-Forwarded-* entries as there are proxies of ours are believed; a
        # client's own entries stay to the left of them and are ignored.
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    return app
