"""Every error is an RFC 9457 problem document, under the testing and the production config.

SECURITY.md: TESTING re-raises exceptions and can hide broken handlers, so every test here that
takes ``env_app``/``env_client`` runs twice, once per config.
"""

import io
import json
import logging
import re

import pytest
from sqlalchemy import text

from app.extensions import db
from app.runtime import runtime
from app.services import account as account_service
from tests.helpers import STRONG_PASSWORD, ApiActions, assert_problem, count_rows, snapshot

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "instance", "request_id"}
GENERATED_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
CSP = "default-src 'none'; frame-ancestors 'none'"
SIGNUP = "/api/v1/accounts"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LEAKS = ("<html", "<!doctype", "traceback", 'file "/', "werkzeug", "sqlalchemy", "psycopg")


@pytest.fixture(params=["testing", "production"])
def env_app(request, make_app):
    """HTTP-01: both configs, since TESTING re-raises exceptions and can hide broken handlers."""
    return make_app(request.param)


@pytest.fixture
def env_client(env_app):
    return env_app.test_client()


def assert_clean_problem(response, status: int, code: str) -> dict:
    """A full problem document, tied to its request, with nothing of the server's insides."""
    body = assert_problem(response, status, code)
    assert set(body) >= PROBLEM_KEYS
    assert body["instance"] == response.request.path
    assert body["request_id"] == response.headers["X-Request-ID"]
    lowered = response.get_data(as_text=True).lower()
    for leak in LEAKS:
        assert leak not in lowered, leak
    return body


def post_raw(client, data, content_type="application/json", path=LOGIN):
    return client.post(path, data=data, content_type=content_type)


# --- routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/v1/acounts", "/api/v1/auth/logins", "/api/v1/accounts/mee", "/index.html", "/"],
)
def test_get_unknown_route_returns_404_without_route_hints(env_client, path):
    """HTTP-01, HTTP-06: no "did you mean" (RESTX_ERROR_404_HELP) and no list of routes."""
    response = env_client.get(path)

    body = assert_clean_problem(response, 404, "not_found")
    assert set(body) == PROBLEM_KEYS
    for text_field in (body["title"], body["detail"]):
        assert "/" not in text_field
        assert "mean" not in text_field.lower()
        assert "requested" not in text_field.lower()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", LOGIN, "POST"),
        ("GET", REFRESH, "POST"),
        ("GET", SIGNUP, "POST"),
        ("DELETE", "/api/v1/auth/logout", "POST"),
        ("POST", "/.well-known/jwks.json", "GET"),
    ],
)
def test_request_with_wrong_method_returns_405_with_allow(env_client, method, path, allowed):
    """HTTP-01, HTTP-06."""
    response = env_client.open(path, method=method, json={})

    assert_clean_problem(response, 405, "method_not_allowed")
    allow = {part.strip() for part in response.headers["Allow"].split(",")}
    assert allowed in allow
    assert method not in allow


# --- request bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("email=ada%40example.com&password=x", "application/x-www-form-urlencoded"),
        (json.dumps({"email": "ada@example.com", "password": STRONG_PASSWORD}), "text/plain"),
        (json.dumps({"email": "ada@example.com", "password": STRONG_PASSWORD}), None),
        ("<signup/>", "application/xml"),
    ],
    ids=["form", "text", "none", "xml"],
)
def test_signup_with_non_json_content_type_returns_415_and_creates_nothing(
    env_app, env_client, data, content_type
):
    """HTTP-01, HTTP-02."""
    response = post_raw(env_client, data, content_type, path=SIGNUP)

    assert_clean_problem(response, 415, "unsupported_media_type")
    assert count_rows(env_app, "accounts") == 0


def test_body_over_max_content_length_returns_413(env_app, env_client):
    """HTTP-01, HTTP-03: one byte over 64 KiB."""
    limit = env_app.config["MAX_CONTENT_LENGTH"]
    assert limit == 64 * 1024
    prefix = '{"email": "ada@example.com", "password": "'
    body = prefix + "x" * (limit + 1 - len(prefix) - 2) + '"}'
    assert len(body) == limit + 1

    assert_clean_problem(post_raw(env_client, body), 413, "payload_too_large")


