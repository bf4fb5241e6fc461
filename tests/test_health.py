"""Liveness and readiness (REL-01, REL-07): named checks, no connection strings, 503 when down."""

import pytest
from sqlalchemy import text

from app.extensions import db
from tests.helpers import CountingListener, assert_problem

CLOSED_REDIS = "redis://127.0.0.1:1/0"
CLOSED_DATABASE = "postgresql://gatehouse:s3cret-pw@127.0.0.1:1/gatehouse"


@pytest.fixture(params=["testing", "production"])
def config_name(request):
    return request.param


def test_healthz_answers_alive_without_touching_the_database(make_app, config_name):
    """Liveness: a process whose database is down is alive, and must not be restarted for it."""
    listener = CountingListener()
    try:
        database = f"postgresql://postgres@127.0.0.1:{listener.port}/gatehouse"
        client = make_app(config_name, DATABASE_URL=database).test_client()

        response = client.get("/healthz")

        assert response.status_code == 200
        assert response.get_json() == {"status": "alive"}
        assert listener.accepted == 0
    finally:
        listener.close()


def test_readyz_on_a_migrated_database_answers_ready(make_app, config_name):
    response = make_app(config_name, REDIS_URL=None).test_client().get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "redis": "skipped"},
    }
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_with_the_database_down_names_it_without_its_address(make_app, config_name):
    """REL-01: readiness fails, says which check, and leaks no URL or password."""
    response = make_app(config_name, DATABASE_URL=CLOSED_DATABASE).test_client().get("/readyz")

    problem = assert_problem(response, 503, "not_ready")
    assert problem["checks"]["database"] == "unavailable"
    assert response.headers["Retry-After"]
    text_ = response.get_data(as_text=True)
    assert "s3cret" not in text_ and "127.0.0.1" not in text_ and "postgresql" not in text_


def test_readyz_with_redis_configured_and_down_names_redis(make_app, config_name):
    """REL-07: a configured Redis that does not answer is said to be down."""
    app = make_app(config_name, REDIS_URL=CLOSED_REDIS, REDIS_SOCKET_TIMEOUT=0.2)

    response = app.test_client().get("/readyz")

    problem = assert_problem(response, 503, "not_ready")
    assert problem["checks"] == {"database": "ok", "migrations": "ok", "redis": "unavailable"}
    assert "redis://" not in response.get_data(as_text=True)


def test_readyz_with_a_database_behind_the_code_names_migrations(make_app, config_name):
    """A replica started before `flask db upgrade` ran is not ready."""
    app = make_app(config_name, REDIS_URL=None)
    with app.app_context():
        current = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        db.session.execute(text("UPDATE alembic_version SET version_num = 'older'"))
        db.session.commit()
    try:
        response = app.test_client().get("/readyz")
    finally:
        with app.app_context():
            db.session.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": current})
            db.session.commit()

    problem = assert_problem(response, 503, "not_ready")
    assert problem["checks"]["migrations"] == "behind"
