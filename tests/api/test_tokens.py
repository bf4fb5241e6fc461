"""The access-token attack suite: every forged, altered or misused token gets 401."""

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.helpers import assert_problem


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode_segment(value: dict) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def split(token: str) -> tuple[dict, dict, str]:
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


def hmac_token(header: dict, payload: dict, secret: bytes, alg: str = "HS256") -> str:
    signing_input = f"{encode_segment(header)}.{encode_segment(payload)}".encode()
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return signing_input.decode() + "." + b64(hmac.new(secret, signing_input, digest).digest())


@pytest.fixture
def legit(api):
    """A real access token and the pieces to forge variants of it."""
    tokens = api.signup_and_login()
    header, claims, _ = split(tokens.access_token)
    return tokens.access_token, header, claims


@pytest.fixture
def signing_key(app):
    return app.extensions["gatehouse"].tokens.keys.signing_key


def sign_with_our_key(signing_key, claims: dict, **header) -> str:
    """Sign with our real private key, with any header at all (PyJWT refuses some)."""
    full_header = {"alg": "EdDSA", "kid": signing_key.kid, "typ": "at+jwt", **header}
    full_header = {k: v for k, v in full_header.items() if v is not OMIT}
    signing_input = f"{encode_segment(full_header)}.{encode_segment(claims)}"
    signature = signing_key.private_key.sign(signing_input.encode())
    return f"{signing_input}.{b64(signature)}"


OMIT = object()


def assert_invalid_token(response) -> None:
    assert_problem(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_legitimate_token_is_accepted(api, legit):
    assert api.me(legit[0]).status_code == 200


# --- JWT-01: only our asymmetric algorithm verifies -----------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_unsigned_token_with_alg_none_is_refused(api, legit, alg):
    """JWT-01."""
    _, header, claims = legit
    token = f"{encode_segment({**header, 'alg': alg})}.{encode_segment(claims)}."

    assert_invalid_token(api.me(token))


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("form", ["pem", "der", "raw", "jwk"])
def test_hmac_token_keyed_with_our_public_key_is_refused(api, legit, signing_key, alg, form):
    """JWT-01: algorithm confusion with every encoding of the public key."""
    _, header, claims = legit
    public = signing_key.public_key
    secret = {
        "pem": lambda: public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": lambda: public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "raw": lambda: public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ),
        "jwk": lambda: json.dumps(signing_key.public_jwk()).encode(),
    }[form]()
    token = hmac_token({**header, "alg": alg}, claims, secret, alg)

    assert_invalid_token(api.me(token))


def test_token_signed_by_another_ed25519_key_with_our_kid_is_refused(api, legit, signing_key):
    """JWT-01: an attacker's key."""
    _, header, claims = legit
    attacker = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode(
        claims, attacker, algorithm="EdDSA", headers={"kid": header["kid"], "typ": "at+jwt"}
    )

    assert_invalid_token(api.me(token))


def test_es256_token_from_an_attacker_key_is_refused(api, legit):
    """JWT-01: other algorithms."""
    _, header, claims = legit
    attacker = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        claims, attacker, algorithm="ES256", headers={"kid": header["kid"], "typ": "at+jwt"}
    )

    assert_invalid_token(api.me(token))


def test_token_with_edited_payload_is_refused(api, legit):
    """JWT-01: payload changed, signature kept."""
    token, header, claims = legit
    signature = token.rsplit(".", 1)[1]
    forged = (
        f"{encode_segment(header)}.{encode_segment({**claims, 'roles': ['admin']})}.{signature}"
    )

    assert_invalid_token(api.me(forged))


def test_token_with_flipped_signature_bits_is_refused(api, legit):
    """JWT-01."""
    token = legit[0]
    head, signature = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01

    assert_invalid_token(api.me(f"{head}.{b64(bytes(raw))}"))


# --- JWT-02: keys only from our set ---------------------------------------------------------


@pytest.mark.parametrize("header_name", ["jku", "x5u"])
def test_key_url_headers_are_ignored(api, legit, header_name):
    """JWT-02: a token signed by an attacker naming their key URL is refused."""
    _, _header, claims = legit
    attacker = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode(
        claims,
        attacker,
        algorithm="EdDSA",
        headers={"kid": "attacker", "typ": "at+jwt", header_name: "http://127.0.0.1:9/jwks.json"},
    )

    assert_invalid_token(api.me(token))


