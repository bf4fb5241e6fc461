"""GET /api/v1/admin/audit-events and GET /api/v1/accounts/me/activity (SECURITY.md ADM-02,
ADM-06, JWT-09, LOG-01).

Administrators are made the supported way (``services/admin.create_admin``, what the CLI
calls, in ``tests/admin_helpers.py``); ``ADMIN_REQUIRES_MFA`` is off here so a password login
reaches the admin routes (the MFA rule has its own tests in test_admin_users.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.admin_helpers import ADMIN_EMAIL, admin_tokens
from tests.helpers import assert_problem

AUDIT = "/api/v1/admin/audit-events"
ACTIVITY = "/api/v1/accounts/me/activity"


@pytest.fixture
def app(make_app):
    return make_app(ADMIN_REQUIRES_MFA=False)


@pytest.fixture
def admin(app, api):
    return admin_tokens(app, api)


def wrong_login(client, email: str = "ada@example.com") -> None:
    client.post("/api/v1/auth/login", json={"email": email, "password": "not the password"})


def page(client, tokens, url: str = AUDIT, **params):
    response = client.get(url, query_string=params, headers=tokens.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_admin_reads_the_log_newest_first(client, api, admin):
    """ADM-06: time, event, actor, subject, IP, user agent, request id, outcome, details."""
    ada = api.signup()
    wrong_login(client)

    body = page(client, admin)

    newest = body["items"][0]
    assert newest["event"] == "authn_login_fail"
    assert newest["subject_id"] == ada["id"] and newest["actor_id"] is None
    assert newest["details"] == {"reason": "wrong_password"}
    assert newest["client_ip"] == "127.0.0.1" and newest["request_id"]
    sequences = [item["sequence"] for item in body["items"]]
    assert sequences == sorted(sequences, reverse=True)
    assert body["next_cursor"] is None


def test_admin_filters_by_event_subject_and_actor(client, api, admin):
    ada = api.signup()
    api.signup("bob@example.com")
    wrong_login(client)
    wrong_login(client, "bob@example.com")

    by_event = page(client, admin, event="authn_login_fail", subject_id=ada["id"])
    by_actor = page(client, admin, actor_id=ada["id"])

    assert [(i["event"], i["subject_id"]) for i in by_event["items"]] == [
        ("authn_login_fail", ada["id"])
    ]
    assert {i["event"] for i in by_actor["items"]} == {"user_created"}


def test_admin_filters_by_time_range(app, client, api, admin, clock):
    api.signup()
    start = clock.now()
    clock.advance(hours=1)
    wrong_login(client)
    clock.advance(hours=1)
    wrong_login(client)
    fresh = api.login(ADMIN_EMAIL)  # the fixture's token has expired by now

    inside = page(
        client,
        fresh,
        since=(start + timedelta(hours=1)).isoformat(),
        until=(start + timedelta(hours=2)).isoformat(),
    )

    assert [item["event"] for item in inside["items"]] == ["authn_login_fail"]


def test_pages_follow_the_cursor_without_gaps_or_repeats(client, api, admin):
    """Stable while new records are written: a cursor is a sequence number."""
    api.signup()
    for _ in range(6):
        wrong_login(client)
    first = page(client, admin, limit=3)
    wrong_login(client)  # written between pages: not in the pages that follow

    seen = [item["sequence"] for item in first["items"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        more = page(client, admin, limit=3, cursor=cursor)
        seen += [item["sequence"] for item in more["items"]]
        cursor = more["next_cursor"]

    assert seen == list(range(seen[0], 0, -1))


def test_page_size_is_capped(client, admin):
    response = client.get(AUDIT, query_string={"limit": 101}, headers=admin.headers)

    assert_problem(response, 400, "validation_failed")


@pytest.mark.parametrize(
    "params",
    [
        {"subject_id": "not-a-uuid"},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},  # no offset
        {"cursor": "-1"},
        {"unknown": "x"},
    ],
)
def test_malformed_filters_answer_400(client, admin, params):
    response = client.get(AUDIT, query_string=params, headers=admin.headers)

    assert_problem(response, 400, "validation_failed")


def test_a_user_token_is_refused_403(client, api, admin):
    """ADM-02, JWT-09: the audit log is for administrators (``audit:read``) only."""
    user = api.signup_and_login()

    response = client.get(AUDIT, headers=user.headers)

    assert_problem(response, 403, "forbidden")


def test_no_token_is_refused_401(client):
    """ADM-01."""
    assert_problem(client.get(AUDIT), 401, "authentication_required")


def test_admin_actions_are_recorded_with_actor_and_subject(app, client, api, admin):
    """ADM-06: every admin action names who did it and to whom."""
    ada = api.signup()
    admin_id = page(client, admin, event="user_created")["items"][-1]["subject_id"]

    client.post(f"/api/v1/admin/users/{ada['id']}/unlock", headers=admin.headers)

    actions = [
        item
        for item in page(client, admin)["items"]
        if item["actor_id"] == admin_id and item["subject_id"] == ada["id"]
    ]
    assert actions, "the unlock is recorded with its actor and subject"


# --- The account's own activity -------------------------------------------------------------


def test_an_account_sees_its_own_events_newest_first(client, api):
    """ADM-06: subject = caller; the reasons stay internal (LOG-01)."""
    api.signup()
    wrong_login(client)
    tokens = api.login()

    body = page(client, tokens, ACTIVITY)

    assert [item["event"] for item in body["items"]] == [
        "authn_login_success",
        "authn_login_fail",
        "user_created",
    ]
    assert set(body["items"][0]) == {"occurred_at", "event", "outcome", "client_ip", "user_agent"}


def test_an_account_never_sees_another_accounts_events(client, api):
    api.signup("bob@example.com")
    wrong_login(client, "bob@example.com")
    tokens = api.signup_and_login()

    events = [item["event"] for item in page(client, tokens, ACTIVITY)["items"]]

    assert events == ["authn_login_success", "user_created"]


def test_activity_pages_follow_the_cursor(client, api):
    api.signup()
    for _ in range(4):
        wrong_login(client)
    tokens = api.login()

    first = page(client, tokens, ACTIVITY, limit=4)
    rest = page(client, tokens, ACTIVITY, limit=4, cursor=first["next_cursor"])

    assert len(first["items"]) == 4 and len(rest["items"]) == 2
    assert rest["next_cursor"] is None


def test_a_personal_access_token_needs_activity_read(client, api):
    """JWT-09: a PAT reaches only what its scopes name."""
    tokens = api.signup_and_login()

    def pat(scopes):
        created = client.post(
            "/api/v1/accounts/me/tokens",
            json={"name": "-".join(scopes), "scopes": scopes},
            headers=tokens.headers,
        ).get_json()
        return {"Authorization": f"Bearer {created['token']}"}

    refused = client.get(ACTIVITY, headers=pat(["profile:read"]))
    allowed = client.get(ACTIVITY, headers=pat(["activity:read"]))

    assert_problem(refused, 403, "insufficient_scope")
    assert allowed.status_code == 200


def test_the_admin_sees_its_own_account_creation_in_its_activity(client, api, admin):
    events = [item["event"] for item in page(client, admin, ACTIVITY)["items"]]

    assert "authn_login_success" in events
