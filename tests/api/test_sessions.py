"""/api/v1/accounts/me/sessions: the account's login sessions, listed and ended (SES-08)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import AuthSession, RefreshToken
from app.services import sessions
from tests.helpers import ApiActions, assert_problem, snapshot

SESSIONS = "/api/v1/accounts/me/sessions"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def login_from(app: Flask, user_agent: str, email: str = "ada@example.com") -> dict:
    """Log in with another client, as another device; returns the token body."""
    client = app.test_client()
    response = client.post(
        "/api/v1/auth/login",
        json={"email": email, "password": "correct horse battery staple"},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def bearer(body: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


@pytest.fixture
def ada(app: Flask, api: ApiActions) -> tuple[dict, dict]:
    """Ada signed up and logged in twice: from Firefox (``first``) and an iPhone (``second``)."""
    api.signup()
    return login_from(app, FIREFOX), login_from(app, IPHONE)


def listed(client, body: dict) -> list[dict]:
    response = client.get(SESSIONS, headers=bearer(body))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["sessions"]


def test_list_shows_every_live_session_with_times_address_device_and_current(client, ada):
    """SES-08: id, times, IP, device, `current`."""
    first, _second = ada

    items = listed(client, first)

    assert len(items) == 2
    by_device = {item["device"]: item for item in items}
    assert set(by_device) == {"Firefox 133 on Windows", "Mobile Safari 17 on iOS (iPhone)"}
    assert by_device["Firefox 133 on Windows"]["current"] is True
    assert by_device["Mobile Safari 17 on iOS (iPhone)"]["current"] is False
    for item in items:
        uuid.UUID(item["id"])
        assert item["ip_address"] == "127.0.0.1"
        assert item["created_at"] <= item["last_used_at"] < item["expires_at"]
    assert by_device["Firefox 133 on Windows"]["user_agent"] == FIREFOX


def test_list_carries_no_token(client, ada):
    """SES-08: no tokens, no token digests."""
    first, second = ada

    response = client.get(SESSIONS, headers=bearer(first))

    text = response.get_data(as_text=True)
    for body in (first, second):
        assert body["access_token"] not in text
        assert body["refresh_token"] not in text
    assert "token" not in "".join(response.get_json()["sessions"][0])


def test_list_leaves_out_ended_and_expired_sessions(app, client, ada, clock_factory):
    first, second = ada
    client.post("/api/v1/auth/logout", headers=bearer(second))

    assert [item["current"] for item in listed(client, first)] == [True]


def test_list_shows_only_the_callers_sessions(app, client, ada, api):
    first, _ = ada
    api.signup("bob@example.com")
    bob = login_from(app, FIREFOX, "bob@example.com")

    ids = {item["id"] for item in listed(client, bob)}

    assert len(ids) == 1
    assert ids.isdisjoint({item["id"] for item in listed(client, first)})


def test_list_orders_the_most_recently_used_first(app, client, ada):
    first, second = ada
    # The first session is used again (a refresh) after the second was opened.
    refreshed = app.test_client().post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert refreshed.status_code == 200

    items = listed(client, second)

    assert [item["device"] for item in items] == [
        "Firefox 133 on Windows",
        "Mobile Safari 17 on iOS (iPhone)",
    ]


def test_accepted_access_token_records_last_use_at_most_once_a_minute(app, ada, clock_factory):
    first, _ = ada
    clock = clock_factory(app)
    client = app.test_client()

    def last_used() -> object:
        with app.app_context():
            session = db.session.scalars(
                select(AuthSession).order_by(AuthSession.created_at)
            ).first()
            return session.last_used_at

    client.get("/api/v1/accounts/me", headers=bearer(first))
    seen = last_used()
    assert seen == clock.now()
    clock.advance(seconds=30)
    client.get("/api/v1/accounts/me", headers=bearer(first))
    assert last_used() == seen
    clock.advance(seconds=30)
    client.get("/api/v1/accounts/me", headers=bearer(first))
    assert last_used() == clock.now()


def test_ending_one_session_answers_204_and_its_tokens_fail_at_once(app, client, ada):
    """SES-08: the ended session's access and refresh tokens are refused at once."""
    first, second = ada
    other = next(item for item in listed(client, first) if not item["current"])

    response = client.delete(f"{SESSIONS}/{other['id']}", headers=bearer(first))

    assert response.status_code == 204
    assert_problem(client.get("/api/v1/accounts/me", headers=bearer(second)), 401, "invalid_token")
    refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert_problem(refresh, 401, "session_revoked")
    assert client.get("/api/v1/accounts/me", headers=bearer(first)).status_code == 200
    with app.app_context():
        row = db.session.get(AuthSession, uuid.UUID(other["id"]))
        assert row.revoked_reason == "ended_by_user"


