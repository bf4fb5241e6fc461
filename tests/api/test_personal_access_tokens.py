"""Personal access tokens: /api/v1/accounts/me/tokens, and a PAT as a Bearer credential.

A PAT is shown once, stored as a digest (DATA-03), reaches only what its scopes open and never
an interactive-only operation, dies at once when revoked, expired, or when the password changes
or is reset (JWT-06, SES-07), and goes with its account (DATA-04). SECURITY.md JWT-06, JWT-08,
JWT-09, SES-07, SES-08, DATA-01, DATA-03, DATA-04, ADM-03.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import PersonalAccessToken
from app.services.scopes import SCOPES
from tests.helpers import (
    STRONG_PASSWORD,
    ApiActions,
    assert_problem,
    count_rows,
    mailed_token,
    snapshot,
)

TOKENS = "/api/v1/accounts/me/tokens"
ME = "/api/v1/accounts/me"
SECRET_SHAPE = re.compile(r"gh_pat_[A-Za-z0-9_-]{43}")
ALL_SCOPES = list(SCOPES)
INTERACTIVE = 'Bearer error="insufficient_scope", error_description="interactive login required"'


def create(client, tokens, *, scopes=("profile:read",), name="CI deploy", **extra):
    return client.post(
        TOKENS,
        json={"name": name, "scopes": list(scopes), **extra},
        headers=tokens.headers,
    )


def make_pat(client, tokens, **kwargs) -> dict:
    response = create(client, tokens, **kwargs)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def tampered(secret: str) -> str:
    """The secret with its last character changed (still well-formed)."""
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


def pat_rows(app) -> list[PersonalAccessToken]:
    with app.app_context():
        rows = db.session.scalars(select(PersonalAccessToken)).all()
        db.session.expunge_all()
        return list(rows)


@pytest.fixture
def tokens(api):
    return api.signup_and_login()


# --- Creation -----------------------------------------------------------------------------


def test_creation_returns_the_secret_once_with_its_location(client, tokens):
    response = create(client, tokens, scopes=["profile:read", "tokens:read"])

    assert response.status_code == 201
    body = response.get_json()
    assert SECRET_SHAPE.fullmatch(body["token"])
    assert body["name"] == "CI deploy"
    assert body["scopes"] == ["profile:read", "tokens:read"]
    assert body["last_used_at"] is None
    created = datetime.fromisoformat(body["created_at"])
    assert datetime.fromisoformat(body["expires_at"]) - created == timedelta(days=365)
    assert response.headers["Location"].endswith(f"{TOKENS}/{body['id']}")
    assert response.headers["Cache-Control"] == "no-store"


def test_each_token_is_a_new_random_secret(client, tokens):
    """SES-01-like: 256 CSPRNG bits each, never repeated."""
    secrets = {make_pat(client, tokens)["token"] for _ in range(5)}

    assert len(secrets) == 5


def test_only_the_digest_of_a_token_is_stored(app, client, tokens):
    """DATA-03: no table holds the secret; the row holds its SHA-256 digest."""
    secret = make_pat(client, tokens)["token"]

    state = json.dumps(snapshot(app))
    (row,) = pat_rows(app)

    assert secret not in state
    assert secret[len("gh_pat_") :] not in state
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()


def test_name_is_trimmed_and_scopes_kept_once_in_catalogue_order(client, tokens):
    body = make_pat(
        client, tokens, name="  nightly  ", scopes=["tokens:read", "profile:read", "tokens:read"]
    )

    assert body["name"] == "nightly"
    assert body["scopes"] == ["profile:read", "tokens:read"]


def test_expires_in_sets_the_expiry(client, tokens):
    body = make_pat(client, tokens, expires_in=3600)

    created, expires = (datetime.fromisoformat(body[k]) for k in ("created_at", "expires_at"))
    assert expires - created == timedelta(hours=1)


def test_unknown_scope_is_400_unknown_scope_and_creates_nothing(app, client, tokens):
    response = create(client, tokens, scopes=["profile:read", "admin:everything"])

    problem = assert_problem(response, 400, "unknown_scope")
    assert problem["errors"][0]["field"] == "scopes"
    assert count_rows(app, "personal_access_tokens") == 0


def test_empty_scopes_is_400_scopes_required(app, client, tokens):
    response = create(client, tokens, scopes=[])

    assert_problem(response, 400, "scopes_required")
    assert count_rows(app, "personal_access_tokens") == 0


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "evil\u202etxt.exe", "zero\u200bwidth"])
def test_bad_name_is_400_invalid_token_name(app, client, tokens, name):
    response = create(client, tokens, name=name)

    assert_problem(response, 400, "invalid_token_name")
    assert count_rows(app, "personal_access_tokens") == 0


def test_name_of_100_characters_is_accepted(client, tokens):
    assert make_pat(client, tokens, name="n" * 100)["name"] == "n" * 100


@pytest.mark.parametrize("expires_in", [0, 59, 365 * 24 * 3600 + 1, -5])
def test_expires_in_out_of_bounds_is_400_invalid_expires_in(app, client, tokens, expires_in):
    response = create(client, tokens, expires_in=expires_in)

    assert_problem(response, 400, "invalid_expires_in")
    assert count_rows(app, "personal_access_tokens") == 0


def test_expires_in_bounds_follow_the_setting(make_app):
    app = make_app(PAT_MAX_LIFETIME_SECONDS=3600)
    client = app.test_client()
    tokens = ApiActions(client).signup_and_login()

    too_long = create(client, tokens, expires_in=3601)
    default = make_pat(client, tokens)

    assert_problem(too_long, 400, "invalid_expires_in")
    created, expires = (datetime.fromisoformat(default[k]) for k in ("created_at", "expires_at"))
    assert expires - created == timedelta(hours=1)


def test_several_broken_fields_are_listed_in_one_validation_failed(client, tokens):
    response = create(client, tokens, name=" ", scopes=["nope"], expires_in=1)

    problem = assert_problem(response, 400, "validation_failed")
    assert sorted((e["field"], e["code"]) for e in problem["errors"]) == [
        ("expires_in", "invalid_expires_in"),
        ("name", "invalid_token_name"),
        ("scopes", "unknown_scope"),
    ]


@pytest.mark.parametrize(
    "extra",
    [{"account_id": str(uuid.uuid4())}, {"token": "gh_pat_" + "a" * 43}, {"revoked_at": None}],
)
def test_extra_fields_are_refused(app, client, tokens, extra):
    """ADM-03: a client cannot choose the owner, the secret or the state."""
    response = create(client, tokens, **extra)

    assert_problem(response, 400, "validation_failed")
    assert count_rows(app, "personal_access_tokens") == 0


def test_creation_needs_a_recent_login(app, client, api, clock_factory):
    """SES-09: a session kept alive by refreshes cannot mint a long-lived credential."""
    clock = clock_factory(app)
    tokens = api.signup_and_login()
    clock.advance(minutes=11)
    refreshed = api.refresh(tokens.refresh_token).get_json()
    stale = bearer(refreshed["access_token"])

    response = client.post(TOKENS, json={"name": "x", "scopes": ["profile:read"]}, headers=stale)

    assert_problem(response, 403, "reauthentication_required")
    assert count_rows(app, "personal_access_tokens") == 0


def test_an_account_holds_at_most_the_configured_number_of_live_tokens(make_app):
    app = make_app(PAT_MAX_PER_ACCOUNT=2)
    client = app.test_client()
    tokens = ApiActions(client).signup_and_login()
    first = make_pat(client, tokens)
    make_pat(client, tokens)

    refused = create(client, tokens)
    client.delete(f"{TOKENS}/{first['id']}", headers=tokens.headers)
    after_revoking = create(client, tokens)

    assert_problem(refused, 409, "token_limit_reached")
    assert after_revoking.status_code == 201


def test_creation_racing_the_end_of_its_session_creates_nothing(app, client, api):
    """JWT-06, SES-07: a request authenticated just before its session ended (a password
    change elsewhere, a logout) cannot leave a token behind that outlives the session."""
    from app.errors import InvalidToken
    from app.services import auth, personal_tokens

    tokens = api.signup_and_login()
    with app.test_request_context():
        principal = auth.authenticate_access_token(tokens.access_token)
        assert client.post("/api/v1/auth/logout", headers=tokens.headers).status_code == 204
        with pytest.raises(InvalidToken):
            personal_tokens.create_token(principal, name="late", scopes=["profile:read"])
    assert count_rows(app, "personal_access_tokens") == 0


def test_creations_over_the_address_limit_answer_429(make_app):
    """RL-05: PAT_CREATE_RATE_LIMIT_PER_IP, counted per client address."""
    app = make_app(
        RATELIMIT_ENABLED=True,
        REDIS_KEY_PREFIX=f"gatehouse-test:{uuid.uuid4().hex}:",
        PAT_CREATE_RATE_LIMIT_PER_IP="2/minute",
    )
    client = app.test_client()
    tokens = ApiActions(client).signup_and_login()

    answers = [create(client, tokens).status_code for _ in range(3)]

    assert answers == [201, 201, 429]
    assert count_rows(app, "personal_access_tokens") == 2


# --- Listing ------------------------------------------------------------------------------


def test_list_shows_live_tokens_newest_first_without_secrets(app, client, tokens, clock_factory):
    clock = clock_factory(app)
    older = make_pat(client, tokens, name="older")
    clock.advance(seconds=5)
    newer = make_pat(client, tokens, name="newer", scopes=["profile:read", "sessions:read"])

    response = client.get(TOKENS, headers=tokens.headers)

    assert response.status_code == 200
    listed = response.get_json()["tokens"]
    assert [t["id"] for t in listed] == [newer["id"], older["id"]]
    assert set(listed[0]) == {"id", "name", "scopes", "created_at", "last_used_at", "expires_at"}
    assert listed[0]["scopes"] == ["profile:read", "sessions:read"]
    text = response.get_data(as_text=True)
    assert older["token"] not in text and newer["token"] not in text


def test_list_shows_only_the_callers_tokens(client, api):
    ada = api.signup_and_login()
    make_pat(client, ada, name="ada's")
    bob = api.signup_and_login("bob@example.com")

    response = client.get(TOKENS, headers=bob.headers)

    assert response.get_json() == {"tokens": []}


def test_token_with_tokens_read_lists_tokens(client, tokens):
    pat = make_pat(client, tokens, scopes=["tokens:read"])

    response = client.get(TOKENS, headers=bearer(pat["token"]))

    assert response.status_code == 200
    assert [t["id"] for t in response.get_json()["tokens"]] == [pat["id"]]


# --- A PAT as a credential ----------------------------------------------------------------


def test_token_with_profile_read_reads_the_account(client, tokens):
    pat = make_pat(client, tokens, scopes=["profile:read"])

    response = client.get(ME, headers=bearer(pat["token"]))

    assert response.status_code == 200
    assert response.get_json()["email"] == "ada@example.com"


def test_token_with_profile_write_updates_the_profile(client, tokens):
    pat = make_pat(client, tokens, scopes=["profile:write"])

    response = client.patch(ME, json={"display_name": "Ada"}, headers=bearer(pat["token"]))

    assert response.status_code == 200
    assert response.get_json()["display_name"] == "Ada"


def test_token_without_the_scope_gets_403_insufficient_scope(client, tokens):
    """RFC 6750 §3.1: the challenge names the scope that would do."""
    pat = make_pat(client, tokens, scopes=["tokens:read"])

    response = client.get(ME, headers=bearer(pat["token"]))

    problem = assert_problem(response, 403, "insufficient_scope")
    assert problem["required_scopes"] == ["profile:read"]
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="profile:read"'
    )


def test_token_without_profile_write_cannot_change_the_profile(app, client, tokens):
    """DATA-01: the refused request changes nothing."""
    pat = make_pat(client, tokens, scopes=["profile:read"])
    before = snapshot(app)

    response = client.patch(ME, json={"display_name": "Mallory"}, headers=bearer(pat["token"]))

    assert_problem(response, 403, "insufficient_scope")
    assert snapshot(app) == before


INTERACTIVE_ONLY = [
    ("post", TOKENS, {"name": "another", "scopes": ["profile:read"]}),
    ("post", "/api/v1/accounts/me/password", {"current_password": STRONG_PASSWORD,
                                               "new_password": "a brand new passphrase"}),
    ("delete", ME, {"password": STRONG_PASSWORD}),
    ("post", "/api/v1/accounts/me/email", {"new_email": "eve@example.com",
                                            "password": STRONG_PASSWORD}),
    ("post", "/api/v1/auth/logout", None),
    ("post", "/api/v1/auth/verify-email/resend", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    INTERACTIVE_ONLY,
    ids=[f"{m} {p}" for m, p, _ in INTERACTIVE_ONLY],
)
def test_token_with_every_scope_cannot_do_an_interactive_only_operation(
    app, client, tokens, method, path, payload
):
    """A PAT never makes a PAT, changes the password or email, deletes the account, logs out
    or mails: 403 interactive_login_required, and nothing changes (DATA-01)."""
    pat = make_pat(client, tokens, scopes=ALL_SCOPES)
    before = snapshot(app)

    response = client.open(path, method=method.upper(), json=payload, headers=bearer(pat["token"]))

    assert_problem(response, 403, "interactive_login_required")
    assert response.headers["WWW-Authenticate"] == INTERACTIVE
    assert snapshot(app) == before


def test_token_cannot_revoke_a_token(app, client, tokens):
    pat = make_pat(client, tokens, scopes=ALL_SCOPES)

    response = client.delete(f"{TOKENS}/{pat['id']}", headers=bearer(pat["token"]))

    assert_problem(response, 403, "interactive_login_required")
    assert client.get(ME, headers=bearer(pat["token"])).status_code == 200


def test_tampered_token_is_401_invalid_token(client, tokens):
    """JWT-07-like: one character changed is another token, unknown."""
    secret = make_pat(client, tokens)["token"]

    response = client.get(ME, headers=bearer(tampered(secret)))

    assert_problem(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    "junk", ["gh_pat_", "gh_pat_short", "gh_pat_" + "a" * 44, "gh_pat_" + "a" * 2000]
)
def test_malformed_token_is_401_invalid_token(client, junk):
    """JWT-08: junk with the prefix is refused without a lookup."""
    response = client.get(ME, headers=bearer(junk))

    assert_problem(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_token_in_the_query_string_is_not_read(client, tokens):
    """JWT-08."""
    secret = make_pat(client, tokens)["token"]

    response = client.get(f"{ME}?access_token={secret}")

    assert_problem(response, 401, "authentication_required")


def test_token_and_another_credential_together_are_refused(app, client, tokens):
    """JWT-08: two Authorization headers, a PAT and an access token: neither speaks."""
    secret = make_pat(client, tokens)["token"]
    headers = [("Authorization", f"Bearer {secret}"), *tokens.headers.items()]

    response = client.get(ME, headers=headers)

    assert_problem(response, 400, "multiple_credentials")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_request"'
    assert pat_rows(app)[0].last_used_at is None


def test_two_tokens_together_are_refused(client, tokens):
    first, second = make_pat(client, tokens)["token"], make_pat(client, tokens)["token"]

    response = client.get(ME, headers=[("Authorization", f"Bearer {t}") for t in (first, second)])

    assert_problem(response, 400, "multiple_credentials")


def test_expired_token_is_401_invalid_token(app, client, api, tokens, clock_factory):
    clock = clock_factory(app)
    secret = make_pat(client, tokens, expires_in=3600)["token"]
    assert client.get(ME, headers=bearer(secret)).status_code == 200

    clock.advance(seconds=3600)
    response = client.get(ME, headers=bearer(secret))

    assert_problem(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert client.get(TOKENS, headers=api.login().headers).get_json() == {"tokens": []}


def test_use_is_recorded_and_not_rewritten_within_a_minute(app, client, tokens, clock_factory):
    clock = clock_factory(app)
    secret = make_pat(client, tokens)["token"]
    first_use = clock.now()

    client.get(ME, headers=bearer(secret))
    clock.advance(seconds=59)
    client.get(ME, headers=bearer(secret))
    within_a_minute = pat_rows(app)[0].last_used_at
    clock.advance(seconds=1)
    client.get(ME, headers=bearer(secret))
    after_a_minute = pat_rows(app)[0].last_used_at

    assert within_a_minute == first_use
    assert after_a_minute == first_use + timedelta(seconds=60)
    listed = client.get(TOKENS, headers=tokens.headers).get_json()["tokens"][0]
    assert datetime.fromisoformat(listed["last_used_at"]) == after_a_minute


def test_a_refused_request_does_not_record_use(app, client, tokens):
    """DATA-01: a 403 leaves the database as it was."""
    secret = make_pat(client, tokens, scopes=["tokens:read"])["token"]

    client.get(ME, headers=bearer(secret))

    assert pat_rows(app)[0].last_used_at is None


def test_auth_time_of_a_token_is_its_creation_and_amr_is_empty(app, client, tokens):
    """Documented: a PAT is no proof of a login; the principal says when it was made."""
    from app.services import personal_tokens

    secret = make_pat(client, tokens)["token"]
    with app.test_request_context():
        principal = personal_tokens.authenticate(secret)
        row = db.session.get(PersonalAccessToken, principal.claims["pat_id"])
        assert principal.amr == ()
        assert principal.session is None
        assert principal.auth_time == row.created_at
        assert principal.scopes == frozenset({"profile:read"})


# --- Revocation ---------------------------------------------------------------------------


def test_revoked_token_is_401_at_once(app, client, tokens):
    """JWT-06: revocation needs no cache to expire."""
    pat = make_pat(client, tokens)
    assert client.get(ME, headers=bearer(pat["token"])).status_code == 200

    revoked = client.delete(f"{TOKENS}/{pat['id']}", headers=tokens.headers)
    response = client.get(ME, headers=bearer(pat["token"]))

    assert revoked.status_code == 204
    assert_problem(response, 401, "invalid_token")
    assert pat_rows(app)[0].revoked_at is not None
    assert client.get(TOKENS, headers=tokens.headers).get_json() == {"tokens": []}


def test_revoking_a_token_twice_is_404(client, tokens):
    pat = make_pat(client, tokens)
    client.delete(f"{TOKENS}/{pat['id']}", headers=tokens.headers)

    response = client.delete(f"{TOKENS}/{pat['id']}", headers=tokens.headers)

    assert_problem(response, 404, "token_not_found")


def test_revoking_an_unknown_id_is_404(client, tokens):
    response = client.delete(f"{TOKENS}/{uuid.uuid4()}", headers=tokens.headers)

    assert_problem(response, 404, "token_not_found")


def test_revoking_another_accounts_token_is_404_and_it_keeps_working(app, client, api):
    """SES-08-like: another account's id answers as an unknown one, so ids cannot be probed."""
    ada = api.signup_and_login()
    adas = make_pat(client, ada)
    bob = api.signup_and_login("bob@example.com")

    response = client.delete(f"{TOKENS}/{adas['id']}", headers=bob.headers)

    problem = assert_problem(response, 404, "token_not_found")
    unknown = client.delete(f"{TOKENS}/{uuid.uuid4()}", headers=bob.headers).get_json()
    assert (problem["title"], problem["detail"]) == (unknown["title"], unknown["detail"])
    assert client.get(ME, headers=bearer(adas["token"])).status_code == 200
    assert pat_rows(app)[0].revoked_at is None