def test_signup_with_one_mebibyte_password_returns_413_unhashed(env_app, env_client, monkeypatch):
    """PWD-02, HTTP-03: refused before hashing, and no account row."""
    with env_app.app_context():
        hasher = runtime().hasher
    hashed = []
    real_hash = hasher.hash
    monkeypatch.setattr(hasher, "hash", lambda value: hashed.append(1) or real_hash(value))
    body = json.dumps({"email": "ada@example.com", "password": "x" * (1 << 20)})

    response = post_raw(env_client, body, path=SIGNUP)

    assert_clean_problem(response, 413, "payload_too_large")
    assert hashed == []
    assert count_rows(env_app, "accounts") == 0


@pytest.mark.parametrize(
    "data",
    [
        b'{"email": "ada@example.com", "password": ',
        b'{"email": "\xff@example.com", "password": "correct horse battery staple"}',
        b'{"email": "\xc0\xafada@example.com", "password": "correct horse battery staple"}',
        b'{"email": "\xed\xa0\x80@example.com", "password": "correct horse battery staple"}',
        b"",
        b"{'email': 'ada@example.com'}",
        b'{"email": "ada@example.com",}',
    ],
    ids=["truncated", "bad-utf8", "overlong-utf8", "encoded-surrogate", "empty", "quotes", "comma"],
)
def test_login_with_malformed_json_returns_400_malformed_json(env_client, data):
    """HTTP-01, HTTP-04."""
    assert_clean_problem(post_raw(env_client, data), 400, "malformed_json")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_login_with_nan_literal_returns_400_malformed_json(env_client, constant):
    """HTTP-04: Python's json accepts these non-JSON literals unless told not to."""
    data = '{"email": "ada@example.com", "password": ' + constant + "}"

    assert_clean_problem(post_raw(env_client, data), 400, "malformed_json")


@pytest.mark.parametrize("data", ["[]", '[{"email": "ada@example.com"}]', '"text"', "42", "null"])
def test_login_with_json_that_is_not_an_object_returns_400_invalid_body(env_client, data):
    """HTTP-01, HTTP-02."""
    assert_clean_problem(post_raw(env_client, data), 400, "invalid_body")


@pytest.mark.parametrize(
    "data",
    [
        '{"email": "ada@example.com", "password": "first-secret", "password": "second-secret"}',
        '{"email": "ada@example.com", "password": {"a": "first-secret", "a": "second-secret"}}',
    ],
    ids=["top-level", "nested"],
)
def test_login_with_duplicate_keys_returns_400_duplicate_key(env_client, data):
    """HTTP-05: either value could win, so neither does; the values are not echoed."""
    response = post_raw(env_client, data)

    assert_clean_problem(response, 400, "duplicate_key")
    assert "secret" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "data",
    [
        "[" * 10_000 + "]" * 10_000,
        '{"email": ' + '{"a":' * 10_000 + "1" + "}" * 10_000 + ', "password": "x"}',
    ],
    ids=["arrays", "objects-in-a-field"],
)
def test_login_with_10000_deep_json_returns_400(env_client, data):
    """HTTP-03: deep nesting is refused, not a RecursionError 500."""
    assert_clean_problem(post_raw(env_client, data), 400, "malformed_json")


def test_login_with_object_in_a_string_field_returns_400_invalid_type(env_client):
    """HTTP-02: no operator injection through a string field."""
    response = env_client.post(LOGIN, json={"email": {"$ne": None}, "password": STRONG_PASSWORD})

    body = assert_clean_problem(response, 400, "validation_failed")
    assert body["errors"] == [
        {"field": "email", "code": "invalid_type", "detail": "has the wrong type"}
    ]


BAD_CHARACTERS = {"nul": "nul\u0000byte", "surrogate": "lone\ud800surrogate", "bell": "bell\u0007"}
FIELDS = [
    (SIGNUP, "email"),
    (SIGNUP, "password"),
    (SIGNUP, "display_name"),
    (LOGIN, "email"),
    (LOGIN, "password"),
    (REFRESH, "refresh_token"),
]


@pytest.mark.parametrize("kind", list(BAD_CHARACTERS))
@pytest.mark.parametrize(("path", "field"), FIELDS, ids=[f"{p}:{f}" for p, f in FIELDS])
def test_field_with_control_character_or_lone_surrogate_returns_400(
    env_app, env_client, path, field, kind
):
    """HTTP-04: PostgreSQL text rejects NUL; a lone surrogate cannot be encoded as UTF-8."""
    body = {"email": "ada@example.com", "password": STRONG_PASSWORD}
    if path == REFRESH:
        body = {"refresh_token": "x" * 43}
    body[field] = BAD_CHARACTERS[kind] + "@example.com"
    # json.dumps writes the escapes \u0000 and \ud800, as a hostile client would.
    response = post_raw(env_client, json.dumps(body), path=path)

    problem = assert_clean_problem(response, 400, "validation_failed")
    assert problem["errors"] == [
        {"field": field, "code": "invalid_characters", "detail": "contains control characters"}
    ]
    assert count_rows(env_app, "accounts") == 0