def test_embedded_jwk_header_is_ignored(api, legit):
    """JWT-02."""
    _, header, claims = legit
    attacker = ed25519.Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key()))
    token = jwt.encode(
        claims,
        attacker,
        algorithm="EdDSA",
        headers={"kid": header["kid"], "typ": "at+jwt", "jwk": jwk},
    )

    assert_invalid_token(api.me(token))


@pytest.mark.parametrize(
    "kid",
    ["../../../../etc/passwd", "' OR 1=1 --", "|sleep 10", "unknown", "", 7, None, ["x"]],
    ids=["traversal", "sql", "shell", "unknown", "empty", "int", "null", "list"],
)
def test_hostile_or_unknown_kid_is_refused_quickly(api, legit, signing_key, kid):
    """JWT-02: our own signature, but a kid not in our set."""
    _, _, claims = legit
    token = sign_with_our_key(signing_key, claims, kid=kid)

    started = time.monotonic()
    response = api.me(token)

    assert_invalid_token(response)
    assert time.monotonic() - started < 1


def test_missing_kid_is_refused(api, legit, signing_key):
    _, _, claims = legit
    token = sign_with_our_key(signing_key, claims, kid=OMIT)

    assert_invalid_token(api.me(token))


def test_unknown_crit_header_is_refused(api, legit, signing_key):
    """JWT-02."""
    _, _, claims = legit
    token = sign_with_our_key(signing_key, claims, crit=["exp-extension"], **{"exp-extension": 1})

    assert_invalid_token(api.me(token))


# --- JWT-03: times and required claims ------------------------------------------------------


def test_token_past_its_lifetime_and_leeway_by_the_apps_clock_is_refused(api, clock):
    """JWT-03: times are judged by the service's (injected) clock."""
    tokens = api.signup_and_login()
    clock.advance(seconds=15 * 60 + 60)

    assert_invalid_token(api.me(tokens.access_token))


def test_token_past_its_lifetime_but_within_the_leeway_is_accepted(api, clock):
    """JWT-03: leeway <= 60 s."""
    tokens = api.signup_and_login()
    clock.advance(seconds=15 * 60 + 59)

    assert api.me(tokens.access_token).status_code == 200


@pytest.mark.parametrize(
    "value", ["9999999999", 9999999999.5, True, None], ids=["str", "float", "bool", "null"]
)
def test_token_with_a_non_integer_expiry_is_refused(api, legit, signing_key, value):
    """JWT-03: exp must be a NumericDate; PyJWT alone takes a string."""
    _, _, claims = legit

    assert_invalid_token(api.me(sign_with_our_key(signing_key, {**claims, "exp": value})))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_token_from_the_future_beyond_the_leeway_is_refused(api, legit, signing_key, claim):
    """JWT-03."""
    _, _, claims = legit
    future = int(time.time()) + 120
    token = sign_with_our_key(signing_key, {**claims, claim: future, "exp": future + 900})

    assert_invalid_token(api.me(token))


def test_token_from_an_instance_30_seconds_ahead_is_accepted(api, legit, signing_key):
    """REL-09."""
    _, _, claims = legit
    ahead = int(time.time()) + 30
    token = sign_with_our_key(
        signing_key, {**claims, "iat": ahead, "nbf": ahead, "exp": ahead + 900}
    )

    assert api.me(token).status_code == 200


@pytest.mark.parametrize("claim", ["exp", "sub", "sid", "jti", "iss", "aud", "iat"])
def test_token_missing_a_required_claim_is_refused(api, legit, signing_key, claim):
    """JWT-03."""
    _, _, claims = legit
    token = sign_with_our_key(signing_key, {k: v for k, v in claims.items() if k != claim})

    assert_invalid_token(api.me(token))


@pytest.mark.parametrize(
    ("claim", "value"), [("sub", "1"), ("sid", "abc"), ("sub", 12), ("jti", 5)]
)
def test_token_with_malformed_identifiers_is_refused(api, legit, signing_key, claim, value):
    _, _, claims = legit
    token = sign_with_our_key(signing_key, {**claims, claim: value})

    assert_invalid_token(api.me(token))