def test_password_change_revokes_every_token(app, client, tokens):
    """SES-07, JWT-06: a password change ends what the old password made."""
    secrets = [make_pat(client, tokens)["token"] for _ in range(2)]

    changed = client.post(
        "/api/v1/accounts/me/password",
        json={"current_password": STRONG_PASSWORD, "new_password": "a brand new passphrase"},
        headers=tokens.headers,
    )

    assert changed.status_code == 204
    for secret in secrets:
        assert_problem(client.get(ME, headers=bearer(secret)), 401, "invalid_token")
    assert all(row.revoked_at is not None for row in pat_rows(app))


def test_password_reset_revokes_every_token(app, client, tokens):
    """SES-07, JWT-06."""
    secret = make_pat(client, tokens)["token"]
    client.post("/api/v1/auth/password-reset", json={"email": "ada@example.com"})
    reset_token = mailed_token(app, "ada@example.com", "reset_password")

    reset = client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": reset_token, "new_password": "a brand new passphrase"},
    )

    assert reset.status_code == 204
    assert_problem(client.get(ME, headers=bearer(secret)), 401, "invalid_token")
    assert pat_rows(app)[0].revoked_at is not None


def test_deleting_the_account_deletes_its_tokens(app, client, api):
    """DATA-04: another account's tokens stay."""
    ada = api.signup_and_login()
    make_pat(client, ada)
    bob = api.signup_and_login("bob@example.com")
    make_pat(client, bob)

    deleted = client.delete(ME, json={"password": STRONG_PASSWORD}, headers=ada.headers)

    assert deleted.status_code == 204
    assert count_rows(app, "personal_access_tokens") == 1


