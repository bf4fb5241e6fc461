"""GET /.well-known/jwks.json and verification by an independent party."""

import os
import stat

import jwt

ALLOWED_CLAIMS = {
    "iss", "aud", "sub", "sid", "jti", "iat", "exp", "nbf",
    "roles", "amr", "auth_time", "email_verified",
}  # fmt: skip


def test_jwks_publishes_only_the_public_signing_key(client, api):
    """JWT-11: public members only."""
    tokens = api.signup_and_login()

    response = client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    keys = response.get_json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert set(key) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert (key["kty"], key["crv"], key["use"], key["alg"]) == ("OKP", "Ed25519", "sig", "EdDSA")
    assert key["kid"] == jwt.get_unverified_header(tokens.access_token)["kid"]


def test_access_token_verifies_with_the_jwks_alone(client, app, api):
    """Any service verifies our tokens with a standard library and the JWKS (JWT-10)."""
    account = api.signup()
    tokens = api.login()
    jwks = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").get_json())
    kid = jwt.get_unverified_header(tokens.access_token)["kid"]

    claims = jwt.decode(
        tokens.access_token,
        jwks[kid].key,
        algorithms=["EdDSA"],
        audience=app.config["JWT_AUDIENCE"],
        issuer=app.config["JWT_ISSUER"],
    )

    assert claims["sub"] == account["id"]
    assert set(claims) <= ALLOWED_CLAIMS
    assert jwt.get_unverified_header(tokens.access_token)["typ"] == "at+jwt"


def test_es256_configuration_publishes_a_p256_key_whose_tokens_verify(make_app):
    app = make_app(JWT_ALGORITHM="ES256")
    client = app.test_client()
    client.post(
        "/api/v1/accounts",
        json={"email": "ada@example.com", "password": "correct horse battery staple"},
    )
    token = client.post(
        "/api/v1/auth/login",
        json={"email": "ada@example.com", "password": "correct horse battery staple"},
    ).get_json()["access_token"]
    document = client.get("/.well-known/jwks.json").get_json()

    (key,) = document["keys"]
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
    assert "d" not in key
    assert (
        client.get("/api/v1/accounts/me", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )
    jwt.decode(
        token,
        jwt.PyJWK.from_dict(key).key,
        algorithms=["ES256"],
        audience=app.config["JWT_AUDIENCE"],
        issuer=app.config["JWT_ISSUER"],
    )


def test_development_key_is_generated_once_with_mode_0600(make_app, tmp_path):
    """OPS-03: the development key file is private to its owner and reused."""
    key_file = tmp_path / "instance" / "jwt-signing-key.pem"

    first = make_app("development", JWT_GENERATE_KEY_FILE=str(key_file))
    second = make_app("development", JWT_GENERATE_KEY_FILE=str(key_file))

    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    first_kid = first.extensions["gatehouse"].tokens.keys.signing_key.kid
    assert first_kid == second.extensions["gatehouse"].tokens.keys.signing_key.kid


def test_jwks_is_cacheable_for_a_short_time(client):
    response = client.get("/.well-known/jwks.json")

    assert response.headers["Cache-Control"] == "public, max-age=300"