@pytest.mark.parametrize(
    "key", ["\u0000", "\ud800", "role\ud800s"], ids=["nul", "surrogate", "mixed"]
)
def test_login_with_bad_characters_in_an_unknown_key_returns_400(env_client, key):
    """HTTP-01, HTTP-04: a key that cannot be encoded must not crash the problem renderer.

    Refusing the body outright (malformed_json) or naming the key as unknown (escaped) are
    both fine; a 500 from a UnicodeEncodeError is not.
    """
    data = json.dumps({"email": "ada@example.com", "password": STRONG_PASSWORD, key: 1})

    response = post_raw(env_client, data)

    assert response.status_code == 400, response.get_data(as_text=True)
    code = response.get_json()["code"]
    assert code in {"malformed_json", "validation_failed"}
    body = assert_clean_problem(response, 400, code)
    if code == "validation_failed":
        assert [error["code"] for error in body["errors"]] == ["unknown_field"]


def test_signup_validation_error_never_echoes_the_password(env_client):
    """OPS-01."""
    secret = "my-secret-password-" + "z" * 300
    response = env_client.post(SIGNUP, json={"email": "ada@example.com", "password": secret})

    assert_clean_problem(response, 400, "password_too_long")
    assert "my-secret-password" not in response.get_data(as_text=True)


# --- crashes ----------------------------------------------------------------------------------


def assert_crash_answer(response, caplog, secret: str) -> None:
    body = assert_clean_problem(response, 500, "internal_error")
    assert set(body) == PROBLEM_KEYS
    assert secret not in response.get_data(as_text=True)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert any(body["request_id"] in record.getMessage() for record in logged)
    assert any(record.exc_info and secret in str(record.exc_info[1]) for record in logged)


def test_crash_in_a_plain_flask_route_returns_500_with_logged_request_id(env_app, caplog):
    """HTTP-01: no Werkzeug HTML page, no exception text; the log has the request id."""
    secret = "secret internal detail /srv/gatehouse/app.py"

    def explode():
        raise RuntimeError(secret)

    env_app.add_url_rule("/explode", "explode", explode)

    with caplog.at_level(logging.ERROR, logger="gatehouse"):
        response = env_app.test_client().get("/explode")

    assert_crash_answer(response, caplog, secret)


def test_crash_in_a_restx_endpoint_returns_500_with_logged_request_id(
    env_app, env_client, monkeypatch, caplog
):
    """HTTP-01: RESTx's own error handler must not answer (or re-raise) instead of ours."""
    secret = "secret internal detail /srv/gatehouse/app.py"

    def explode(**_kwargs):
        raise RuntimeError(secret)

    monkeypatch.setattr(account_service, "register_account", explode)

    with caplog.at_level(logging.ERROR, logger="gatehouse"):
        response = env_client.post(
            SIGNUP,
            json={"email": "ada@example.com", "password": STRONG_PASSWORD},
            headers={"X-Request-ID": "crash-trace-1"},
        )

    assert_crash_answer(response, caplog, secret)
    assert response.get_json()["request_id"] == "crash-trace-1"
    assert count_rows(env_app, "accounts") == 0


