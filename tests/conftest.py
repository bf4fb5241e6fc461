"""Test harness: a fresh app per test, on SQLite or on the real PostgreSQL and Redis.

Set ``TEST_DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` to run the suite against them; when set
and unreachable the run fails, it never silently falls back. The schema is built once per run
by the migrations themselves; every test starts from empty tables (built-in roles kept).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import MetaData, create_engine, text, tuple_

from app import create_app
from app.clock import FrozenClock
from app.extensions import db
from app.services.tokens import generate_private_key, private_key_to_pem
from config import normalise_database_url
from tests.helpers import SEEDED_ROWS, ApiActions, primary_key_of
from tests.openapi_conformance import ConformanceRecorder, spec_of

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("REDIS_URL")


def pytest_report_header(config) -> list[str]:
    database = "PostgreSQL (TEST_DATABASE_URL)" if TEST_DATABASE_URL else "SQLite"
    cache = "Redis (REDIS_URL)" if TEST_REDIS_URL else "none (database-only revocation)"
    return [f"gatehouse database: {database}", f"gatehouse revocation cache: {cache}"]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        url = TEST_DATABASE_URL
        engine = create_engine(normalise_database_url(url))
        try:
            with engine.begin() as connection:
                # Leftovers of an interrupted run: drop every table, then migrate from zero.
                metadata = MetaData()
                metadata.reflect(connection)
                metadata.drop_all(connection)
                connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        except Exception as exc:  # unreachable must fail the run, loudly
            pytest.exit(f"TEST_DATABASE_URL is set but unusable: {exc}", returncode=3)
        finally:
            engine.dispose()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'gatehouse-test.db'}"
    app = create_app("testing", {"DATABASE_URL": url})
    with app.app_context():
        upgrade()
        # What the migrations seed (the built-in roles) survives every test; the rest goes.
        with db.engine.connect() as connection:
            for table in db.metadata.sorted_tables:
                rows = connection.execute(table.select()).all()
                SEEDED_ROWS[table.name] = {primary_key_of(table, row) for row in rows}
        db.engine.dispose()
    return url


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str | None]:
    if not TEST_REDIS_URL:
        yield None
        return
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.exit(f"REDIS_URL is set but Redis is unreachable: {exc}", returncode=3)
    prefix = f"gatehouse-test:{uuid.uuid4().hex}:"
    yield prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture
def make_app(database_url: str, redis_prefix: str | None):
    """Build apps for one test: ``make_app()`` for testing, ``make_app("production")``…

    Every answer an app gives to an API operation is checked against the OpenAPI document
    when the test ends (tests/openapi_conformance.py).
    """
    apps: list[Flask] = []
    recorder = ConformanceRecorder()
    test_prefix = f"{redis_prefix}{uuid.uuid4().hex[:12]}:" if redis_prefix is not None else None

    def build(
        config_name: str = "testing", *, production_hashing: bool = False, **overrides: Any
    ) -> Flask:
        """``production_hashing=True`` keeps production's own Argon2 parameters."""
        # Rate limits off unless a test turns them on (tests/test_rate_limits.py does, each with
        # its own Redis prefix): a shared Redis would otherwise carry counts from test to test.
        settings: dict[str, Any] = {
            "DATABASE_URL": database_url,
            "RATELIMIT_ENABLED": False,
            # No background sender unless a test starts one: mail stays in the outbox table.
            "MAIL_SENDER_ENABLED": False,
        }
        if redis_prefix is not None:
            # One prefix per test, shared by its apps: counts (rate limits, mail budgets) never
            # carry from one test to the next.
            settings.update(REDIS_URL=TEST_REDIS_URL, REDIS_KEY_PREFIX=test_prefix)
        if config_name == "production":
            settings.update(
                JWT_PRIVATE_KEY=private_key_to_pem(generate_private_key("EdDSA")).decode(),
                JWT_ISSUER="https://auth.example.test",
                TRUSTED_HOSTS=["localhost"],  # the test client's Host
                SECRET_KEY="production-test-secret-key-" + "y" * 32,
                # A closed port; tests that send mail start an SMTP server and say so.
                MAIL_SERVER="127.0.0.1",
                MAIL_PORT=1,
                MAIL_FROM="Gatehouse <no-reply@auth.example.test>",
            )
            if not production_hashing:
                # OWASP's minimum keeps these tests quick while staying a valid production value.
                settings.update(ARGON2_TIME_COST=2, ARGON2_MEMORY_COST=19456, ARGON2_PARALLELISM=1)
        settings.update(overrides)
        app = create_app(config_name, settings)
        recorder.attach(app)
        apps.append(app)
        return app

    yield build
    if apps and recorder.answers:
        violations = recorder.violations(spec_of(apps[0]))
        assert violations == [], "answers the OpenAPI document does not describe:\n" + "\n".join(
            violations
        )
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    # Every table the models declare, children first: a new table is never missed.
    engine = create_engine(normalise_database_url(database_url))
    with engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            statement = table.delete()
            seeded = SEEDED_ROWS.get(table.name)
            if seeded:
                key = tuple_(*table.primary_key.columns)
                statement = statement.where(key.not_in(list(seeded)))
            connection.execute(statement)
    engine.dispose()


@pytest.fixture
def app(make_app) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def clock_factory():
    """Freeze a given app's clock: ``clock = clock_factory(app)``."""

    def freeze(app: Flask) -> FrozenClock:
        frozen = FrozenClock()
        app.extensions["gatehouse"].clock = frozen
        return frozen

    return freeze


@pytest.fixture
def clock(app: Flask, clock_factory) -> FrozenClock:
    """Freeze the app's clock; tests move it with ``clock.advance(...)`` instead of sleeping."""
    return clock_factory(app)


@pytest.fixture
def api(client: FlaskClient) -> ApiActions:
    return ApiActions(client)
