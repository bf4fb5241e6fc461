"""Every error is an RFC 9457 problem document, under the testing and the production config."""

import io
import json
import logging

import pytest

from app.services import account as account_service
from tests.helpers import STRONG_PASSWORD, ApiActions, assert_problem, count_rows


@pytest.fixture(params=["testing", "production"])
def env_app(request, make_app):
    """HTTP-01: TESTING re-raises exceptions and can hide broken handlers, so test both."""
    return make_app(request.param)


@pytest.fixture
def env_client(env_app):
    return env_app.test_client()


def assert_clean_problem(response, status: int, code: str) -> dict:
    body = assert_problem(response, status, code)
    text = response.get_data(as_text=True)
    assert "<html" not in text.lower()
    assert "Traceback" not in text
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["instance"]
    return body


def post_raw(client, data, content_type="application/json", path="/api/v1/auth/login"):
    return client.post(path, data=data, content_type=content_type)


def test_unknown_route_returns_404_without_hints(env_client):
    """HTTP-06."""
    response = env_client.get("/api/v1/acounts")

    body = assert_clean_problem(response, 404, "not_found")
    assert "accounts" not in json.dumps(body)


def test_unknown_route_outside_the_api_returns_404_problem(env_client):
    assert_clean_problem(env_client.get("/index.html"), 404, "not_found")


def test_wrong_method_returns_405_with_allow(env_client):
    """HTTP-06."""
    response = env_client.put("/api/v1/auth/login", json={})

    assert_clean_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("email=a&password=b", "application/x-www-form-urlencoded"),
        ('{"email": "a"}', "text/plain"),
        ('{"email": "a"}', None),
    ],
    ids=["form", "text", "none"],
)
def test_non_json_content_type_returns_415(env_client, data, content_type):
    """HTTP-02."""
    response = post_raw(env_client, data, content_type)

    assert_clean_problem(response, 415, "unsupported_media_type")


def test_body_over_the_size_limit_returns_413(env_client):
    """HTTP-03."""
    body = json.dumps({"email": "ada@example.com", "password": "x" * 70_000})

    assert_clean_problem(post_raw(env_client, body), 413, "payload_too_large")


def test_one_mebibyte_password_at_sign_up_returns_413_and_stores_nothing(env_app, env_client):
    """PWD-02: refused before hashing."""
    body = json.dumps({"email": "ada@example.com", "password": "x" * (1 << 20)})

    response = post_raw(env_client, body, path="/api/v1/accounts")

    assert_clean_problem(response, 413, "payload_too_large")
    assert count_rows(env_app, "accounts") == 0


@pytest.mark.parametrize(
    "data",
    [b'{"email": "a@example.com", "password": ', b"\xff\xfe{}", b"", b"{'a': 1}", b'{"a": NaN}'],
    ids=["truncated", "bad-utf8", "empty", "single-quotes", "nan"],
)
def test_malformed_json_returns_400(env_client, data):
    """HTTP-04."""
    assert_clean_problem(post_raw(env_client, data), 400, "malformed_json")


@pytest.mark.parametrize("data", ["[]", '"text"', "42", "null"])
def test_json_that_is_not_an_object_returns_400(env_client, data):
    """HTTP-02."""
    assert_clean_problem(post_raw(env_client, data), 400, "invalid_body")


def test_duplicate_json_keys_return_400(env_client):
    """HTTP-05."""
    data = '{"email": "a@example.com", "password": "x", "password": "y"}'

    assert_clean_problem(post_raw(env_client, data), 400, "duplicate_key")


def test_deeply_nested_json_returns_400(env_client):
    """HTTP-03: 10,000 levels deep is refused, not a crash."""
    data = '{"email": ' + "[" * 10_000 + "]" * 10_000 + "}"

    assert_clean_problem(post_raw(env_client, data), 400, "malformed_json")


def test_nested_value_in_a_string_field_returns_400(env_client):
    response = env_client.post(
        "/api/v1/auth/login", json={"email": {"$ne": None}, "password": STRONG_PASSWORD}
    )

    body = assert_clean_problem(response, 400, "validation_failed")
    assert body["errors"][0]["code"] == "invalid_type"


@pytest.mark.parametrize(
    "value",
    ["nul\u0000byte", "lone\ud800surrogate", "bell\u0007"],
    ids=["nul", "surrogate", "bell"],
)
def test_control_characters_and_lone_surrogates_return_400(env_app, env_client, value):
    """HTTP-04: PostgreSQL text rejects NUL; a lone surrogate cannot be encoded."""
    data = json.dumps(
        {"email": "ada@example.com", "password": STRONG_PASSWORD, "display_name": value}
    )

    response = post_raw(env_client, data, path="/api/v1/accounts")

    body = assert_clean_problem(response, 400, "validation_failed")
    assert body["errors"] == [
        {
            "field": "display_name",
            "code": "invalid_characters",
            "detail": "contains control characters",
        }
    ]
    assert count_rows(env_app, "accounts") == 0


def test_validation_errors_never_echo_the_submitted_password(env_client):
    """OPS-01."""
    secret = "my-secret-password-" + "z" * 300
    response = env_client.post(
        "/api/v1/accounts", json={"email": "ada@example.com", "password": secret}
    )

    assert response.status_code == 400
    assert "my-secret-password" not in response.get_data(as_text=True)


