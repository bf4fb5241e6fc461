"""The whole API surface: anonymous access and secrets in logs."""

import logging

import pytest

from tests.helpers import STRONG_PASSWORD, assert_problem

PUBLIC = {("post", "/accounts"), ("post", "/auth/login"), ("post", "/auth/refresh")}


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
        response = client.open(f"/api/v1{path}", method=method.upper(), json={})
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


@pytest.mark.parametrize("config_name", ["testing", "production"])
def test_logs_of_a_full_cycle_hold_no_secret(make_app, caplog, config_name):
    """OPS-01: no password, token or hash in any log line."""
    app = make_app(config_name)
    client = app.test_client()
    new_password = "another long passphrase"
    secrets = [STRONG_PASSWORD, new_password]

    with caplog.at_level(logging.DEBUG):
        client.post(
            "/api/v1/accounts", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
        )
        client.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": "wrong pw 1"}
        )
        client.post(
            "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong pw 2"}
        )
        tokens = client.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
        ).get_json()
        rotated = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        ).get_json()
        client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        headers = {"Authorization": f"Bearer {rotated['access_token']}"}
        client.get("/api/v1/accounts/me", headers=headers)
        client.post(
            "/api/v1/accounts/me/password",
            json={"current_password": STRONG_PASSWORD, "new_password": new_password},
            headers=headers,
        )
        client.post("/api/v1/auth/logout", headers=headers)
        secrets += ["wrong pw 1", "wrong pw 2"]
        secrets += [tokens["access_token"], tokens["refresh_token"], rotated["refresh_token"]]

    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "login succeeded" in text  # the cycle really was logged
    for secret in secrets:
        assert secret not in text
    assert "$argon2" not in text


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