def test_ending_the_current_session_logs_the_caller_out(client, ada):
    first, _ = ada
    current = next(item for item in listed(client, first) if item["current"])

    assert client.delete(f"{SESSIONS}/{current['id']}", headers=bearer(first)).status_code == 204

    assert_problem(client.get(SESSIONS, headers=bearer(first)), 401, "invalid_token")


def test_ending_another_accounts_session_answers_404_and_changes_nothing(app, client, ada, api):
    """SES-08: another user's id → 404, not 403, so ids cannot be probed."""
    first, _ = ada
    api.signup("bob@example.com")
    bob = login_from(app, FIREFOX, "bob@example.com")
    adas = listed(client, first)[0]["id"]
    before = snapshot(app)

    response = client.delete(f"{SESSIONS}/{adas}", headers=bearer(bob))

    assert_problem(response, 404, "session_not_found")
    assert snapshot(app) == before
    assert client.get("/api/v1/accounts/me", headers=bearer(first)).status_code == 200


@pytest.mark.parametrize("which", ["unknown", "ended"])
def test_ending_an_unknown_or_ended_session_answers_the_same_404(app, client, ada, which):
    first, second = ada
    if which == "ended":
        session_id = next(item["id"] for item in listed(client, first) if not item["current"])
        client.post("/api/v1/auth/logout", headers=bearer(second))
    else:
        session_id = str(uuid.uuid4())

    response = client.delete(f"{SESSIONS}/{session_id}", headers=bearer(first))

    assert_problem(response, 404, "session_not_found")


def test_ending_a_session_with_a_malformed_id_answers_404(client, ada):
    first, _ = ada

    response = client.delete(f"{SESSIONS}/not-a-uuid", headers=bearer(first))

    assert_problem(response, 404, "not_found")


def test_ending_all_others_keeps_the_current_one_and_says_how_many(app, client, ada):
    """SES-08: ending all others → their tokens 401 at once; the caller's own still works."""
    first, second = ada
    third = login_from(app, "curl/8.5.0")

    response = client.delete(SESSIONS, headers=bearer(first))

    assert response.status_code == 200
    assert response.get_json() == {"ended": 2}
    for ended in (second, third):
        assert_problem(
            client.get("/api/v1/accounts/me", headers=bearer(ended)), 401, "invalid_token"
        )
    assert [item["current"] for item in listed(client, first)] == [True]


def test_session_endpoints_without_a_token_answer_401(client):
    one = f"{SESSIONS}/{uuid.uuid4()}"
    for method, path in [("get", SESSIONS), ("delete", SESSIONS), ("delete", one)]:
        response = getattr(client, method)(path)
        assert_problem(response, 401, "authentication_required")


def test_session_endpoints_answer_the_same_in_production(make_app):
    """SES-08 under the production configuration."""
    app = make_app("production")
    api = ApiActions(app.test_client())
    tokens = api.signup_and_login()
    client = app.test_client()

    items = client.get(SESSIONS, headers=tokens.headers).get_json()["sessions"]
    missing = client.delete(f"{SESSIONS}/{uuid.uuid4()}", headers=tokens.headers)

    assert [item["current"] for item in items] == [True]
    assert_problem(missing, 404, "session_not_found")


# --- Purge -------------------------------------------------------------------------------------


def test_purge_deletes_sessions_ended_or_expired_long_enough_ago_with_their_tokens(
    app, client, ada, clock_factory
):
    _first, second = ada
    client.post("/api/v1/auth/logout", headers=bearer(second))
    clock = clock_factory(app)
    clock.advance(days=8)

    with app.app_context():
        purged = sessions.purge(older_than=timedelta(days=7))

    assert purged == 1
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(AuthSession)) == 1
        live = db.session.scalar(select(AuthSession))
        assert live.revoked_at is None
        tokens = db.session.scalars(select(RefreshToken)).all()
        assert {token.session_id for token in tokens} == {live.id}


def test_purge_keeps_live_and_recently_ended_sessions(app, client, ada):
    _first, second = ada
    client.post("/api/v1/auth/logout", headers=bearer(second))
    before = snapshot(app)

    with app.app_context():
        purged = sessions.purge(older_than=timedelta(days=7))

    assert purged == 0
    assert snapshot(app) == before


def test_purge_deletes_expired_sessions_in_batches(app, api, clock_factory):
    api.signup()
    for _ in range(5):
        login_from(app, FIREFOX)
    clock = clock_factory(app)
    clock.advance(days=400)  # every session is past its absolute end, and a week more

    with app.app_context():
        purged = sessions.purge(older_than=timedelta(days=7), batch_size=2)

    assert purged == 5
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(RefreshToken)) == 0


def test_cli_sessions_purge_prints_how_many_it_deleted(app, client, ada, clock_factory):
    _, second = ada
    client.post("/api/v1/auth/logout", headers=bearer(second))
    clock_factory(app).advance(days=2)

    result = app.test_cli_runner().invoke(args=["sessions", "purge", "--older-than", "1"])

    assert result.exit_code == 0, result.output
    assert "purged 1 session(s)" in result.output