def test_well_signed_token_for_an_unknown_session_is_refused(api, legit, signing_key):
    """JWT-06: a deleted account or an ended session has no row; the signature is not enough."""
    _, _, claims = legit
    token = sign_with_our_key(signing_key, {**claims, "sid": str(uuid.uuid4())})

    assert_invalid_token(api.me(token))


def test_well_signed_token_for_another_account_of_the_session_is_refused(api, legit, signing_key):
    _, _, claims = legit
    token = sign_with_our_key(signing_key, {**claims, "sub": str(uuid.uuid4())})

    assert_invalid_token(api.me(token))


# --- JWT-04: issuer and audience -------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("iss", "https://evil.example"),
        ("iss", "http://127.0.0.1:5000/"),
        ("iss", "http://127.0.0.1:500"),
        ("iss", "http://127.0.0.1:5000.evil"),
        ("aud", "someone-else"),
        ("aud", ["gatehouse", "someone-else"]),
        ("aud", ["gatehouse"]),
    ],
    ids=[
        "other-iss",
        "trailing-slash",
        "iss-prefix",
        "iss-extended",
        "other-aud",
        "aud-list",
        "aud-list-of-ours",
    ],
)
def test_token_with_wrong_issuer_or_audience_is_refused(api, legit, signing_key, claim, value):
    """JWT-04: exact issuer, our audience only."""
    _, _, claims = legit
    token = sign_with_our_key(signing_key, {**claims, claim: value})

    assert_invalid_token(api.me(token))


def test_token_from_another_issuer_with_the_same_key_is_refused(make_app, app, api):
    """JWT-04: same key, other issuer."""
    api.signup()
    other = make_app(JWT_ISSUER="https://other.example")
    other.extensions["gatehouse"].tokens.keys = app.extensions["gatehouse"].tokens.keys
    with other.test_client() as other_client:
        token = other_client.post(
            "/api/v1/auth/login",
            json={"email": "ada@example.com", "password": "correct horse battery staple"},
        ).get_json()["access_token"]

    assert_invalid_token(api.me(token))


# --- JWT-05: kinds never cross ---------------------------------------------------------------


@pytest.mark.parametrize("typ", [OMIT, "JWT", "refresh+jwt", "AT+JWT"])
def test_token_without_the_access_token_type_is_refused(api, legit, signing_key, typ):
    """JWT-05: our other JWTs will carry their own typ; none of them is an access token."""
    _, _, claims = legit
    token = sign_with_our_key(signing_key, claims, typ=typ)

    assert_invalid_token(api.me(token))


def test_our_own_signature_helper_makes_accepted_tokens(api, legit, signing_key):
    """Guards the suite: the forgeries above fail for their flaw, not for the helper."""
    _, _, claims = legit

    assert api.me(sign_with_our_key(signing_key, claims)).status_code == 200


def test_refresh_token_used_as_bearer_is_refused(api):
    """JWT-05."""
    tokens = api.signup_and_login()

    assert_invalid_token(api.me(tokens.refresh_token))


def test_access_token_used_as_refresh_token_is_refused(api):
    """JWT-05."""
    tokens = api.signup_and_login()

    assert_problem(api.refresh(tokens.access_token), 401, "invalid_refresh_token")


# --- JWT-08: only the Authorization header, and junk --------------------------------------


def test_token_in_query_string_is_ignored(client, api):
    """JWT-08."""
    tokens = api.signup_and_login()

    response = client.get(f"/api/v1/accounts/me?access_token={tokens.access_token}")

    assert_problem(response, 401, "authentication_required")


@pytest.mark.parametrize(
    "authorization",
    [
        "a.b",
        "Bearer",
        "Bearer ",
        "Bearer a.b",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "Bearer a b",
        "Bearer " + "a" * 100_000,
    ],
    ids=[
        "no-scheme",
        "bare-bearer",
        "bearer-space",
        "two-parts",
        "basic",
        "token",
        "spaces",
        "100KB",
    ],
)
def test_junk_authorization_header_is_refused(client, authorization):
    """JWT-08."""
    response = client.get("/api/v1/accounts/me", headers={"Authorization": authorization})

    assert_invalid_token(response)


def test_bearer_scheme_is_case_insensitive(client, api):
    tokens = api.signup_and_login()

    response = client.get(
        "/api/v1/accounts/me", headers={"Authorization": f"bearer {tokens.access_token}"}
    )

    assert response.status_code == 200
