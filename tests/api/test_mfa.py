"""Two-factor authentication with TOTP: enrolment, login, recovery codes, disabling.

SECURITY.md MFA-01 to MFA-05, with JWT-05 (kinds never cross), RL-06 (TOTP guesses are
throttled and counted), DATA-01 (a refusal changes nothing else) and DATA-03 (no secret in a
table). Codes are computed for the app's frozen clock, never the real one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import jwt
import pyotp
import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Account, MfaChallenge, RecoveryCode, TotpFactor
from tests.helpers import (
    STRONG_PASSWORD,
    ApiActions,
    Tokens,
    assert_problem,
    count_rows,
    mailed_token,
    snapshot,
)
from tests.test_concurrency import REPEATS, race

ENROL = "/api/v1/accounts/me/mfa/totp"
CONFIRM = "/api/v1/accounts/me/mfa/totp/confirm"
RECOVERY_CODES = "/api/v1/accounts/me/mfa/recovery-codes"
LOGIN = "/api/v1/auth/login"
MFA = "/api/v1/auth/mfa"
EMAIL = "ada@example.com"
# What a refused second factor is allowed to move: the counters it is meant to move.
FAILURE_COUNTERS = ("accounts.failed_login_count", "mfa_challenges.failed_attempts")


@dataclass
class Enrolled:
    tokens: Tokens
    secret: str
    recovery_codes: list[str]


def code_at(secret: str, clock, steps: int = 0) -> str:
    """The code of the step ``steps`` away from the app's clock."""
    return pyotp.TOTP(secret).at(clock.now() + timedelta(seconds=30 * steps))


def claims(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


def enrol(client, tokens: Tokens, clock) -> Enrolled:
    started = client.post(ENROL, headers=tokens.headers)
    assert started.status_code == 201, started.get_json()
    secret = started.get_json()["secret"]
    confirmed = client.post(CONFIRM, json={"code": code_at(secret, clock)}, headers=tokens.headers)
    assert confirmed.status_code == 200, confirmed.get_json()
    return Enrolled(tokens, secret, confirmed.get_json()["recovery_codes"])


def login(client, password: str = STRONG_PASSWORD):
    return client.post(LOGIN, json={"email": EMAIL, "password": password})


def mfa_token(client) -> str:
    response = login(client)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["mfa_token"]


def complete(client, token: str, **second_factor):
    return client.post(MFA, json={"mfa_token": token, **second_factor})


@pytest.fixture
def enrolled(client, api, clock) -> Enrolled:
    """Ada with TOTP on; the clock is moved past the step of the confirming code."""
    state = enrol(client, api.signup_and_login(), clock)
    clock.advance(seconds=30)
    return state


def factor_row(app) -> tuple | None:
    with app.app_context():
        factor = db.session.scalar(select(TotpFactor))
        return None if factor is None else (factor.confirmed_at, factor.last_used_step)


def failed_login_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(Account.failed_login_count))


# --- Enrolment ---------------------------------------------------------------------------------


def test_enrolment_answers_a_secret_its_otpauth_uri_and_an_svg_qr_code(app, client, api):
    """MFA-04: the secret is shown with its URI and QR code; the factor is pending."""
    tokens = api.signup_and_login()

    response = client.post(ENROL, headers=tokens.headers)

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"secret", "otpauth_uri", "qr_code_svg"}
    assert len(body["secret"]) == 32 and pyotp.TOTP(body["secret"]).byte_secret()
    assert body["otpauth_uri"].startswith("otpauth://totp/Gatehouse:ada%40example.com?")
    assert f"secret={body['secret']}" in body["otpauth_uri"]
    assert "issuer=Gatehouse" in body["otpauth_uri"]
    assert body["qr_code_svg"].startswith("<svg") and body["qr_code_svg"].endswith("</svg>")
    assert response.headers["Cache-Control"].startswith("no-store")
    assert factor_row(app) == (None, None)


def test_pending_enrolment_does_not_guard_login(client, api):
    """MFA-04: inactive until confirmed: the password alone still logs in, amr ["pwd"]."""
    tokens = api.signup_and_login()
    client.post(ENROL, headers=tokens.headers)

    response = login(client)

    assert response.status_code == 200
    assert claims(response.get_json()["access_token"])["amr"] == ["pwd"]


