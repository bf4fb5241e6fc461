"""Rate limits per client address and per target account (SECURITY.md RL-01, RL-04, RL-05, REL-04).

Each test turns limits on with small rates and a Redis prefix of its own (when the suite runs
with Redis), so counts never leak from one test to another.
"""

import logging
import os
import uuid

import pytest

from tests.helpers import STRONG_PASSWORD, ApiActions, TcpRelay, assert_problem

LOGIN = "/api/v1/auth/login"
SIGNUP = "/api/v1/accounts"
REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")


@pytest.fixture
def limited_app(make_app):
    """``limited_app(**settings)``: production config, limits on, counts of this test only."""
    prefix = f"gatehouse-test:{uuid.uuid4().hex}:"

    def build(**overrides):
        settings = {
            "RATELIMIT_ENABLED": True,
            "REDIS_KEY_PREFIX": prefix,
            "LOGIN_RATE_LIMIT_PER_IP": "5/minute",
            "LOGIN_RATE_LIMIT_PER_ACCOUNT": "3/minute",
            **overrides,
        }
        return make_app("production", **settings)

    return build


def login(client, email="ada@example.com", address="10.0.0.1", **headers):
    return client.post(
        LOGIN,
        json={"email": email, "password": "not the password"},
        headers=headers,
        environ_overrides={"REMOTE_ADDR": address},
    )


def test_login_over_the_address_limit_answers_429_with_retry_after(limited_app):
    """RL-05: 429 rate_limited, Retry-After, and the draft's RateLimit fields."""
    client = limited_app().test_client()
    answers = [login(client, email=f"user{i}@example.com") for i in range(6)]

    assert [a.status_code for a in answers] == [401] * 5 + [429]
    refused = answers[-1]
    problem = assert_problem(refused, 429, "rate_limited")
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Limit"] == "5"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Policy"] == "5;w=60"
    assert str(int(refused.headers["Retry-After"])) in problem["detail"]
    assert all(name in answers[0].headers for name in RATE_HEADERS)
    assert answers[0].headers["RateLimit-Remaining"] == "4"


def test_forged_forwarded_for_does_not_dodge_the_address_limit(limited_app):
    """RL-05: with no trusted proxy, X-Forwarded-For is ignored: one socket, one bucket."""
    client = limited_app().test_client()
    answers = [
        login(client, email=f"user{i}@example.com", **{"X-Forwarded-For": f"203.0.113.{i}"})
        for i in range(6)
    ]

    assert [a.status_code for a in answers][-1] == 429


def test_forwarded_for_of_a_trusted_proxy_counts_each_client(limited_app):
    """Behind one proxy of ours, its X-Forwarded-For entry is the client: separate buckets."""
    client = limited_app(TRUSTED_PROXY_HOPS=1).test_client()
    answers = [
        login(client, email=f"user{i}@example.com", **{"X-Forwarded-For": f"203.0.113.{i}"})
        for i in range(6)
    ]

    assert [a.status_code for a in answers] == [401] * 6


def test_account_limit_holds_across_addresses_and_case_variants(limited_app):
    """RL-01: the account named is counted, however its email is typed and wherever from."""
    client = limited_app(LOGIN_RATE_LIMIT_PER_IP="100/minute").test_client()
    variants = ["ada@example.com", "ADA@example.com", "Ada@Example.COM", "ada@EXAMPLE.com"]
    answers = [
        login(client, email=email, address=f"10.0.{i}.1") for i, email in enumerate(variants)
    ]

    assert [a.status_code for a in answers] == [401, 401, 401, 429]


def test_unknown_email_is_throttled_exactly_like_a_real_one(limited_app):
    """RL-04: same statuses and headers for an account that exists and one that does not."""
    app = limited_app(LOGIN_RATE_LIMIT_PER_IP="100/minute")
    client = app.test_client()
    ApiActions(client).signup()

    def sequence(email):
        answers = [login(client, email=email) for _ in range(4)]
        return [
            (a.status_code, a.headers.get("Retry-After") is not None, a.get_json()["code"])
            for a in answers
        ]

    assert sequence("ada@example.com") == sequence("nobody@example.com")