def test_token_of_a_deleted_account_is_401(client, tokens):
    """JWT-06."""
    secret = make_pat(client, tokens)["token"]
    client.delete(ME, json={"password": STRONG_PASSWORD}, headers=tokens.headers)

    response = client.get(ME, headers=bearer(secret))

    assert_problem(response, 401, "invalid_token")


# --- Production configuration and the document --------------------------------------------


def test_production_answers_the_same_problem_documents(make_app):
    """JWT-09: with DEBUG and TESTING off, every PAT failure is still its problem document."""
    app = make_app("production")
    client = app.test_client()
    api = ApiActions(client)
    ada = api.signup_and_login()
    pat = make_pat(client, ada, scopes=["tokens:read"])
    bob = api.signup_and_login("bob@example.com")

    assert client.get(TOKENS, headers=bearer(pat["token"])).status_code == 200
    assert_problem(client.get(ME, headers=bearer(pat["token"])), 403, "insufficient_scope")
    refused = client.post("/api/v1/auth/logout", headers=bearer(pat["token"]))
    assert_problem(refused, 403, "interactive_login_required")
    assert_problem(create(client, ada, scopes=["root"]), 400, "unknown_scope")
    assert_problem(create(client, ada, scopes=[]), 400, "scopes_required")
    assert_problem(create(client, ada, name=""), 400, "invalid_token_name")
    assert_problem(create(client, ada, expires_in=1), 400, "invalid_expires_in")
    other = client.delete(f"{TOKENS}/{pat['id']}", headers=bob.headers)
    assert_problem(other, 404, "token_not_found")
    assert_problem(client.get(ME, headers=bearer(tampered(pat["token"]))), 401, "invalid_token")


