"""Logs: JSON lines in production, an access line per request, never a secret (OPS-01, OPS-02)."""

import io
import json
import logging

import pytest

from tests.helpers import STRONG_PASSWORD, ApiActions, mailed_token

LOGIN = "/api/v1/auth/login"


@pytest.fixture
def captured():
    """Everything the gatehouse handler writes, as it writes it (after its formatter)."""
    stream = io.StringIO()
    yield stream


def attach(app, stream) -> None:
    handler = next(
        h for h in logging.getLogger("gatehouse").handlers if getattr(h, "_gatehouse", 0)
    )
    handler.setStream(stream)


def json_lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_production_writes_one_json_object_per_line_with_utc_time(make_app, captured):
    """OPS-02: time in UTC, level, logger, message, request id."""
    app = make_app("production")
    attach(app, captured)

    app.test_client().get("/api/v1/accounts/me", headers={"X-Request-ID": "trace-me-1"})

    lines = json_lines(captured)
    access = [line for line in lines if line["logger"] == "gatehouse.access"]
    assert len(access) == 1
    line = access[0]
    assert line["time"].endswith("Z")
    assert line["level"] == "INFO"
    assert line["request_id"] == "trace-me-1"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/accounts/me", 401)
    assert isinstance(line["duration_ms"], float)
    assert line["client_ip"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"method": "GET", "path": "/nowhere"}, 404),
        ({"method": "PUT", "path": LOGIN, "json": {}}, 405),
        (
            {
                "method": "POST",
                "path": LOGIN,
                "data": "x" * 70_000,
                "content_type": "application/json",
            },
            413,
        ),
        ({"method": "POST", "path": LOGIN, "data": "{}", "content_type": "text/plain"}, 415),
    ],
    ids=["404", "405", "413", "415"],
)
def test_requests_refused_before_any_view_get_an_access_line(
    make_app, captured, request_kwargs, status
):
    app = make_app("production")
    attach(app, captured)
    kwargs = dict(request_kwargs)
    path = kwargs.pop("path")

    app.test_client().open(path, **kwargs)

    access = [line for line in json_lines(captured) if line["logger"] == "gatehouse.access"]
    assert [(line["path"], line["status"]) for line in access] == [(path, status)]


def test_access_line_never_carries_the_query_string(make_app, captured):
    """OPS-01: a token sent as ?access_token= must not reach the logs."""
    app = make_app("production")
    attach(app, captured)
    tokens = ApiActions(app.test_client()).signup_and_login()

    app.test_client().get(f"/api/v1/accounts/me?access_token={tokens.access_token}")

    assert tokens.access_token not in captured.getvalue()
    assert "access_token=" not in captured.getvalue()


def test_access_line_of_an_authenticated_request_names_account_and_session(make_app, captured):
    app = make_app("production")
    attach(app, captured)
    api = ApiActions(app.test_client())
    tokens = api.signup_and_login()
    captured.truncate(0)
    captured.seek(0)

    api.me(tokens.access_token)

    (line,) = [line for line in json_lines(captured) if line["logger"] == "gatehouse.access"]
    assert line["account_id"] and line["session_id"]


def test_probes_are_logged_at_debug_only(make_app, captured):
    app = make_app("production")
    attach(app, captured)

    app.test_client().get("/healthz")

    assert [line for line in json_lines(captured) if line["logger"] == "gatehouse.access"] == []


def test_security_events_carry_their_vocabulary_name_and_outcome(make_app, captured):
    """OPS-02: one line per event, named from the OWASP Logging Vocabulary."""
    app = make_app("production")
    attach(app, captured)
    client = app.test_client()
    ApiActions(client).signup()

    client.post(LOGIN, json={"email": "ada@example.com", "password": "wrong password!"})
    client.post(LOGIN, json={"email": "ada@example.com", "password": STRONG_PASSWORD})

    events = [
        (line["event"], line["outcome"]) for line in json_lines(captured) if "outcome" in line
    ]
    assert events == [
        ("user_created", "success"),
        ("user_email_verified", "success"),  # production logins need it (D-9)
        ("authn_login_fail", "failure"),
        ("authn_login_success", "success"),
    ]
    failure = next(line for line in json_lines(captured) if line.get("event") == "authn_login_fail")
    assert failure["reason"] == "wrong_password" and failure["account_id"]


def test_text_lines_escape_carriage_returns_and_line_feeds(make_app, captured):
    """OPS-02: a client cannot forge a log line through the path."""
    app = make_app("testing", LOG_FORMAT="text")
    attach(app, captured)

    app.test_client().get("/nowhere%0D%0A2026-01-01 INFO forged line")

    assert len(captured.getvalue().splitlines()) == 1
    assert "\\r\\n" in captured.getvalue()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_logs_of_a_full_cycle_hold_no_secret(make_app, captured, log_format):
    """OPS-01: no password, token, hash or Authorization header in any line, either format."""
    app = make_app("production", LOG_FORMAT=log_format, LOG_LEVEL="DEBUG")
    attach(app, captured)
    client = app.test_client()
    secrets = [STRONG_PASSWORD, "wrong pw 1", "another long passphrase", "a reset passphrase"]
    client.post("/api/v1/accounts", json={"email": "ada@example.com", "password": STRONG_PASSWORD})
    secrets.append(mailed_token(app, "ada@example.com", "verify_email"))
    client.post("/api/v1/auth/verify-email", json={"token": secrets[-1]})
    client.post(LOGIN, json={"email": "ada@example.com", "password": "wrong pw 1"})
    tokens = client.post(
        LOGIN, json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    ).get_json()
    rotated = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    ).get_json()
    headers = {"Authorization": f"Bearer {rotated['access_token']}"}
    client.post(
        "/api/v1/accounts/me/password",
        json={"current_password": STRONG_PASSWORD, "new_password": secrets[2]},
        headers=headers,
    )
    client.post("/api/v1/auth/logout", headers=headers)
    client.post("/api/v1/auth/password-reset", json={"email": "ada@example.com"})
    secrets.append(mailed_token(app, "ada@example.com", "reset_password"))
    reset = client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": secrets[-1], "new_password": secrets[3]},
    )
    assert reset.status_code == 204
    secrets += [tokens["access_token"], tokens["refresh_token"], rotated["refresh_token"]]

    text = captured.getvalue()
    assert "authn_login_success" in text and "http_request" in text  # the cycle was logged
    for secret in secrets:
        assert secret not in text
    assert "$argon2" not in text
    assert "Bearer" not in text