def test_sign_up_over_its_limits_answers_429(limited_app):
    client = limited_app(SIGNUP_RATE_LIMIT_PER_ACCOUNT="2/hour").test_client()
    answers = [
        client.post(SIGNUP, json={"email": "ada@example.com", "password": STRONG_PASSWORD})
        for _ in range(3)
    ]

    # Production answers a taken address like a new one (D-2); the third is over the limit.
    assert [a.status_code for a in answers] == [202, 202, 429]


def test_a_login_flood_leaves_keys_and_other_endpoints_answering(limited_app):
    """A client locked out of login still reaches the JWKS and its own account."""
    app = limited_app()
    client = app.test_client()
    tokens = ApiActions(client).signup_and_login()
    for i in range(6):
        login(client, email=f"user{i}@example.com", address="127.0.0.1")

    assert login(client, address="127.0.0.1").status_code == 429
    assert client.get("/.well-known/jwks.json").status_code == 200
    assert client.get("/api/v1/accounts/me", headers=tokens.headers).status_code == 200


def test_limits_off_by_setting_never_answer_429(limited_app):
    client = limited_app(RATELIMIT_ENABLED=False).test_client()

    assert {login(client).status_code for _ in range(10)} == {401}


def test_breach_is_logged_as_a_security_event(limited_app, caplog):
    """OPS-02: spraying shows up as excess_rate_limit_exceeded."""
    client = limited_app().test_client()
    with caplog.at_level(logging.WARNING, logger="gatehouse.security"):
        for i in range(6):
            login(client, email=f"user{i}@example.com")

    assert any(r.getMessage() == "excess_rate_limit_exceeded" for r in caplog.records)


@needs_redis
def test_two_instances_sharing_redis_share_the_counts(limited_app):
    """RL-05: the budget is the deployment's, not each instance's."""
    first, second = limited_app().test_client(), limited_app().test_client()

    answers = [login(first if i % 2 else second, email=f"u{i}@example.com") for i in range(6)]

    assert [a.status_code for a in answers] == [401] * 5 + [429]


@needs_redis
def test_redis_cut_mid_run_falls_back_to_limits_per_process_without_5xx(limited_app, caplog):
    """REL-04: no 500 when Redis goes; the limits still trip, per process; said once."""
    relay = TcpRelay(int(REDIS_URL.rsplit(":", 1)[1].split("/")[0]))
    try:
        client = limited_app(REDIS_URL=relay.url(), REDIS_SOCKET_TIMEOUT=0.3).test_client()
        before = [login(client, email=f"u{i}@example.com") for i in range(2)]
        relay.cut()
        with caplog.at_level(logging.WARNING):
            after = [login(client, email=f"v{i}@example.com") for i in range(7)]
    finally:
        relay.close()

    statuses = [a.status_code for a in before + after]
    assert all(status < 500 for status in statuses), statuses
    assert 429 in statuses
    falling_back = [r for r in caplog.records if "falling back" in r.getMessage()]
    assert len(falling_back) == 1


def test_redis_unreachable_from_the_start_serves_with_limits_in_memory(limited_app):
    """REL-04, REL-07: start without Redis; limits hold per process; no 5xx."""
    client = limited_app(REDIS_URL="redis://127.0.0.1:1/0", REDIS_SOCKET_TIMEOUT=0.2).test_client()

    statuses = [login(client, email=f"u{i}@example.com").status_code for i in range(6)]

    assert statuses == [401] * 5 + [429]


@pytest.mark.parametrize("value", ["lots", "10 per fortnight", ""])
def test_unparsable_rate_refuses_start_up(make_app, value):
    from config import ConfigurationError

    with pytest.raises(ConfigurationError, match="LOGIN_RATE_LIMIT_PER_IP"):
        make_app("production", LOGIN_RATE_LIMIT_PER_IP=value)