def test_document_lists_the_scopes_and_the_operations(client):
    """Swagger shows the closed scope list and each token operation."""
    spec = client.get("/api/v1/swagger.json").get_json()

    request = spec["definitions"]["PersonalAccessTokenCreateRequest"]
    assert request["properties"]["scopes"]["items"]["enum"] == ALL_SCOPES
    assert set(spec["paths"][TOKENS.removeprefix("/api/v1")]) >= {"get", "post"}
    assert "delete" in spec["paths"]["/accounts/me/tokens/{token_id}"]


def bearer_operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "security" in operation:
                yield method, path, operation


def test_every_operation_no_scope_opens_refuses_a_token_with_every_scope(app, client, tokens):
    """Fail closed: MFA and whatever comes next are interactive-only unless they name a scope;
    each says so in the document, and a PAT holding every scope is refused there."""
    secret = make_pat(client, tokens, scopes=ALL_SCOPES)["token"]
    spec = client.get("/api/v1/swagger.json").get_json()
    interactive_only = [
        (method, path)
        for method, path, operation in bearer_operations(spec)
        if "insufficient_scope" not in operation["responses"].get("403", {}).get("description", "")
    ]
    assert len(interactive_only) >= 8
    before = snapshot(app)

    for method, path in interactive_only:
        concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        response = client.open(
            f"/api/v1{concrete}", method=method.upper(), json={}, headers=bearer(secret)
        )
        assert_problem(response, 403, "interactive_login_required")
        assert (
            "interactive_login_required"
            in spec["paths"][path][method]["responses"]["403"]["description"]
        ), (method, path)
    assert snapshot(app) == before


def test_every_scope_opens_an_operation(client):
    """The closed list and the routes agree: no scope in the list is dead."""
    from app.api import api

    used = set()
    for namespace in api.namespaces:
        for resource in namespace.resources:
            for method in resource.resource.methods or ():
                handler = getattr(resource.resource, method.lower())
                used |= set(getattr(handler, "required_scopes", ()))

    assert used == set(SCOPES)
