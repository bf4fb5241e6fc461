"""Redis: optional, shared by every instance, and never on the path of a request.

The database alone says whether a session is live (REL-05: Redis's "not revoked" is never
trusted), so authenticated requests make no Redis call at all, and a Redis that is down,
stale or flushed changes nothing they answer. The app builds its one client lazily: creating
the app opens no connection (gunicorn's preload, Redis down at start). Tests marked
``needs_redis`` run in the PostgreSQL + Redis pass; the others point at local sockets.
"""

import logging
import os

import pytest

from tests.helpers import ApiActions, CountingListener, assert_problem

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="needs REDIS_URL (runs in the PostgreSQL + Redis pass)"
)
CLOSED_PORT = "redis://127.0.0.1:1/0"


@pytest.fixture
def listener():
    counting = CountingListener()
    yield counting
    counting.close()


def test_app_without_redis_url_has_no_shared_redis(make_app):
    """D-10: no Redis configured, the null variant; nothing to ping."""
    redis = make_app(REDIS_URL=None).extensions["gatehouse"].redis

    assert redis.configured is False
    assert redis.ping() is True


def test_creating_the_app_opens_no_redis_connection(make_app, listener):
    """REL-07: create_app does no network I/O, so a Redis outage at start cannot stop it."""
    app = make_app(REDIS_URL=listener.url)

    assert app.extensions["gatehouse"].redis.configured is True
    assert listener.accepted == 0


def test_authenticated_requests_make_no_redis_call(make_app, listener):
    """REL-05: sign-up, login, /me, refresh and logout never reach Redis."""
    api = ApiActions(make_app(REDIS_URL=listener.url).test_client())

    tokens = api.signup_and_login()
    assert api.me(tokens.access_token).status_code == 200
    assert api.refresh(tokens.refresh_token).status_code == 200
    assert api.client.post("/api/v1/auth/logout", headers=tokens.headers).status_code == 204

    assert listener.accepted == 0


def test_login_me_and_logout_with_unreachable_redis_succeed(make_app):
    """REL-04: a configured Redis that is down changes no answer; every logout holds.

    A guard: it fails if Redis comes back onto the path of a request without a fallback.
    """
    api = ApiActions(make_app(REDIS_URL=CLOSED_PORT, REDIS_SOCKET_TIMEOUT=0.2).test_client())
    tokens = api.signup_and_login()

    assert api.me(tokens.access_token).status_code == 200
    assert api.client.post("/api/v1/auth/logout", headers=tokens.headers).status_code == 204
    assert_problem(api.me(tokens.access_token), 401, "invalid_token")
    assert api.refresh(tokens.refresh_token).status_code == 401


def test_ping_of_unreachable_redis_is_false_and_logged_once_per_outage(make_app, caplog):
    """REL-07: the readiness check says Redis is down, without a log line per probe."""
    redis = make_app(REDIS_URL=CLOSED_PORT, REDIS_SOCKET_TIMEOUT=0.2).extensions["gatehouse"].redis

    with caplog.at_level(logging.WARNING, logger="gatehouse.redis"):
        results = [redis.ping() for _ in range(3)]

    assert results == [False, False, False]
    warnings = [r for r in caplog.records if r.name == "gatehouse.redis"]
    assert len(warnings) == 1
    assert "redis unavailable" in warnings[0].getMessage()
    assert redis.available is False


@needs_redis
def test_ping_of_reachable_redis_is_true_on_one_shared_client(app):
    redis = app.extensions["gatehouse"].redis

    assert redis.ping() is True
    assert redis.client is redis.client
    assert redis.key("a", "b") == app.config["REDIS_KEY_PREFIX"] + "a:b"


@needs_redis
def test_redis_coming_back_is_logged_and_used_again(app, caplog):
    redis = app.extensions["gatehouse"].redis
    redis.report_failure("test", ConnectionError("simulated"))
    assert redis.available is False

    with caplog.at_level(logging.WARNING, logger="gatehouse.redis"):
        assert redis.ping() is True

    assert redis.available is True
    assert any("reachable again" in r.getMessage() for r in caplog.records)