def test_new_enrolment_replaces_a_pending_one(app, client, api, clock):
    """A second POST makes a new secret; the first one's codes no longer confirm."""
    tokens = api.signup_and_login()
    first = client.post(ENROL, headers=tokens.headers).get_json()["secret"]
    second = client.post(ENROL, headers=tokens.headers).get_json()["secret"]

    stale = client.post(CONFIRM, json={"code": code_at(first, clock)}, headers=tokens.headers)
    fresh = client.post(CONFIRM, json={"code": code_at(second, clock)}, headers=tokens.headers)

    assert first != second
    assert_problem(stale, 400, "mfa_code_invalid")
    assert fresh.status_code == 200
    assert count_rows(app, "totp_factors") == 1


def test_enrolling_again_while_a_factor_is_active_is_409(app, client, enrolled):
    """The active factor stays; turning it off comes first."""
    before = snapshot(app)

    response = client.post(ENROL, headers=enrolled.tokens.headers)

    assert_problem(response, 409, "mfa_already_enabled")
    assert snapshot(app) == before


def test_confirming_without_an_enrolment_is_409(app, client, api):
    tokens = api.signup_and_login()
    before = snapshot(app)

    response = client.post(CONFIRM, json={"code": "123456"}, headers=tokens.headers)

    assert_problem(response, 409, "mfa_enrolment_not_started")
    assert snapshot(app) == before


def test_confirming_with_a_wrong_code_is_refused_and_changes_nothing(app, client, api, clock):
    """MFA-04: a factor becomes active only with a right code."""
    tokens = api.signup_and_login()
    secret = client.post(ENROL, headers=tokens.headers).get_json()["secret"]
    wrong = code_at(secret, clock, steps=5)
    before = snapshot(app)

    response = client.post(CONFIRM, json={"code": wrong}, headers=tokens.headers)

    body = assert_problem(response, 400, "mfa_code_invalid")
    assert body["errors"] == [
        {"field": "code", "code": "mfa_code_invalid", "detail": "The code is not valid"}
    ]
    assert snapshot(app) == before


def test_confirmation_answers_ten_distinct_recovery_codes_stored_only_as_digests(
    app, client, api, clock
):
    """MFA-04, DATA-03: ten codes, shown once; the table holds digests, never a code."""
    state = enrol(client, api.signup_and_login(), clock)

    codes = state.recovery_codes
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(code) == 19 and code.count("-") == 3 for code in codes)
    assert count_rows(app, "recovery_codes") == 10
    stored = str(snapshot(app))
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored


def test_the_totp_secret_is_not_stored_in_clear(app, client, api, clock):
    """MFA-04, DATA-03: no table holds the base32 secret (it is encrypted at rest)."""
    state = enrol(client, api.signup_and_login(), clock)

    stored = str(snapshot(app))

    assert state.secret not in stored
    assert state.secret.lower() not in stored
    assert pyotp.TOTP(state.secret).byte_secret().hex() not in stored


def test_the_confirmed_factor_is_active_and_its_confirming_code_is_spent(app, enrolled):
    confirmed_at, last_used_step = factor_row(app)

    assert confirmed_at is not None and last_used_step is not None


# --- Login -------------------------------------------------------------------------------------


def test_login_with_mfa_on_answers_an_mfa_token_and_no_tokens(app, client, enrolled):
    """MFA-01: {mfa_required, mfa_token}, no session and no device token yet."""
    client.post("/api/v1/auth/logout", headers=enrolled.tokens.headers)
    sessions_before = count_rows(app, "sessions")

    response = login(client)

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"mfa_required", "mfa_token"}
    assert body["mfa_required"] is True and len(body["mfa_token"]) == 43
    assert "Gatehouse-Device-Token" not in response.headers
    assert response.headers["Cache-Control"].startswith("no-store")
    assert count_rows(app, "sessions") == sessions_before
    assert count_rows(app, "mfa_challenges") == 1


def test_full_flow_enrol_confirm_logout_login_and_code_gives_tokens_with_amr_pwd_otp(
    client, api, clock
):
    """MFA-01, MFA-06: the pair of a login, whose access token says how: ["pwd", "otp"]."""
    state = enrol(client, api.signup_and_login(), clock)
    assert client.post("/api/v1/auth/logout", headers=state.tokens.headers).status_code == 204
    clock.advance(seconds=30)
    token = mfa_token(client)

    response = complete(client, token, code=code_at(state.secret, clock))

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
    }
    assert response.headers["Gatehouse-Device-Token"]
    assert claims(body["access_token"])["amr"] == ["pwd", "otp"]
    assert api.me(body["access_token"]).status_code == 200
    assert api.refresh(body["refresh_token"]).status_code == 200


