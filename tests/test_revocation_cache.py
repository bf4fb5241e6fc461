"""The Redis revocation path: shared between instances, never trusted for "still valid".

Tests marked ``needs_redis`` run when ``REDIS_URL`` is set (the PostgreSQL + Redis pass); the
down-Redis tests point at a closed port and run everywhere.
"""

import logging
import os
import uuid

import jwt
import pytest
import redis

from app.extensions import db
from app.models import AuthSession
from app.services.tokens import generate_private_key, private_key_to_pem
from tests.helpers import ApiActions, assert_problem

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="needs REDIS_URL (runs in the PostgreSQL + Redis pass)"
)
UNREACHABLE = "redis://127.0.0.1:1/0"


def sid_of(access_token: str) -> str:
    return jwt.decode(access_token, options={"verify_signature": False})["sid"]


def revocation_key(app, access_token: str) -> str:
    return f"{app.config['REDIS_KEY_PREFIX']}revoked-session:{sid_of(access_token)}"


def session_row(app, access_token: str) -> AuthSession:
    with app.app_context():
        session = db.session.get(AuthSession, uuid.UUID(sid_of(access_token)))
        db.session.expunge(session)
        return session


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def degraded_app(make_app):
    """An app whose Redis is configured but unreachable from the start."""
    return make_app(REDIS_URL=UNREACHABLE, REDIS_SOCKET_TIMEOUT=0.2)


# --- choice of variant ------------------------------------------------------------------------


def test_app_without_redis_url_uses_the_database_only(make_app):
    """D-10: no Redis configured, the null cache; the database decides alone."""
    app = make_app(REDIS_URL=None)

    assert app.extensions["gatehouse"].revocations.name == "database"


def test_app_without_redis_url_refuses_logged_out_token(make_app):
    """JWT-06 on the null cache."""
    api = ApiActions(make_app(REDIS_URL=None).test_client())
    tokens = api.signup_and_login()

    assert api.client.post("/api/v1/auth/logout", headers=tokens.headers).status_code == 204

    assert_problem(api.me(tokens.access_token), 401, "invalid_token")


@needs_redis
def test_app_with_redis_url_uses_redis(app):
    assert app.extensions["gatehouse"].revocations.name == "redis"


# --- Redis reachable --------------------------------------------------------------------------


@needs_redis
def test_logout_publishes_the_session_to_redis_with_a_bounded_ttl(app, api, redis_client):
    """JWT-06, DATA-03: the key exists and expires once the session's tokens have."""
    tokens = api.signup_and_login()
    key = revocation_key(app, tokens.access_token)
    assert redis_client.exists(key) == 0

    assert api.client.post("/api/v1/auth/logout", headers=tokens.headers).status_code == 204

    assert redis_client.exists(key) == 1
    limit = app.config["ACCESS_TOKEN_LIFETIME_SECONDS"] + app.config["JWT_LEEWAY_SECONDS"]
    assert 0 < redis_client.ttl(key) <= limit


@needs_redis
def test_logout_on_one_instance_is_refused_by_another(make_app):
    """JWT-06: a logout seen by every instance at once."""
    # Instances of one deployment share the signing key, the database and Redis.
    key = private_key_to_pem(generate_private_key("EdDSA")).decode()
    first = ApiActions(make_app(JWT_PRIVATE_KEY=key).test_client())
    second = ApiActions(make_app(JWT_PRIVATE_KEY=key).test_client())
    tokens = first.signup_and_login()
    assert second.me(tokens.access_token).status_code == 200

    first.client.post("/api/v1/auth/logout", headers=tokens.headers)

    assert_problem(second.me(tokens.access_token), 401, "invalid_token")


@needs_redis
def test_session_marked_revoked_in_redis_is_refused_though_its_row_is_live(
    app, api, redis_client
):
    """JWT-06: Redis answers "revoked" on its own, without waiting for the database."""
    tokens = api.signup_and_login()
    assert api.me(tokens.access_token).status_code == 200

    redis_client.set(revocation_key(app, tokens.access_token), "1", ex=60)

    assert_problem(api.me(tokens.access_token), 401, "invalid_token")
    assert session_row(app, tokens.access_token).revoked_at is None


