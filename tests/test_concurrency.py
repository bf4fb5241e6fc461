"""Races: simultaneous sign-ups of one email and simultaneous refreshes of one token.

Every race releases its threads at one barrier, each thread with its own test client. A race is
repeated (5 times on SQLite, 50 on PostgreSQL as SECURITY.md asks): one lucky interleaving proves
little.
RL-07 (parallel wrong logins keep an exact count) waits for the lockout feature.
"""

import os
import threading
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Account, AuthSession
from app.services.tokens import generate_private_key, private_key_to_pem
from tests.helpers import STRONG_PASSWORD, ApiActions, assert_problem, count_rows

REPEATS = 50 if os.environ.get("TEST_DATABASE_URL") else 5


def race(apps: list, n: int, request: Callable) -> list:
    """Run ``request(client, index)`` from ``n`` threads released at the same instant.

    Thread ``i`` talks to ``apps[i % len(apps)]``, so two apps act as two instances.
    """
    barrier = threading.Barrier(n)
    responses: list = [None] * n
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        client = apps[index % len(apps)].test_client()
        try:
            barrier.wait(timeout=30)
            responses[index] = request(client, index)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racing request hung"
    assert failures == [], failures
    return responses


def instances(make_app, count: int) -> list:
    """``count`` apps of one deployment: same signing key, database and Redis."""
    key = private_key_to_pem(generate_private_key("EdDSA")).decode()
    return [make_app(JWT_PRIVATE_KEY=key) for _ in range(count)]


@pytest.mark.parametrize("n", [2, 8])
def test_simultaneous_signups_of_one_email_in_case_variants_create_one_account(make_app, n):
    """DATA-02, LOG-03: one 201, the rest 409 email_taken, no 5xx, one row."""
    apps = instances(make_app, 2)
    for attempt in range(REPEATS):
        local = f"racer{attempt}"
        variants = [
            f"{local}@example.com",
            f"{local.upper()}@EXAMPLE.COM",
            f"Racer{attempt}@Example.com",
        ]

        def signup(client, index, variants=variants):
            return client.post(
                "/api/v1/accounts",
                json={"email": variants[index % len(variants)], "password": STRONG_PASSWORD},
            )

        responses = race(apps, n, signup)

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {201: 1, 409: n - 1}, statuses
        for response in responses:
            if response.status_code == 409:
                assert_problem(response, 409, "email_taken")
        with apps[0].app_context():
            count = db.session.scalar(
                select(func.count()).where(Account.email_key == f"{local}@example.com")
            )
        assert count == 1
    assert count_rows(apps[0], "accounts") == REPEATS
    assert count_rows(apps[0], "account_roles") == REPEATS


@pytest.mark.parametrize("n_instances", [1, 2], ids=["one-instance", "two-instances"])
@pytest.mark.parametrize("n", [2, 10])
def test_simultaneous_refreshes_of_one_token_have_exactly_one_winner(make_app, n, n_instances):
    """SES-04, D-3: one 200, the rest 401, no 5xx; strict policy ends the session after."""
    apps = instances(make_app, n_instances)
    api = ApiActions(apps[0].test_client())
    api.signup()
    for _ in range(REPEATS):
        tokens = api.login()

        responses = race(
            apps,
            n,
            lambda client, _i, t=tokens.refresh_token: client.post(
                "/api/v1/auth/refresh", json={"refresh_token": t}
            ),
        )

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 1, 401: n - 1}, statuses
        for response in responses:
            if response.status_code == 401:
                code = response.get_json()["code"]
                assert code in {"refresh_token_reused", "session_revoked"}
                assert_problem(response, 401, code)
        winner = next(r for r in responses if r.status_code == 200).get_json()
        # Strict reuse policy: the losers count as reuse, so the winner's new tokens die too.
        assert_problem(api.refresh(winner["refresh_token"]), 401, "session_revoked")
        assert_problem(api.me(winner["access_token"]), 401, "invalid_token")


def test_refresh_racing_logout_leaves_no_usable_token(app):
    """SES-05: whichever wins, every token of the session is dead afterwards."""
    api = ApiActions(app.test_client())
    api.signup()
    for _ in range(REPEATS):
        tokens = api.login()

        def act(client, index, tokens=tokens):
            if index == 0:
                return client.post("/api/v1/auth/logout", headers=tokens.headers)
            return client.post("/api/v1/auth/refresh", json={"refresh_token": tokens.refresh_token})

        logout, refresh = race([app], 2, act)

        assert logout.status_code == 204
        assert refresh.status_code in (200, 401)
        if refresh.status_code == 200:
            body = refresh.get_json()
            assert_problem(api.me(body["access_token"]), 401, "invalid_token")
            assert api.refresh(body["refresh_token"]).status_code == 401
        assert api.me(tokens.access_token).status_code == 401


def test_password_change_racing_refresh_of_another_session_leaves_it_dead(app):
    """SES-07: racing refreshes included."""
    api = ApiActions(app.test_client())
    api.signup()
    password = STRONG_PASSWORD
    for attempt in range(REPEATS):
        caller, other = api.login(password=password), api.login(password=password)
        new_password = f"{STRONG_PASSWORD} {attempt}"

        def act(client, index, caller=caller, other=other, old=password, new=new_password):
            if index == 0:
                return client.post(
                    "/api/v1/accounts/me/password",
                    json={"current_password": old, "new_password": new},
                    headers=caller.headers,
                )
            return client.post("/api/v1/auth/refresh", json={"refresh_token": other.refresh_token})

        change, refresh = race([app], 2, act)
        password = new_password

        assert change.status_code == 204
        assert refresh.status_code in (200, 401)
        if refresh.status_code == 200:
            body = refresh.get_json()
            assert api.me(body["access_token"]).status_code == 401
            assert api.refresh(body["refresh_token"]).status_code == 401
        assert api.me(other.access_token).status_code == 401
        assert api.me(caller.access_token).status_code == 200
    with app.app_context():
        live = db.session.scalar(
            select(func.count()).select_from(AuthSession).where(AuthSession.revoked_at.is_(None))
        )
    assert live == 1  # the last caller; each change ended every earlier session