def test_a_replayed_code_is_refused(app, client, enrolled, clock):
    """MFA-03: a code accepted once is refused on another mfa_token in its window."""
    code = code_at(enrolled.secret, clock)
    assert complete(client, mfa_token(client), code=code).status_code == 200
    second_token = mfa_token(client)
    sessions = count_rows(app, "sessions")

    replayed = complete(client, second_token, code=code)

    assert_problem(replayed, 400, "mfa_code_reused")
    assert count_rows(app, "sessions") == sessions


def test_a_code_from_the_previous_step_is_accepted(client, enrolled, clock):
    """MFA-02: one step of drift behind the server's clock."""
    clock.advance(seconds=30)  # the previous step is no longer the confirming code's
    response = complete(client, mfa_token(client), code=code_at(enrolled.secret, clock, -1))

    assert response.status_code == 200


def test_a_code_from_the_next_step_is_accepted(client, enrolled, clock):
    """MFA-02: one step of drift ahead of the server's clock."""
    response = complete(client, mfa_token(client), code=code_at(enrolled.secret, clock, 1))

    assert response.status_code == 200


@pytest.mark.parametrize("steps", [-2, 2])
def test_a_code_two_steps_away_is_refused(client, enrolled, clock, steps):
    """MFA-02: ±2 steps are outside the window."""
    response = complete(client, mfa_token(client), code=code_at(enrolled.secret, clock, steps))

    assert_problem(response, 400, "mfa_code_invalid")


def test_a_code_older_than_the_last_accepted_one_is_refused(client, enrolled, clock):
    """MFA-03: the accepted step only moves forward, so an earlier step's code is spent too."""
    ahead = code_at(enrolled.secret, clock, 1)
    behind = code_at(enrolled.secret, clock, -1)
    assert complete(client, mfa_token(client), code=ahead).status_code == 200

    response = complete(client, mfa_token(client), code=behind)

    assert_problem(response, 400, "mfa_code_reused")


def test_a_recovery_code_completes_a_login_once(app, client, enrolled):
    """MFA-04: single use; the second use has its own code and changes nothing else."""
    code = enrolled.recovery_codes[3]
    first = complete(client, mfa_token(client), recovery_code=code)
    assert first.status_code == 200
    assert claims(first.get_json()["access_token"])["amr"] == ["pwd", "otp"]
    token = mfa_token(client)
    before = snapshot(app, ignore=FAILURE_COUNTERS)

    second = complete(client, token, recovery_code=code)

    assert_problem(second, 400, "recovery_code_used")
    assert snapshot(app, ignore=FAILURE_COUNTERS) == before


def test_a_recovery_code_may_be_typed_in_any_case_without_hyphens(client, enrolled):
    typed = enrolled.recovery_codes[0].replace("-", " ").upper()

    response = complete(client, mfa_token(client), recovery_code=typed)

    assert response.status_code == 200


def test_an_unknown_recovery_code_is_refused(client, enrolled):
    response = complete(client, mfa_token(client), recovery_code="aaaa-bbbb-cccc-dddd")

    assert_problem(response, 400, "recovery_code_invalid")


def test_a_code_and_a_recovery_code_together_or_neither_are_refused(app, client, enrolled):
    token = mfa_token(client)
    before = snapshot(app)

    both = complete(client, token, code="123456", recovery_code=enrolled.recovery_codes[0])
    neither = complete(client, token)

    assert assert_problem(both, 400, "validation_failed")["errors"][0]["field"] == "recovery_code"
    assert assert_problem(neither, 400, "validation_failed")["errors"][0]["field"] == "code"
    assert snapshot(app) == before


@pytest.mark.parametrize("malformed", ["12345", "1234567", "12345a", " 123456", "１２３４５６"])
def test_a_malformed_code_is_refused_before_anything_is_counted(app, client, enrolled, malformed):
    """Not a guess at all: its own code, and not even the failure counters move."""
    token = mfa_token(client)
    before = snapshot(app)

    response = complete(client, token, code=malformed)

    assert_problem(response, 400, "mfa_code_malformed")
    assert snapshot(app) == before


