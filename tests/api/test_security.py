"""Who is calling: one resolver, authenticators in order, and one decorator for every check.

The API has one credential today (a Bearer access token); the tests add a second kind (a
stand-in for the cookie session of a later issue) to show how the seam behaves with two, and
routes that need scopes, roles or a fresh login. SECURITY.md JWT-08, JWT-09, SES-09, D-6.
"""

from datetime import timedelta

import pytest
from flask import Blueprint, jsonify
from sqlalchemy import insert

from app import surfaces
from app.api import API_SURFACE
from app.api.bodies import documented
from app.api.security import BearerAccessToken, auth_required, authenticators, current_principal
from app.errors import InvalidToken, Problem
from app.extensions import db
from app.models import account_roles
from app.runtime import runtime
from app.services.principal import CredentialKind, Principal
from tests.helpers import assert_problem

FRESH = timedelta(minutes=10)


class CookieStandIn:
    """A second credential kind: ``Cookie: test-session=<access token>``, limited scopes."""

    kind = CredentialKind.ACCESS_TOKEN

    def extract(self, request):
        return request.cookies.get("test-session")

    def authenticate(self, credential):
        principal = BearerAccessToken().authenticate(credential)
        return Principal(
            kind=principal.kind,
            account=principal.account,
            session=principal.session,
            amr=principal.amr,
            auth_time=principal.auth_time,
            scopes=frozenset({"profile:read"}),
        )

    def challenge(self, problem: Problem):
        return 'Cookie realm="test"' if problem.status == 401 else None


def who_am_i():
    principal = current_principal()
    return jsonify(account=str(principal.account.id), scopes=sorted(principal.scopes or ["*"]))


ROUTES = {
    "/test/any": auth_required(),
    "/test/profile": auth_required(scopes=("profile:read",)),
    "/test/tokens": auth_required(scopes=("sessions:write",)),
    "/test/admin": auth_required(roles=("admin",)),
    "/test/fresh": auth_required(fresh_within=FRESH),
}


@pytest.fixture(params=["testing", "production"])
def app(request, make_app):
    """An app with test routes on a blueprint answering the API's way, and two authenticators."""
    app = make_app(request.param)
    blueprint = Blueprint("security_test", __name__)
    for path, decorator in ROUTES.items():
        blueprint.add_url_rule(path, path.strip("/").replace("/", "_"), decorator(who_am_i))
    app.register_blueprint(blueprint)
    surfaces.register(app, API_SURFACE, blueprint.name)
    authenticators_of(app).append(CookieStandIn())
    return app


def authenticators_of(app):
    with app.app_context():
        return authenticators()


@pytest.fixture
def tokens(api):
    return api.signup_and_login()


def test_bearer_token_alone_is_resolved_with_every_scope(client, tokens):
    response = client.get("/test/any", headers=tokens.headers)

    assert response.status_code == 200
    assert response.get_json()["scopes"] == ["*"]


def test_second_credential_kind_alone_is_resolved(client, tokens):
    client.set_cookie("test-session", tokens.access_token)

    response = client.get("/test/profile")

    assert response.status_code == 200
    assert response.get_json()["scopes"] == ["profile:read"]


def test_request_with_two_kinds_of_credential_is_refused(client, tokens):
    """Which one speaks for the caller would be a guess: neither does."""
    client.set_cookie("test-session", tokens.access_token)

    response = client.get("/test/any", headers=tokens.headers)

    assert_problem(response, 400, "multiple_credentials")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_request"'


def test_request_with_two_authorization_headers_is_refused_and_changes_nothing(client, api):
    """JWT-08: two Bearer tokens, even both valid, are one too many; the logout does not run."""
    first, second = api.signup_and_login(), api.login()
    headers = [
        ("Authorization", f"Bearer {first.access_token}"),
        ("Authorization", f"Bearer {second.access_token}"),
    ]

    response = client.post("/api/v1/auth/logout", headers=headers)

    assert_problem(response, 400, "multiple_credentials")
    assert api.me(first.access_token).status_code == 200
    assert api.me(second.access_token).status_code == 200


def test_failed_credential_gets_the_challenge_of_its_own_kind(client):
    """The API layer picks WWW-Authenticate for the credential that failed."""
    client.set_cookie("test-session", "not-a-token")

    cookie = client.get("/test/any")
    client.delete_cookie("test-session")
    bearer = client.get("/test/any", headers={"Authorization": "Bearer not-a-token"})

    assert_problem(cookie, 401, "invalid_token")
    assert cookie.headers["WWW-Authenticate"] == 'Cookie realm="test"'
    assert_problem(bearer, 401, "invalid_token")
    assert bearer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_no_credential_gets_the_first_authenticators_bare_challenge(client):
    """JWT-09."""
    response = client.get("/test/any")

    assert_problem(response, 401, "authentication_required")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_credential_without_a_needed_scope_gets_403_insufficient_scope(client, tokens):
    client.set_cookie("test-session", tokens.access_token)

    response = client.get("/test/tokens")

    problem = assert_problem(response, 403, "insufficient_scope")
    assert problem["required_scopes"] == ["sessions:write"]
    assert response.headers.get("WWW-Authenticate") is None  # the stand-in has no 403 challenge


def test_bearer_token_without_a_needed_scope_names_it_in_the_challenge(app, client, tokens):
    """RFC 6750 §3.1: insufficient_scope, with the scope that would do."""

    class ScopedBearer(BearerAccessToken):
        def authenticate(self, credential):
            principal = super().authenticate(credential)
            return Principal(
                kind=principal.kind,
                account=principal.account,
                session=principal.session,
                amr=principal.amr,
                auth_time=principal.auth_time,
                scopes=frozenset(),
            )

    authenticators_of(app)[0] = ScopedBearer()

    response = client.get("/test/tokens", headers=tokens.headers)

    assert_problem(response, 403, "insufficient_scope")
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="sessions:write"'
    )


def test_missing_role_gets_403_and_a_granted_role_counts_at_once(app, client, tokens):
    """D-6: roles are read live, so a grant bites on the next request, same token."""
    refused = client.get("/test/admin", headers=tokens.headers)
    with app.app_context():
        account_id = runtime().tokens.verify(tokens.access_token, now=runtime().clock.now())
        db.session.execute(
            insert(account_roles).values(account_id=account_id.account_id, role_name="admin")
        )
        db.session.commit()

    granted = client.get("/test/admin", headers=tokens.headers)

    assert_problem(refused, 403, "forbidden")
    assert "WWW-Authenticate" not in refused.headers
    assert granted.status_code == 200


def test_stale_login_gets_403_reauthentication_required(app, client, api, clock_factory):
    """SES-09: auth_time older than the window; a refresh does not renew it, a login does."""
    clock = clock_factory(app)
    tokens = api.signup_and_login()
    assert client.get("/test/fresh", headers=tokens.headers).status_code == 200

    clock.advance(minutes=11)
    refreshed = api.refresh(tokens.refresh_token).get_json()
    stale = client.get(
        "/test/fresh", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
    )
    fresh = client.get("/test/fresh", headers=api.login().headers)

    assert_problem(stale, 403, "reauthentication_required")
    assert fresh.status_code == 200


def test_auth_required_documents_the_errors_it_can_answer():
    documented_errors = documented(ROUTES["/test/fresh"](who_am_i))["errors"]

    assert {code: status for code, (status, _) in documented_errors.items()} == {
        "authentication_required": 401,
        InvalidToken.code: 401,
        "multiple_credentials": 400,
        # Names no scope, so a personal access token is refused there (fail closed).
        "interactive_login_required": 403,
        "reauthentication_required": 403,
    }
