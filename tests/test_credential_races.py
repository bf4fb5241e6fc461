"""Races between a credential change and the things it must end (found in review)."""

import os
import threading
import time
from collections import Counter

import pytest

from tests.helpers import STRONG_PASSWORD, ApiActions, count_rows, rows_beyond_seed

ROUNDS = 3 if os.environ.get("TEST_DATABASE_URL") else 2


def hammer(app, request, stop: threading.Event, results: list, workers: int = 4) -> list:
    def loop():
        client = app.test_client()
        while not stop.is_set():
            results.append(request(client))

    threads = [threading.Thread(target=loop) for _ in range(workers)]
    for thread in threads:
        thread.start()
    return threads


def login(client, password=STRONG_PASSWORD):
    return client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": password}
    )


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_logins_with_the_old_password_racing_a_change_keep_no_session(app, round_):
    """SES-07, JWT-06: no session opened with the old password outlives the change."""
    api = ApiActions(app.test_client())
    victim = api.signup_and_login()
    stop, results = threading.Event(), []
    threads = hammer(app, login, stop, results)
    time.sleep(0.2)

    change = api.client.post(
        "/api/v1/accounts/me/password",
        json={"current_password": STRONG_PASSWORD, "new_password": "a brand new passphrase"},
        headers=victim.headers,
    )
    time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()

    assert change.status_code == 204
    statuses = Counter(r.status_code for r in results)
    assert set(statuses) <= {200, 401}, statuses
    survivors = [
        r
        for r in results
        if r.status_code == 200 and api.me(r.get_json()["access_token"]).status_code == 200
    ]
    assert survivors == []
    assert api.me(victim.access_token).status_code == 200


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_logins_racing_account_deletion_never_fail_with_5xx(app, round_):
    """DATA-01, SES-07: 200 or the generic 401, and nothing of the account left."""
    api = ApiActions(app.test_client())
    victim = api.signup_and_login()
    stop, results = threading.Event(), []
    threads = hammer(app, login, stop, results)
    time.sleep(0.2)

    deletion = api.client.delete(
        "/api/v1/accounts/me", json={"password": STRONG_PASSWORD}, headers=victim.headers
    )
    time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()

    assert deletion.status_code == 204
    assert set(Counter(r.status_code for r in results)) <= {200, 401}
    assert set(rows_beyond_seed(app).values()) == {0}


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_account_deletion_racing_refreshes_succeeds(app, round_):
    """Deletion and refresh lock rows in one order: no deadlock, no 503."""
    api = ApiActions(app.test_client())
    owner = api.signup_and_login()
    chains = [api.login().refresh_token for _ in range(4)]
    lock = threading.Lock()
    stop, results = threading.Event(), []

    def refresh_loop(client):
        with lock:
            token = chains.pop()
        response = client.post("/api/v1/auth/refresh", json={"refresh_token": token})
        with lock:
            chains.append(response.get_json().get("refresh_token", token))
        return response

    threads = hammer(app, refresh_loop, stop, results)
    time.sleep(0.2)

    deletion = api.client.delete(
        "/api/v1/accounts/me", json={"password": STRONG_PASSWORD}, headers=owner.headers
    )
    stop.set()
    for thread in threads:
        thread.join()

    assert deletion.status_code == 204
    assert all(r.status_code < 500 for r in results)
    assert count_rows(app, "accounts") == 0


def test_user_agent_with_control_characters_is_stored_printable(app, api):
    """HTTP-04: NUL in a header must not reach PostgreSQL text."""
    api.signup()

    response = api.client.post(
        "/api/v1/auth/login",
        json={"email": "ada@example.com", "password": STRONG_PASSWORD},
        headers={"User-Agent": "Mozilla\x00evil\x1b[31m"},
    )

    assert response.status_code == 200
    from sqlalchemy import select

    from app.extensions import db
    from app.models import AuthSession

    with app.app_context():
        assert db.session.scalar(select(AuthSession.user_agent)) == "Mozillaevil[31m"


def test_database_errors_do_not_carry_the_row_into_logs(app):
    """OPS-01: with hide_parameters, an error's text names no bound value (hash, email)."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from app.extensions import db

    with app.app_context(), pytest.raises(IntegrityError) as raised:
        db.session.execute(
            text("INSERT INTO roles (name, description) VALUES (:name, :description)"),
            {"name": "user", "description": "$argon2id$secret-parameter"},
        )

    assert "secret-parameter" not in str(raised.value)