def test_unreachable_database_returns_503_with_retry_after(make_app):
    """REL-01 in spirit: an unreachable database is a 503 problem, not a crash."""
    app = make_app("production", DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")

    response = app.test_client().post(
        LOGIN, json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )

    assert_clean_problem(response, 503, "service_unavailable")
    assert response.headers["Retry-After"]


# --- DATA-01: a failed request changes nothing -------------------------------------------------


FAILED_REQUESTS = {
    "signup-weak-password": (
        lambda c, t: c.post(SIGNUP, json={"email": "bob@example.com", "password": "short"}),
        400,
        "password_too_short",
    ),
    "signup-taken-email": (
        lambda c, t: c.post(SIGNUP, json={"email": "ADA@example.com", "password": STRONG_PASSWORD}),
        409,
        "email_taken",
    ),
    "signup-extra-field": (
        lambda c, t: c.post(
            SIGNUP,
            json={"email": "bob@example.com", "password": STRONG_PASSWORD, "roles": ["admin"]},
        ),
        400,
        "validation_failed",
    ),
    "login-wrong-password": (
        lambda c, t: c.post(LOGIN, json={"email": "ada@example.com", "password": "wrong pass"}),
        401,
        "invalid_credentials",
    ),
    "refresh-unknown-token": (
        lambda c, t: c.post(REFRESH, json={"refresh_token": "y" * 43}),
        401,
        "invalid_refresh_token",
    ),
    "password-change-wrong-current": (
        lambda c, t: c.post(
            "/api/v1/accounts/me/password",
            json={"current_password": "wrong password", "new_password": "another long password"},
            headers=t.headers,
        ),
        400,
        "current_password_incorrect",
    ),
    "password-change-weak-new": (
        lambda c, t: c.post(
            "/api/v1/accounts/me/password",
            json={"current_password": STRONG_PASSWORD, "new_password": "short"},
            headers=t.headers,
        ),
        400,
        "password_too_short",
    ),
    "profile-too-long": (
        lambda c, t: c.patch(
            "/api/v1/accounts/me", json={"display_name": "x" * 101}, headers=t.headers
        ),
        400,
        "validation_failed",
    ),
    "delete-wrong-password": (
        lambda c, t: c.delete("/api/v1/accounts/me", json={"password": "nope"}, headers=t.headers),
        400,
        "current_password_incorrect",
    ),
}


# Refusals that D-2's generic sign-up turns into a 202 (tested in tests/email).
ANSWERED_GENERICALLY_IN_PRODUCTION = {"signup-taken-email"}

# A wrong password is meant to leave one trace: the lockout's failure count (D-5, RL-06).
COUNTS_A_FAILURE = {
    "login-wrong-password",
    "password-change-wrong-current",
    "delete-wrong-password",
}


def failure_count(app) -> int:
    with app.app_context():
        return db.session.execute(text("SELECT failed_login_count FROM accounts")).scalar_one()


@pytest.mark.parametrize("case", list(FAILED_REQUESTS))
def test_failed_request_leaves_every_table_as_it_was(env_app, env_client, case):
    """DATA-01: row counts and the rows themselves (account, sessions, tokens) are unchanged,
    but for the failure count a wrong password adds one to."""
    request, status, code = FAILED_REQUESTS[case]
    if case in ANSWERED_GENERICALLY_IN_PRODUCTION and env_app.config["SIGNUP_GENERIC_ANSWER"]:
        pytest.skip("production answers a taken address like a new one (tests/email)")
    ApiActions(env_client).signup()
    tokens = ApiActions(env_client).login()
    ignore = ("accounts.failed_login_count",)
    before, failures = snapshot(env_app, ignore=ignore), failure_count(env_app)

    response = request(env_client, tokens)

    assert_clean_problem(response, status, code)
    assert snapshot(env_app, ignore=ignore) == before
    assert failure_count(env_app) == failures + (case in COUNTS_A_FAILURE)


def test_login_crashing_after_the_session_is_added_leaves_no_session(
    env_app, env_client, monkeypatch
):
    """DATA-01: one operation, one transaction; no orphan session row."""
    ApiActions(env_client).signup()
    before = snapshot(env_app)
    with env_app.app_context():
        codec = runtime().tokens

    def explode(**_kwargs):
        raise RuntimeError("signing failed")

    monkeypatch.setattr(codec, "issue", explode)

    response = env_client.post(
        LOGIN, json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )

    assert_clean_problem(response, 500, "internal_error")
    assert snapshot(env_app) == before


def test_refresh_crashing_after_spending_the_token_leaves_it_unspent(
    env_app, env_client, monkeypatch
):
    """DATA-01: no half rotation; the refresh token still works once the fault is gone."""
    api = ApiActions(env_client)
    tokens = api.signup_and_login()
    before = snapshot(env_app)
    with env_app.app_context():
        codec = runtime().tokens

    def explode(**_kwargs):
        raise RuntimeError("signing failed")

    with monkeypatch.context() as patch:
        patch.setattr(codec, "issue", explode)
        response = api.refresh(tokens.refresh_token)

    assert_clean_problem(response, 500, "internal_error")
    assert snapshot(env_app) == before
    assert api.refresh(tokens.refresh_token).status_code == 200


def test_password_change_crashing_before_commit_keeps_old_password_and_sessions(
    env_app, env_client, monkeypatch
):
    """DATA-01: the hash, the ended sessions and the rest go together or not at all."""
    api = ApiActions(env_client)
    caller = api.signup_and_login()
    other = api.login()
    before = snapshot(env_app)
    real_end_sessions = account_service.end_sessions

    def end_then_explode(*args, **kwargs):
        real_end_sessions(*args, **kwargs)
        raise RuntimeError("crash between the writes and the commit")

    with monkeypatch.context() as patch:
        patch.setattr(account_service, "end_sessions", end_then_explode)
        response = env_client.post(
            "/api/v1/accounts/me/password",
            json={"current_password": STRONG_PASSWORD, "new_password": "another long password"},
            headers=caller.headers,
        )

    assert_clean_problem(response, 500, "internal_error")
    assert snapshot(env_app) == before
    assert api.me(other.access_token).status_code == 200
    api.login(password=STRONG_PASSWORD)


# --- headers on every answer ------------------------------------------------------------------


def _signup(client):
    return client.post(SIGNUP, json={"email": "ada@example.com", "password": STRONG_PASSWORD})


def _login(client):
    ApiActions(client).signup()
    return client.post(LOGIN, json={"email": "ada@example.com", "password": STRONG_PASSWORD})


def _me(client):
    return client.get("/api/v1/accounts/me", headers=ApiActions(client).signup_and_login().headers)


def _logout(client):
    tokens = ApiActions(client).signup_and_login()
    return client.post("/api/v1/auth/logout", headers=tokens.headers)


ANSWERS = {
    "2xx-signup": (_signup, (201, 202)),  # 202 where sign-ups answer generically (D-2)
    "200-login": (_login, 200),
    "200-me": (_me, 200),
    "204-logout": (_logout, 204),
    "200-jwks": (lambda c: c.get("/.well-known/jwks.json"), 200),
    "308-redirect": (lambda c: c.get("/api/v1"), 308),
    "400-body": (lambda c: post_raw(c, "[]"), 400),
    "401-me": (lambda c: c.get("/api/v1/accounts/me"), 401),
    "404-api": (lambda c: c.get("/api/v1/nowhere"), 404),
    "404-outside": (lambda c: c.get("/nowhere"), 404),
    "405": (lambda c: c.put(LOGIN, json={}), 405),
    "413": (lambda c: post_raw(c, "x" * (65 * 1024)), 413),
    "415": (lambda c: post_raw(c, "{}", "text/plain"), 415),
}
DOCS_ANSWERS = {
    "200-docs": (lambda c: c.get("/api/v1/docs"), 200),
    "200-openapi": (lambda c: c.get("/api/v1/swagger.json"), 200),
}


@pytest.mark.parametrize("answer", list(ANSWERS) + list(DOCS_ANSWERS))
def test_every_answer_carries_nosniff_and_a_request_id(env_client, answer):
    """HTTP-07, OPS-02."""
    request, status = {**ANSWERS, **DOCS_ANSWERS}[answer]

    response = request(env_client)

    assert response.status_code in (status if isinstance(status, tuple) else (status,))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert GENERATED_REQUEST_ID.fullmatch(response.headers["X-Request-ID"])


@pytest.mark.parametrize("answer", list(ANSWERS))
def test_every_api_answer_carries_a_strict_csp(env_client, answer):
    """HTTP-07: API answers are data; they may run nothing and be framed by nobody."""
    request, status = ANSWERS[answer]

    response = request(env_client)

    assert response.status_code in (status if isinstance(status, tuple) else (status,))
    assert response.headers["Content-Security-Policy"] == CSP


@pytest.mark.parametrize("answer", list(ANSWERS) + list(DOCS_ANSWERS))
def test_hsts_is_sent_in_production_only(env_app, env_client, answer):
    """HTTP-07: HSTS in production; a development server on plain HTTP must not pin it."""
    request, status = {**ANSWERS, **DOCS_ANSWERS}[answer]

    response = request(env_client)

    assert response.status_code in (status if isinstance(status, tuple) else (status,))
    hsts = response.headers.get("Strict-Transport-Security")
    if env_app.config["ENV_NAME"] == "production":
        assert hsts is not None
        max_age = int(re.search(r"max-age=(\d+)", hsts).group(1))
        assert max_age >= 31_536_000
    else:
        assert hsts is None


def test_error_answer_is_not_cached(env_client):
    """HTTP-07."""
    response = env_client.get("/api/v1/accounts/me")

    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_docs_and_openapi_document_are_served(env_client):
    docs = env_client.get("/api/v1/docs")
    spec = env_client.get("/api/v1/swagger.json")

    assert docs.status_code == 200
    assert "swagger" in docs.get_data(as_text=True).lower()
    assert spec.status_code == 200
    assert "/accounts/me" in spec.get_json()["paths"]


def test_openapi_document_holds_no_secret_examples(env_client):
    """OPS-01."""
    text_ = env_client.get("/api/v1/swagger.json").get_data(as_text=True)

    assert "$argon2" not in text_
    assert "PRIVATE KEY" not in text_


# --- request ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("incoming", ["abc-123.XYZ_9", "x" * 128])
def test_valid_request_id_is_echoed_in_header_and_problem(env_client, incoming):
    """OPS-02."""
    response = env_client.get("/api/v1/accounts/me", headers={"X-Request-ID": incoming})

    assert response.headers["X-Request-ID"] == incoming
    assert response.get_json()["request_id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "abc\r\nSet-Cookie: stolen=1",
        "abc\nX-Injected: 1",
        "x" * 500,
        "x" * 129,
        "bad id with spaces",
        "evil\tvalue",
        "",
    ],
    ids=["crlf", "lf", "500-chars", "129-chars", "spaces", "tab", "empty"],
)
def test_invalid_request_id_is_replaced(env_client, incoming):
    """OPS-02: a hostile id never reaches a header or a log line; a fresh one does."""
    # Passed through the WSGI environ: the test client itself refuses CR/LF in headers.
    response = env_client.get(
        "/api/v1/accounts/me", environ_overrides={"HTTP_X_REQUEST_ID": incoming}
    )

    replaced = response.headers["X-Request-ID"]
    assert replaced != incoming
    assert GENERATED_REQUEST_ID.fullmatch(replaced)
    assert response.get_json()["request_id"] == replaced
    assert "Set-Cookie" not in response.headers
    assert "X-Injected" not in response.headers