def test_a_malformed_recovery_code_is_refused_before_anything_is_counted(app, client, enrolled):
    token = mfa_token(client)
    before = snapshot(app)

    response = complete(client, token, recovery_code="not-a-code")

    assert_problem(response, 400, "recovery_code_malformed")
    assert snapshot(app) == before


# --- The mfa_token -----------------------------------------------------------------------------


def test_an_expired_mfa_token_is_refused(app, client, enrolled, clock):
    """MFA-01: it lives MFA_TOKEN_LIFETIME_SECONDS (300)."""
    token = mfa_token(client)
    clock.advance(seconds=300)
    before = snapshot(app)

    response = complete(client, token, code=code_at(enrolled.secret, clock))

    assert_problem(response, 401, "mfa_token_expired")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert snapshot(app) == before


def test_an_mfa_token_is_live_until_its_lifetime_ends(client, enrolled, clock):
    token = mfa_token(client)
    clock.advance(seconds=299)

    response = complete(client, token, code=code_at(enrolled.secret, clock))

    assert response.status_code == 200


def test_an_mfa_token_used_twice_is_refused(app, client, enrolled, clock):
    """MFA-01: single use, even with a fresh code."""
    token = mfa_token(client)
    assert complete(client, token, code=code_at(enrolled.secret, clock)).status_code == 200
    clock.advance(seconds=30)
    before = snapshot(app)

    response = complete(client, token, code=code_at(enrolled.secret, clock))

    assert_problem(response, 401, "mfa_token_used")
    assert snapshot(app) == before


def test_an_access_token_is_not_an_mfa_token(app, client, enrolled, clock):
    """JWT-05: kinds never cross."""
    before = snapshot(app)

    response = complete(client, enrolled.tokens.access_token, code=code_at(enrolled.secret, clock))

    assert_problem(response, 401, "mfa_token_invalid")
    assert snapshot(app) == before


def test_a_refresh_token_is_not_an_mfa_token(client, enrolled, clock):
    """JWT-05: a refresh token has the mfa_token's shape, and is still not one."""
    response = complete(client, enrolled.tokens.refresh_token, code=code_at(enrolled.secret, clock))

    assert_problem(response, 401, "mfa_token_invalid")


def test_an_mfa_token_is_not_a_bearer_token(client, enrolled):
    """MFA-01, JWT-05: refused as Bearer, like any token that is not an access token."""
    token = mfa_token(client)

    response = client.get("/api/v1/accounts/me", headers={"Authorization": f"Bearer {token}"})

    assert_problem(response, 401, "invalid_token")


def test_an_mfa_token_dies_after_five_wrong_codes(app, client, enrolled, clock):
    """MFA-03: after MFA_TOKEN_MAX_ATTEMPTS misses even the right code is refused."""
    token = mfa_token(client)
    wrong = code_at(enrolled.secret, clock, steps=10)
    for _ in range(5):
        assert_problem(complete(client, token, code=wrong), 400, "mfa_code_invalid")

    response = complete(client, token, code=code_at(enrolled.secret, clock))

    assert_problem(response, 401, "mfa_token_exhausted")
    with app.app_context():
        assert db.session.scalar(select(MfaChallenge.failed_attempts)) == 5


def test_an_mfa_token_issued_before_a_password_change_is_refused(app, client, enrolled, clock):
    token = mfa_token(client)
    clock.advance(seconds=1)
    changed = client.post(
        "/api/v1/accounts/me/password",
        json={"current_password": STRONG_PASSWORD, "new_password": "another fine passphrase"},
        headers=enrolled.tokens.headers,
    )
    assert changed.status_code == 204

    response = complete(client, token, code=code_at(enrolled.secret, clock))

    assert_problem(response, 401, "mfa_token_invalid")


# --- Lockout -----------------------------------------------------------------------------------


@pytest.fixture
def strict_app(make_app):
    return make_app(LOCKOUT_FAILURES=3)


def test_wrong_codes_count_toward_the_lockout(strict_app, clock_factory):
    """MFA-03, RL-06: LOCKOUT_FAILURES wrong codes lock the account like wrong passwords."""
    clock = clock_factory(strict_app)
    client = strict_app.test_client()
    state = enrol(client, ApiActions(client).signup_and_login(), clock)
    clock.advance(seconds=30)
    token = mfa_token(client)
    wrong = code_at(state.secret, clock, steps=10)
    for _ in range(3):
        assert_problem(complete(client, token, code=wrong), 400, "mfa_code_invalid")

    refused_code = complete(client, token, code=code_at(state.secret, clock))
    refused_login = login(client)

    assert_problem(refused_code, 400, "mfa_code_invalid")
    assert_problem(refused_login, 401, "invalid_credentials")
    with strict_app.app_context():
        assert db.session.scalar(select(Account.locked_until)) is not None


def test_a_right_password_does_not_reset_the_count_while_the_second_factor_is_missing(
    strict_app, clock_factory
):
    """A known password buys no extra guesses: only a completed login resets the count."""
    clock = clock_factory(strict_app)
    client = strict_app.test_client()
    state = enrol(client, ApiActions(client).signup_and_login(), clock)
    clock.advance(seconds=30)
    wrong = code_at(state.secret, clock, steps=10)
    first = mfa_token(client)
    complete(client, first, code=wrong)
    complete(client, first, code=wrong)
    assert failed_login_count(strict_app) == 2

    complete(client, mfa_token(client), code=wrong)

    assert_problem(login(client), 401, "invalid_credentials")  # locked


def test_a_completed_login_resets_the_failure_count(app, client, enrolled, clock):
    token = mfa_token(client)
    complete(client, token, code=code_at(enrolled.secret, clock, steps=10))
    assert failed_login_count(app) == 1

    assert complete(client, token, code=code_at(enrolled.secret, clock)).status_code == 200

    assert failed_login_count(app) == 0


# --- Refusals: each its own code, nothing else changed ------------------------------------------


def _wrong_code(client, state, clock):
    return complete(client, mfa_token(client), code=code_at(state.secret, clock, steps=10))


def _reused_code(client, state, clock):
    code = code_at(state.secret, clock)
    assert complete(client, mfa_token(client), code=code).status_code == 200
    return lambda: complete(client, mfa_token(client), code=code)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong code", 400, "mfa_code_invalid"),
        ("reused code", 400, "mfa_code_reused"),
        ("malformed code", 400, "mfa_code_malformed"),
        ("expired mfa_token", 401, "mfa_token_expired"),
        ("used mfa_token", 401, "mfa_token_used"),
        ("unknown mfa_token", 401, "mfa_token_invalid"),
        ("recovery code used twice", 400, "recovery_code_used"),
        ("unknown recovery code", 400, "recovery_code_invalid"),
    ],
)
def test_each_refusal_has_its_own_code_and_changes_nothing_but_the_failure_counters(
    app, client, enrolled, clock, case, status, code
):
    """DATA-01: a refused second step opens no session and spends nothing; only the counters a
    miss is meant to move (the account's lockout count, the mfa_token's attempts) move."""
    secret = enrolled.secret
    if case == "reused code":
        spent = code_at(secret, clock)
        assert complete(client, mfa_token(client), code=spent).status_code == 200
        attempt = {"code": spent}
    elif case == "recovery code used twice":
        spent = enrolled.recovery_codes[0]
        assert complete(client, mfa_token(client), recovery_code=spent).status_code == 200
        attempt = {"recovery_code": spent}
    elif case == "unknown recovery code":
        attempt = {"recovery_code": "aaaa-bbbb-cccc-dddd"}
    elif case == "malformed code":
        attempt = {"code": "12-456"}
    elif case == "wrong code":
        attempt = {"code": code_at(secret, clock, steps=10)}
    else:
        attempt = {"code": code_at(secret, clock)}
    token = mfa_token(client)
    if case == "expired mfa_token":
        clock.advance(seconds=301)
        attempt = {"code": code_at(secret, clock)}
    elif case == "used mfa_token":
        assert complete(client, token, **attempt).status_code == 200
        clock.advance(seconds=30)
        attempt = {"code": code_at(secret, clock)}
    elif case == "unknown mfa_token":
        token = "x" * 43
    before = snapshot(app, ignore=FAILURE_COUNTERS)

    response = complete(client, token, **attempt)

    assert_problem(response, status, code)
    assert snapshot(app, ignore=FAILURE_COUNTERS) == before


# --- Recovery codes ----------------------------------------------------------------------------


def test_regenerating_recovery_codes_invalidates_the_old_ones(app, client, enrolled):
    """MFA-04: ten new codes; an old one no longer completes a login, a new one does."""
    response = client.post(
        RECOVERY_CODES, json={"password": STRONG_PASSWORD}, headers=enrolled.tokens.headers
    )

    assert response.status_code == 200
    fresh = response.get_json()["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(enrolled.recovery_codes)
    assert count_rows(app, "recovery_codes") == 10
    old = complete(client, mfa_token(client), recovery_code=enrolled.recovery_codes[0])
    assert_problem(old, 400, "recovery_code_invalid")
    assert complete(client, mfa_token(client), recovery_code=fresh[0]).status_code == 200


def test_regenerating_recovery_codes_needs_the_password(app, client, enrolled):
    """MFA-04, RL-06: a wrong password is refused, counted, and the old codes stay."""
    before = snapshot(app, ignore=("accounts.failed_login_count",))

    response = client.post(
        RECOVERY_CODES, json={"password": "not the password"}, headers=enrolled.tokens.headers
    )

    assert_problem(response, 400, "current_password_incorrect")
    assert snapshot(app, ignore=("accounts.failed_login_count",)) == before
    assert failed_login_count(app) == 1


def test_regenerating_recovery_codes_without_mfa_is_409(client, api):
    tokens = api.signup_and_login()

    response = client.post(
        RECOVERY_CODES, json={"password": STRONG_PASSWORD}, headers=tokens.headers
    )

    assert_problem(response, 409, "mfa_not_enabled")


# --- Disabling ---------------------------------------------------------------------------------


def disable(client, tokens: Tokens, **body):
    return client.delete(ENROL, json=body, headers=tokens.headers)


def test_disabling_needs_the_password(app, client, enrolled, clock):
    """MFA-05: a right code with a wrong password turns nothing off (and is counted)."""
    before = snapshot(app, ignore=("accounts.failed_login_count",))

    response = disable(
        client, enrolled.tokens, password="not the password", code=code_at(enrolled.secret, clock)
    )

    assert_problem(response, 400, "current_password_incorrect")
    assert snapshot(app, ignore=("accounts.failed_login_count",)) == before


def test_disabling_needs_a_current_code(app, client, enrolled, clock):
    """MFA-05, RL-06: the right password with a wrong code is refused and counted."""
    before = snapshot(app, ignore=("accounts.failed_login_count",))

    response = disable(
        client,
        enrolled.tokens,
        password=STRONG_PASSWORD,
        code=code_at(enrolled.secret, clock, steps=10),
    )

    assert_problem(response, 400, "mfa_code_invalid")
    assert snapshot(app, ignore=("accounts.failed_login_count",)) == before
    assert failed_login_count(app) == 1


def test_disabling_needs_a_code_or_a_recovery_code_in_the_body(app, client, enrolled):
    response = disable(client, enrolled.tokens, password=STRONG_PASSWORD)

    body = assert_problem(response, 400, "validation_failed")
    assert body["errors"][0]["field"] == "code"
    assert factor_row(app) is not None


def test_disabling_with_a_code_turns_mfa_off_and_logins_answer_tokens_with_amr_pwd(
    app, client, enrolled, clock
):
    """MFA-05, MFA-06: afterwards the password alone logs in, and says so in amr."""
    mfa_token(client)  # a pending challenge goes too

    response = disable(
        client, enrolled.tokens, password=STRONG_PASSWORD, code=code_at(enrolled.secret, clock)
    )

    assert response.status_code == 204
    assert [count_rows(app, t) for t in ("totp_factors", "recovery_codes", "mfa_challenges")] == [
        0,
        0,
        0,
    ]
    logged_in = login(client)
    assert logged_in.status_code == 200
    assert claims(logged_in.get_json()["access_token"])["amr"] == ["pwd"]


def test_disabling_with_a_recovery_code_turns_mfa_off(app, client, enrolled):
    response = disable(
        client,
        enrolled.tokens,
        password=STRONG_PASSWORD,
        recovery_code=enrolled.recovery_codes[-1],
    )

    assert response.status_code == 204
    assert factor_row(app) is None


def test_disabling_without_mfa_is_409(client, api):
    tokens = api.signup_and_login()

    response = disable(client, tokens, password=STRONG_PASSWORD, code="123456")

    assert_problem(response, 409, "mfa_not_enabled")


def test_after_disabling_a_new_enrolment_starts_afresh(client, enrolled, clock):
    disable(client, enrolled.tokens, password=STRONG_PASSWORD, code=code_at(enrolled.secret, clock))

    again = enrol(client, enrolled.tokens, clock)

    assert again.secret != enrolled.secret
    assert not set(again.recovery_codes) & set(enrolled.recovery_codes)


# --- Elsewhere ---------------------------------------------------------------------------------


def test_deleting_the_account_removes_its_factor_codes_and_challenges(app, client, enrolled):
    """DATA-04."""
    mfa_token(client)

    response = client.delete(
        "/api/v1/accounts/me", json={"password": STRONG_PASSWORD}, headers=enrolled.tokens.headers
    )

    assert response.status_code == 204
    assert [count_rows(app, t) for t in ("totp_factors", "recovery_codes", "mfa_challenges")] == [
        0,
        0,
        0,
    ]


def test_the_recovery_code_rows_belong_to_the_account(app, enrolled):
    with app.app_context():
        owners = set(db.session.scalars(select(RecoveryCode.account_id)))
        account_id = db.session.scalar(select(Account.id))
    assert owners == {account_id}


def test_production_config_answers_the_same_problem_documents(make_app, clock_factory):
    """HTTP-01: with TESTING off the MFA refusals are the same problem documents."""
    app = make_app("production")
    clock = clock_factory(app)
    client = app.test_client()
    state = enrol(client, ApiActions(client).signup_and_login(), clock)
    clock.advance(seconds=30)
    token = mfa_token(client)

    answers = [
        (complete(client, token, code=code_at(state.secret, clock, 10)), 400, "mfa_code_invalid"),
        (complete(client, token, code="12345"), 400, "mfa_code_malformed"),
        (complete(client, "y" * 43, code="123456"), 401, "mfa_token_invalid"),
        (client.post(ENROL, headers=state.tokens.headers), 409, "mfa_already_enabled"),
    ]
    for response, status, code in answers:
        body = assert_problem(response, status, code)
        assert body["request_id"] == response.headers["X-Request-ID"]
    done = complete(client, token, code=code_at(state.secret, clock))
    assert done.status_code == 200
    assert claims(done.get_json()["access_token"])["amr"] == ["pwd", "otp"]
    assert_problem(complete(client, token, code="123456"), 401, "mfa_token_used")


# --- Races -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 8])
def test_simultaneous_logins_with_one_code_have_exactly_one_winner(app, client, enrolled, clock, n):
    """MFA-03: the accepted step is taken by compare-and-set; the losers are told it is reused
    (repeated 5 times on SQLite, 50 on PostgreSQL)."""
    for _ in range(REPEATS):
        clock.advance(seconds=30)
        tokens = [mfa_token(client) for _ in range(n)]
        code = code_at(enrolled.secret, clock)

        responses = race([app], n, lambda c, i, ts=tokens, tc=code: complete(c, ts[i], code=tc))

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 1, 400: n - 1}, statuses
        for response in responses:
            if response.status_code == 400:
                assert_problem(response, 400, "mfa_code_reused")


def test_simultaneous_logins_with_one_recovery_code_have_exactly_one_winner(app, client, enrolled):
    """MFA-04: a recovery code is spent by compare-and-set, once."""
    for code in enrolled.recovery_codes[: min(REPEATS, 10)]:
        tokens = [mfa_token(client) for _ in range(4)]

        responses = race(
            [app], 4, lambda c, i, ts=tokens, rc=code: complete(c, ts[i], recovery_code=rc)
        )

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 1, 400: 3}, statuses


def test_a_password_reset_neither_turns_totp_off_nor_skips_it(app, client, enrolled):
    """MFA-05: the reset link proves the mailbox, not the second factor: after a reset the
    factor is still on and the new password alone gets an mfa_token, not tokens."""
    before = factor_row(app)
    assert client.post("/api/v1/auth/password-reset", json={"email": EMAIL}).status_code == 202
    token = mailed_token(app, EMAIL, "reset_password")
    new_password = "a brand new passphrase for ada"
    reset = client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": new_password}
    )
    assert reset.status_code == 204

    response = login(client, new_password)

    assert factor_row(app) == before
    assert response.status_code == 200
    assert response.get_json()["mfa_required"] is True
    assert "access_token" not in response.get_json()