@needs_redis
def test_revocation_deleted_from_redis_still_holds(app, api, redis_client):
    """REL-05: Redis restarted with old data (the key is gone); the database still says no."""
    tokens = api.signup_and_login()
    api.client.post("/api/v1/auth/logout", headers=tokens.headers)
    key = revocation_key(app, tokens.access_token)
    assert redis_client.delete(key) == 1

    assert_problem(api.me(tokens.access_token), 401, "invalid_token")
    assert session_row(app, tokens.access_token).revoked_at is not None


@needs_redis
def test_revocation_flushed_from_redis_still_holds(app, api, redis_client):
    """REL-06: Redis flushed (every key of ours gone); revocations hold."""
    tokens = api.signup_and_login()
    api.client.post("/api/v1/auth/logout", headers=tokens.headers)
    prefix = app.config["REDIS_KEY_PREFIX"]
    for key in redis_client.scan_iter(match=prefix + "*"):
        redis_client.delete(key)
    assert list(redis_client.scan_iter(match=prefix + "*")) == []

    assert_problem(api.me(tokens.access_token), 401, "invalid_token")
    assert api.refresh(tokens.refresh_token).status_code == 401


@needs_redis
def test_redis_coming_back_is_used_again(make_app):
    """REL-04: after the back-off, a reachable Redis gets the revocations again."""
    app = make_app()
    cache = app.extensions["gatehouse"].revocations
    cache._failed("test", redis.ConnectionError("simulated"))
    cache._down_until = 0.0001  # the back-off has run out

    session_id = uuid.uuid4()
    cache.publish([session_id])

    assert cache.is_revoked(session_id) is True
    assert cache.available is True


# --- Redis unreachable ------------------------------------------------------------------------


def test_app_with_unreachable_redis_starts_and_logs_degraded(make_app, caplog):
    """REL-04, REL-07: the service starts and says it serves degraded from the database."""
    with caplog.at_level(logging.WARNING, logger="gatehouse"):
        app = make_app(REDIS_URL=UNREACHABLE, REDIS_SOCKET_TIMEOUT=0.2)

    warnings = [
        record
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name == "gatehouse.revocation"
    ]

    assert any("serving degraded from the database" in r.getMessage() for r in warnings)
    assert app.extensions["gatehouse"].revocations.available is False


def test_login_me_and_logout_with_unreachable_redis_succeed(degraded_app):
    """REL-04: no 500 when Redis is down."""
    api = ApiActions(degraded_app.test_client())
    tokens = api.signup_and_login()

    assert api.me(tokens.access_token).status_code == 200
    assert api.client.post("/api/v1/auth/logout", headers=tokens.headers).status_code == 204


def test_logout_with_unreachable_redis_is_enforced_by_the_database(degraded_app):
    """REL-04, JWT-06: every logout holds without Redis."""
    api = ApiActions(degraded_app.test_client())
    tokens = api.signup_and_login()
    api.client.post("/api/v1/auth/logout", headers=tokens.headers)

    assert_problem(api.me(tokens.access_token), 401, "invalid_token")
    assert api.refresh(tokens.refresh_token).status_code == 401
    assert session_row(degraded_app, tokens.access_token).revoked_at is not None


def test_redis_failure_is_logged_once_per_outage(degraded_app, caplog):
    """No log flood: one warning, then the cache is skipped for a while."""
    cache = degraded_app.extensions["gatehouse"].revocations
    caplog.clear()  # the start-up warning; what follows must add none

    with caplog.at_level(logging.WARNING, logger="gatehouse.revocation"):
        for _ in range(5):
            assert cache.is_revoked(uuid.uuid4()) is False
            cache.publish([uuid.uuid4()])

    assert [r for r in caplog.records if r.name == "gatehouse.revocation"] == []
    assert cache.available is False