# --- transport edge cases ---------------------------------------------------------------------


def post_chunked(client, body: bytes):
    """POST ``body`` without Content-Length, as a server that has de-chunked it presents it."""
    return client.post(
        LOGIN,
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def login_body_padded_to(size: int) -> bytes:
    """A valid login body of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    body = json.dumps({"email": "ada@example.com", "password": STRONG_PASSWORD}).encode()
    return body + b" " * (size - len(body))


def test_chunked_body_over_the_size_limit_returns_413(env_client):
    """HTTP-03: no Content-Length (chunked): refused, not truncated into malformed JSON."""
    body = json.dumps({"email": "ada@example.com", "password": "x" * 200_000}).encode()

    response = post_chunked(env_client, body)

    assert_clean_problem(response, 413, "payload_too_large")


def test_chunked_body_one_byte_over_the_size_limit_returns_413(env_app, env_client):
    """HTTP-03."""
    response = post_chunked(
        env_client, login_body_padded_to(env_app.config["MAX_CONTENT_LENGTH"] + 1)
    )

    assert_clean_problem(response, 413, "payload_too_large")


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_body_of_exactly_the_size_limit_is_read_whole(env_app, env_client, chunked):
    """HTTP-03: the limit is inclusive, with or without Content-Length."""
    body = login_body_padded_to(env_app.config["MAX_CONTENT_LENGTH"])

    if chunked:
        response = post_chunked(env_client, body)
    else:
        response = env_client.post(LOGIN, data=body, content_type="application/json")

    assert_clean_problem(response, 401, "invalid_credentials")


def test_small_chunked_body_is_read_whole(env_client):
    body = json.dumps({"email": "ada@example.com", "password": STRONG_PASSWORD}).encode()

    response = post_chunked(env_client, body)

    assert_clean_problem(response, 401, "invalid_credentials")


def test_slash_redirect_carries_no_html(env_client):
    """HTTP-01: no HTML page, even on a redirect."""
    response = env_client.get("/api/v1")

    assert response.status_code == 308
    assert response.headers["Location"].endswith("/api/v1/")
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers


@pytest.mark.parametrize("path", [LOGIN, "/.well-known/jwks.json"])
def test_options_answers_204_with_allow_and_no_html(env_client, path):
    """HTTP-01: the automatic OPTIONS answer has no body and so no text/html type."""
    response = env_client.options(path)

    assert response.status_code == 204
    assert "OPTIONS" in response.headers["Allow"]
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers
