"""The Redis revocation path: shared between instances, never trusted for "still valid"."""

import logging
import os
import uuid

import jwt
import pytest
import redis

from app.services.tokens import generate_private_key, private_key_to_pem
from tests.helpers import ApiActions, assert_problem

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="needs REDIS_URL (runs in CI's PostgreSQL + Redis pass)"
)
UNREACHABLE = "redis://127.0.0.1:1/0"


def sid_of(access_token: str) -> str:
    return jwt.decode(access_token, options={"verify_signature": False})["sid"]


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def test_without_redis_the_database_alone_decides(make_app):
    app = make_app(REDIS_URL=None)

    assert app.extensions["gatehouse"].revocations.name == "database"


@needs_redis
def test_logout_publishes_the_session_to_redis_with_a_bounded_ttl(app, api, redis_client):
    """JWT-06, DATA-03: every Redis key expires."""
    tokens = api.signup_and_login()

    api.client.post("/api/v1/auth/logout", headers=tokens.headers)

    key = f"{app.config['REDIS_KEY_PREFIX']}revoked-session:{sid_of(tokens.access_token)}"
    ttl = redis_client.ttl(key)
    limit = app.config["ACCESS_TOKEN_LIFETIME_SECONDS"] + app.config["JWT_LEEWAY_SECONDS"]
    assert 0 < ttl <= limit


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
def test_session_marked_revoked_in_redis_is_refused(app, api, redis_client):
    """Redis answers "revoked" without the database."""
    tokens = api.signup_and_login()
    key = f"{app.config['REDIS_KEY_PREFIX']}revoked-session:{sid_of(tokens.access_token)}"

    redis_client.set(key, "1", ex=60)

    assert_problem(api.me(tokens.access_token), 401, "invalid_token")


@needs_redis
def test_revocation_missing_from_redis_still_holds(app, api, redis_client):
    """REL-05, REL-06: Redis flushed or restarted with old data; the database still says no."""
    tokens = api.signup_and_login()
    api.client.post("/api/v1/auth/logout", headers=tokens.headers)
    for key in redis_client.scan_iter(match=app.config["REDIS_KEY_PREFIX"] + "*"):
        redis_client.delete(key)

    assert_problem(api.me(tokens.access_token), 401, "invalid_token")


def test_unreachable_redis_at_start_serves_degraded_and_says_so(make_app, caplog):
    """REL-07: the service starts, logs that it is degraded, and serves from the database."""
    with caplog.at_level(logging.WARNING, logger="gatehouse"):
        app = make_app(REDIS_URL=UNREACHABLE, REDIS_SOCKET_TIMEOUT=0.2)

    assert any("serving degraded from the database" in r.getMessage() for r in caplog.records)
    api = ApiActions(app.test_client())
    tokens = api.signup_and_login()
    assert api.me(tokens.access_token).status_code == 200
    assert api.client.post("/api/v1/auth/logout", headers=tokens.headers).status_code == 204
    assert_problem(api.me(tokens.access_token), 401, "invalid_token")
    assert api.refresh(tokens.refresh_token).status_code == 401


def test_redis_failure_is_logged_once_per_outage(make_app, caplog):
    """No log flood: one warning, then the cache is skipped for a while."""
    app = make_app(REDIS_URL=UNREACHABLE, REDIS_SOCKET_TIMEOUT=0.2)
    cache = app.extensions["gatehouse"].revocations
    caplog.clear()  # the start-up warning; what follows must add none

    with caplog.at_level(logging.WARNING, logger="gatehouse.revocation"):
        for _ in range(5):
            assert cache.is_revoked(uuid.uuid4()) is False
            cache.publish([uuid.uuid4()])

    assert [r for r in caplog.records if r.name == "gatehouse.revocation"] == []
    assert cache.available is False


@needs_redis
def test_redis_coming_back_is_used_again(make_app, redis_client):
    app = make_app()
    cache = app.extensions["gatehouse"].revocations
    cache._failed("test", redis.ConnectionError("simulated"))
    cache._down_until = 0.0001  # the back-off has run out

    session_id = uuid.uuid4()
    cache.publish([session_id])

    assert cache.is_revoked(session_id) is True
    assert cache.available is True
