"""POST /api/v1/auth/login."""

import statistics
import time
import unicodedata

import jwt
import pytest
from argon2 import PasswordHasher as Argon2Hasher
from sqlalchemy import select

from app.extensions import db
from app.models import Account, AuthSession
from tests.helpers import STRONG_PASSWORD, ApiActions, assert_problem, count_rows

LOGIN = "/api/v1/auth/login"


def _claims(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


def _without_request_details(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("request_id",)}


def test_login_with_correct_password_returns_token_pair(client, api):
    account = api.signup()

    response = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == 30 * 24 * 3600
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    claims = _claims(body["access_token"])
    assert claims["sub"] == account["id"]
    assert claims["roles"] == ["user"]
    assert claims["amr"] == ["pwd"]
    assert claims["exp"] - claims["iat"] == 900


def test_login_opens_a_new_session_each_time(app, api):
    """SES-06: each login a new sid."""
    api.signup()

    first, second = api.login(), api.login()

    first_sid = _claims(first.access_token)["sid"]
    second_sid = _claims(second.access_token)["sid"]
    assert first_sid != second_sid
    with app.app_context():
        sids = {str(s) for s in db.session.scalars(select(AuthSession.id))}
    assert sids == {first_sid, second_sid}


def test_login_records_client_details_on_the_session(app, client, api):
    api.signup()

    client.post(
        "/api/v1/auth/login",
        json={"email": "ada@example.com", "password": STRONG_PASSWORD},
        headers={"User-Agent": "TestAgent/1.0"},
    )

    with app.app_context():
        session = db.session.scalar(select(AuthSession))
        assert session.user_agent == "TestAgent/1.0"
        assert session.ip_address == "127.0.0.1"
        assert session.revoked_at is None


@pytest.mark.parametrize("email", ["ADA@EXAMPLE.COM", "Ada@Example.com", "ada@EXAMPLE.com"])
def test_login_email_is_case_insensitive(client, api, email):
    """LOG-03."""
    api.signup("ada@example.com")

    response = client.post("/api/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD})

    assert response.status_code == 200


def test_login_unknown_email_and_wrong_password_give_identical_answers(client, app, api):
    """LOG-01: the same status, body and headers (but the request id) either way."""
    api.signup()

    unknown = client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": STRONG_PASSWORD}
    )
    wrong = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": "wrong password!"}
    )

    assert_problem(unknown, 401, "invalid_credentials")
    assert_problem(wrong, 401, "invalid_credentials")
    assert _without_request_details(unknown.get_json()) == _without_request_details(
        wrong.get_json()
    )
    ignored = {"X-Request-ID", "Content-Length"}
    assert {k: v for k, v in unknown.headers if k not in ignored} == {
        k: v for k, v in wrong.headers if k not in ignored
    }
    assert count_rows(app, "sessions") == 0
    assert count_rows(app, "refresh_tokens") == 0


def test_login_timing_does_not_tell_whether_the_account_exists(make_app):
    """LOG-02: an unknown email costs a real Argon2 verification, with the live parameters.

    Ratios inside one run, so a noisy machine moves both sides: logins for an unknown email
    and with a wrong password for a real one are interleaved under production's own Argon2
    parameters (about 75 ms a verify here). If the dummy verification is skipped, or made with
    cheaper parameters, the unknown-email median falls to a few milliseconds and both
    assertions fail; the bound (a quarter of a verify, at least 20 ms) is far above the
    jitter of a median of nine.
    """
    app = make_app("production", production_hashing=True)
    client = app.test_client()
    ApiActions(client).signup()
    hasher = app.extensions["gatehouse"].hasher
    stored = hasher.hash(STRONG_PASSWORD)

    def timed(action) -> float:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start

    def login(email: str) -> None:
        response = client.post(LOGIN, json={"email": email, "password": "not the password"})
        assert response.status_code == 401

    verify = statistics.median(timed(lambda: hasher.verify(stored, "x")) for _ in range(5))
    known, unknown = [], []
    for index in range(9):
        pair = [(known, "ada@example.com"), (unknown, f"nobody{index}@example.com")]
        for samples, email in pair if index % 2 else reversed(pair):
            samples.append(timed(lambda email=email: login(email)))

    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    assert unknown_median >= 0.75 * verify, (unknown_median, verify)
    assert abs(known_median - unknown_median) < max(0.25 * verify, 0.020), (
        known_median,
        unknown_median,
        verify,
    )


def test_login_with_syntactically_invalid_email_gives_the_generic_answer(client):
    response = client.post(
        "/api/v1/auth/login", json={"email": "not an email", "password": STRONG_PASSWORD}
    )

    assert_problem(response, 401, "invalid_credentials")


@pytest.mark.parametrize("variant", ["truncated", "upper"])
def test_login_with_truncated_or_case_folded_password_fails(client, api, variant):
    """PWD-03: no truncation at 72 bytes, no case folding."""
    password = "Long-Password-" + "x" * 86
    assert len(password) == 100
    api.signup(password=password)
    attempt = password[:72] if variant == "truncated" else password.upper()

    response = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": attempt}
    )

    assert_problem(response, 401, "invalid_credentials")


def test_login_with_nfd_form_of_an_nfc_password_succeeds(client, api):
    """PWD-04: set NFC, log in NFD."""
    password = unicodedata.normalize("NFC", "Crème brûlée à la façon")
    api.signup(password=password)
    decomposed = unicodedata.normalize("NFD", password)
    assert decomposed != password

    response = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": decomposed}
    )

    assert response.status_code == 200


def test_login_upgrades_a_weaker_hash_after_correct_password(client, app, api):
    """PWD-07."""
    api.signup()
    weak = Argon2Hasher(time_cost=1, memory_cost=512, parallelism=1).hash(STRONG_PASSWORD)
    with app.app_context():
        account = db.session.scalar(select(Account))
        account.password_hash = weak
        db.session.commit()

    response = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )

    assert response.status_code == 200
    with app.app_context():
        stored = db.session.scalar(select(Account.password_hash))
    assert stored != weak
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")


def test_login_with_wrong_password_leaves_a_weaker_hash_alone(client, app, api):
    """PWD-07: upgraded on a correct login only."""
    api.signup()
    weak = Argon2Hasher(time_cost=1, memory_cost=512, parallelism=1).hash(STRONG_PASSWORD)
    with app.app_context():
        db.session.scalar(select(Account)).password_hash = weak
        db.session.commit()

    response = client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": "not the password"}
    )

    assert response.status_code == 401
    with app.app_context():
        assert db.session.scalar(select(Account.password_hash)) == weak


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"email": "ada@example.com"}, "password", "missing"),
        ({"password": STRONG_PASSWORD}, "email", "missing"),
        ({"email": "ada@example.com", "password": 12345678}, "password", "invalid_type"),
        (
            {"email": "ada@example.com", "password": STRONG_PASSWORD, "remember": True},
            "remember",
            "unknown_field",
        ),
    ],
    ids=["no-password", "no-email", "password-int", "unknown-field"],
)
def test_login_with_invalid_body_returns_400(client, app, body, field, code):
    """HTTP-02."""
    response = client.post("/api/v1/auth/login", json=body)

    problem = assert_problem(response, 400, "validation_failed")
    assert [{"field": e["field"], "code": e["code"]} for e in problem["errors"]] == [
        {"field": field, "code": code}
    ]
    assert count_rows(app, "sessions") == 0