def test_crash_in_an_endpoint_returns_500_with_request_id_in_the_log(
    env_app, env_client, monkeypatch, caplog
):
    """HTTP-01: a 500 has a request id the log repeats, and says nothing else."""

    def explode(**_kwargs):
        raise RuntimeError("secret internal detail /srv/app.py")

    monkeypatch.setattr(account_service, "register_account", explode)

    with caplog.at_level(logging.ERROR, logger="gatehouse"):
        response = env_client.post(
            "/api/v1/accounts", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
        )

    body = assert_clean_problem(response, 500, "internal_error")
    assert "secret internal detail" not in response.get_data(as_text=True)
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(body["request_id"] in r.getMessage() for r in logged)
    assert any(r.exc_info and "secret internal detail" in str(r.exc_info[1]) for r in logged)


def test_crash_outside_the_api_returns_500_problem(make_app):
    """HTTP-01, production config: no Werkzeug HTML page."""
    app = make_app("production")

    def explode():
        raise RuntimeError("boom")

    app.add_url_rule("/explode", "explode", explode)

    response = app.test_client().get("/explode")

    assert_clean_problem(response, 500, "internal_error")


def test_database_failure_returns_503_with_retry_after(make_app, tmp_path):
    """REL-01 in spirit: an unreachable database is a 503 problem, not a crash."""
    app = make_app("production", DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")

    response = app.test_client().post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )

    assert_clean_problem(response, 503, "service_unavailable")
    assert response.headers["Retry-After"]


def test_failed_requests_leave_the_database_as_it_was(env_app, env_client):
    """DATA-01."""
    api = ApiActions(env_client)
    tokens = api.signup_and_login()
    tables = ("accounts", "sessions", "refresh_tokens", "account_roles")
    before = {t: count_rows(env_app, t) for t in tables}

    env_client.post("/api/v1/accounts", json={"email": "bob@example.com", "password": "short"})
    env_client.post(
        "/api/v1/accounts", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )
    env_client.post(
        "/api/v1/accounts/me/password",
        json={"current_password": "wrong password", "new_password": "another long password"},
        headers=tokens.headers,
    )
    env_client.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": "nope"})
    env_client.delete("/api/v1/accounts/me", json={"password": "nope"}, headers=tokens.headers)

    assert {t: count_rows(env_app, t) for t in tables} == before


# --- headers on every answer ----------------------------------------------------------------


def test_every_answer_carries_security_headers(env_app, env_client):
    """HTTP-07."""
    for response in (
        env_client.get("/api/v1/accounts/me"),
        env_client.get("/nowhere"),
        env_client.get("/.well-known/jwks.json"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert (
            response.headers["Content-Security-Policy"]
            == "default-src 'none'; frame-ancestors 'none'"
        )
        hsts = response.headers.get("Strict-Transport-Security")
        assert (hsts is not None) == (env_app.config["ENV_NAME"] == "production")


def test_errors_are_not_cached(env_client):
    """HTTP-07."""
    response = env_client.get("/api/v1/accounts/me")

    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_swagger_ui_and_openapi_document_are_served(env_client):
    docs = env_client.get("/api/v1/docs")
    spec = env_client.get("/api/v1/swagger.json")

    assert docs.status_code == 200
    assert "swagger" in docs.get_data(as_text=True).lower()
    assert spec.status_code == 200
    assert "/accounts/me" in spec.get_json()["paths"]


def test_openapi_document_holds_no_secret_examples(env_client):
    """OPS-01."""
    text = env_client.get("/api/v1/swagger.json").get_data(as_text=True)

    assert "$argon2" not in text
    assert "PRIVATE KEY" not in text


def test_valid_request_id_is_echoed(env_client):
    """OPS-02."""
    response = env_client.get("/api/v1/accounts/me", headers={"X-Request-ID": "abc-123.XYZ_9"})

    assert response.headers["X-Request-ID"] == "abc-123.XYZ_9"
    assert response.get_json()["request_id"] == "abc-123.XYZ_9"


@pytest.mark.parametrize("incoming", ["bad id with spaces", "x" * 500, "evil\tvalue"])
def test_invalid_request_id_is_replaced(env_client, incoming):
    response = env_client.get("/api/v1/accounts/me", headers={"X-Request-ID": incoming})

    assert response.headers["X-Request-ID"] != incoming
    assert len(response.headers["X-Request-ID"]) == 32


def test_chunked_body_over_the_size_limit_returns_413(env_client):
    """HTTP-03: no Content-Length (chunked): refused, not truncated into malformed JSON."""
    body = json.dumps({"email": "ada@example.com", "password": "x" * 200_000}).encode()

    response = env_client.post(
        "/api/v1/auth/login",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        # As a server that has already de-chunked the body presents it.
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert_clean_problem(response, 413, "payload_too_large")


def test_small_chunked_body_is_read_whole(env_client):
    body = json.dumps({"email": "ada@example.com", "password": STRONG_PASSWORD}).encode()

    response = env_client.post(
        "/api/v1/auth/login",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        # As a server that has already de-chunked the body presents it.
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert_clean_problem(response, 401, "invalid_credentials")


def test_slash_redirect_carries_no_html(env_client):
    """HTTP-01: no HTML page, even on a redirect."""
    response = env_client.get("/api/v1")

    assert response.status_code == 308
    assert response.headers["Location"].endswith("/api/v1/")
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers
