"""Races: simultaneous sign-ups of one email and simultaneous refreshes of one token."""

import os
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Account, AuthSession
from tests.helpers import STRONG_PASSWORD, ApiActions, assert_problem

REPEATS = 20 if os.environ.get("TEST_DATABASE_URL") else 5


def race(app, n: int, request) -> list:
    """Run ``request(client)`` from ``n`` threads released at the same instant."""
    barrier = threading.Barrier(n)
    responses = [None] * n

    def worker(index: int) -> None:
        client = app.test_client()
        barrier.wait()
        responses[index] = request(client, index)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


@pytest.mark.parametrize("n", [2, 8])
def test_simultaneous_signups_of_one_email_create_one_account(app, n):
    """DATA-02, LOG-03: one 201, the rest 409 email_taken, never a 5xx."""
    for attempt in range(REPEATS):
        local = f"racer{attempt}"

        def signup(client, index, local=local):
            email = f"{local}@example.com" if index % 2 else f"{local.upper()}@EXAMPLE.com"
            return client.post(
                "/api/v1/accounts", json={"email": email, "password": STRONG_PASSWORD}
            )

        responses = race(app, n, signup)

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {201: 1, 409: n - 1}, statuses
        for response in responses:
            if response.status_code == 409:
                assert_problem(response, 409, "email_taken")
        with app.app_context():
            count = db.session.scalar(
                select(func.count()).where(Account.email_key == f"{local}@example.com")
            )
        assert count == 1


@pytest.mark.parametrize("n", [2, 10])
def test_simultaneous_refreshes_of_one_token_have_exactly_one_winner(app, n):
    """SES-04, D-3: one 200, the rest 401; the loser counts as reuse and ends the session."""
    api = ApiActions(app.test_client())
    api.signup()
    for _ in range(REPEATS):
        tokens = api.login()

        responses = race(
            app,
            n,
            lambda client, _i, t=tokens.refresh_token: client.post(
                "/api/v1/auth/refresh", json={"refresh_token": t}
            ),
        )

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 1, 401: n - 1}, statuses
        codes = {r.get_json()["code"] for r in responses if r.status_code == 401}
        assert codes <= {"refresh_token_reused", "session_revoked"}
        winner = next(r for r in responses if r.status_code == 200).get_json()
        # Strict reuse policy: the session is over, the winner's new tokens included.
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

        logout, refresh = race(app, 2, act)

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

        change, refresh = race(app, 2, act)
        password = new_password

        assert change.status_code == 204
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
