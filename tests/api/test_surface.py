"""The whole API surface: anonymous access and secrets in logs."""

import re
import uuid

from tests.helpers import assert_problem

PUBLIC = {
    ("post", "/accounts"),
    ("post", "/auth/login"),
    ("post", "/auth/refresh"),
    # The login's second step: the mfa_token is its credential (MFA-01).
    ("post", "/auth/mfa"),
    # Cookie-session mode's login and its second step (the cookie is their result).
    ("post", "/auth/session"),
    ("post", "/auth/session/mfa"),
    # The mailed token is the credential of these (EM-02).
    ("post", "/auth/verify-email"),
    ("post", "/auth/password-reset"),
    ("post", "/auth/password-reset/confirm"),
    ("post", "/accounts/me/email/confirm"),
}


def test_every_route_outside_the_public_list_requires_a_token(client):
    """ADM-01, JWT-09: every protected operation in the OpenAPI document answers 401 without a
    token, with the bare `WWW-Authenticate: Bearer` challenge."""
    spec = client.get("/api/v1/swagger.json").get_json()
    operations = [
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) >= 8

    for method, path in operations:
        if (method, path) in PUBLIC:
            continue
        # A path parameter (an id) gets a well-formed value: the route, not a 404, answers.
        concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        response = client.open(f"/api/v1{concrete}", method=method.upper(), json={})
        assert_problem(response, 401, "authentication_required")
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_public_list_is_what_the_document_marks_as_open(client):
    spec = client.get("/api/v1/swagger.json").get_json()
    open_operations = {
        (method, path)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "responses" in operation and "security" not in operation
    }

    assert open_operations == PUBLIC


def test_every_401_names_the_bearer_scheme(client, api):
    """RFC 9110 §15.5.2: a 401 carries WWW-Authenticate, whichever endpoint sends it."""
    tokens = api.signup_and_login()
    api.refresh(tokens.refresh_token)
    answers = [
        client.post("/api/v1/auth/login", json={"email": "x@example.com", "password": "wrong pw"}),
        client.post("/api/v1/auth/refresh", json={"refresh_token": "unknown" * 8}),
        client.post("/api/v1/auth/refresh", json={"refresh_token": tokens.refresh_token}),
        client.post("/api/v1/auth/refresh", json={"refresh_token": tokens.refresh_token}),
        client.get("/api/v1/accounts/me"),
        client.get("/api/v1/accounts/me", headers={"Authorization": "Bearer junk"}),
    ]

    assert [r.status_code for r in answers] == [401] * len(answers)
    assert all(r.headers["WWW-Authenticate"].startswith("Bearer") for r in answers)
