"""Signing-key rotation: a retired key keeps verifying old tokens until it is dropped (JWT-11).

Each app built by ``make_app`` stands for one start of the service on the same database, so a
rotation is: build with key A, build again with key B signing and A's public key retired.
"""

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.services.tokens import (
    generate_private_key,
    load_retired_keys,
    private_key_to_pem,
)
from config import ConfigurationError, load_config, typed_settings
from tests.helpers import ApiActions, assert_problem


def new_private_pem(algorithm: str = "EdDSA") -> str:
    return private_key_to_pem(generate_private_key(algorithm)).decode()


def public_pem_of(private_pem: str) -> str:
    private_key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def old_key() -> str:
    return new_private_pem()


@pytest.fixture
def old_tokens(make_app, old_key):
    """An account logged in while ``old_key`` signed."""
    api = ApiActions(make_app(JWT_PRIVATE_KEY=old_key).test_client())
    return api.signup_and_login()


@pytest.fixture
def rotated(make_app, old_key, old_tokens):
    """The service restarted with a new signing key and ``old_key``'s public half retired."""
    return make_app(
        JWT_PRIVATE_KEY=new_private_pem(), JWT_RETIRED_PUBLIC_KEYS=public_pem_of(old_key)
    )


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def test_token_signed_by_a_retired_key_still_works(rotated, old_tokens):
    """JWT-11: after rotation, tokens of the old key pass while it is retired, not removed."""
    response = ApiActions(rotated.test_client()).me(old_tokens.access_token)

    assert response.status_code == 200
    assert response.get_json()["email"] == "ada@example.com"


def test_after_rotation_new_tokens_are_signed_by_the_new_key(rotated, old_tokens):
    """JWT-11: a retired key never signs."""
    api = ApiActions(rotated.test_client())

    new_tokens = api.login()

    assert kid_of(new_tokens.access_token) != kid_of(old_tokens.access_token)
    assert (
        kid_of(new_tokens.access_token)
        == rotated.extensions["gatehouse"].tokens.keys.signing_key.kid
    )
    assert api.me(new_tokens.access_token).status_code == 200


def test_after_rotation_jwks_lists_the_signing_key_first_then_the_retired_one(rotated, old_tokens):
    """JWT-11: unique kids, public members only; verifiers elsewhere keep old tokens valid."""
    client = rotated.test_client()
    new_tokens = ApiActions(client).login()

    keys = client.get("/.well-known/jwks.json").get_json()["keys"]

    assert [key["kid"] for key in keys] == [
        kid_of(new_tokens.access_token),
        kid_of(old_tokens.access_token),
    ]
    assert all(set(key) == {"kty", "crv", "x", "kid", "use", "alg"} for key in keys)
    jwks = jwt.PyJWKSet.from_dict({"keys": keys})
    claims = jwt.decode(
        old_tokens.access_token,
        jwks[kid_of(old_tokens.access_token)].key,
        algorithms=["EdDSA"],
        audience=rotated.config["JWT_AUDIENCE"],
        issuer=rotated.config["JWT_ISSUER"],
    )
    assert claims["sid"]


def test_token_of_a_key_dropped_from_the_retired_set_returns_401(make_app, old_tokens):
    """JWT-11: once the old key retires for good, its tokens are refused."""
    after_retirement = make_app(JWT_PRIVATE_KEY=new_private_pem())

    response = ApiActions(after_retirement.test_client()).me(old_tokens.access_token)

    assert_problem(response, 401, "invalid_token")
    keys = after_retirement.test_client().get("/.well-known/jwks.json").get_json()["keys"]
    assert kid_of(old_tokens.access_token) not in [key["kid"] for key in keys]


def test_retired_keys_load_from_a_file_with_several_pem_blocks(tmp_path):
    first, second = public_pem_of(new_private_pem()), public_pem_of(new_private_pem())
    path = tmp_path / "retired.pem"
    path.write_text(first + "\n" + second)

    settings = typed_settings(load_config("testing", {"JWT_RETIRED_PUBLIC_KEYS_FILE": str(path)}))

    keys = load_retired_keys(settings)

    assert len({key.kid for key in keys}) == 2
    assert all(key.private_key is None for key in keys)


def test_retired_key_equal_to_the_signing_key_is_listed_once(make_app):
    key = new_private_pem()
    app = make_app(JWT_PRIVATE_KEY=key, JWT_RETIRED_PUBLIC_KEYS=public_pem_of(key))
    api = ApiActions(app.test_client())
    tokens = api.signup_and_login()

    keys = app.test_client().get("/.well-known/jwks.json").get_json()["keys"]

    assert [k["kid"] for k in keys] == [kid_of(tokens.access_token)]
    assert api.me(tokens.access_token).status_code == 200


BROKEN_PUBLIC_PEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"JWT_RETIRED_PUBLIC_KEYS": "not a key"}, "PEM public keys"),
        ({"JWT_RETIRED_PUBLIC_KEYS": BROKEN_PUBLIC_PEM}, "not a valid PEM public key"),
        ({"JWT_RETIRED_PUBLIC_KEYS": public_pem_of(new_private_pem("ES256"))}, "JWT_ALGORITHM"),
        ({"JWT_RETIRED_PUBLIC_KEYS_FILE": "/nonexistent/retired.pem"}, "cannot read"),
        # A private key is refused: the retired set holds public halves only.
        ({"JWT_RETIRED_PUBLIC_KEYS": new_private_pem()}, "PEM public keys"),
    ],
    ids=["junk", "bad-pem", "other-algorithm", "missing-file", "private-key"],
)
def test_unusable_retired_keys_refuse_start_up(make_app, settings, reason):
    """OPS-03: one line naming the problem, at start-up rather than at the first request."""
    with pytest.raises(ConfigurationError, match=reason) as raised:
        make_app(**settings)

    assert "\n" not in str(raised.value)


def p384_private_pem() -> str:
    return private_key_to_pem(ec.generate_private_key(ec.SECP384R1())).decode()


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        ("EdDSA", lambda: new_private_pem("ES256")),
        ("ES256", new_private_pem),
        ("ES256", p384_private_pem),
    ],
    ids=["p256-for-eddsa", "ed25519-for-es256", "p384-for-es256"],
)
def test_signing_key_that_does_not_fit_the_algorithm_refuses_start_up(make_app, algorithm, key):
    """OPS-03, JWT-01: the signing key must be of JWT_ALGORITHM (ES256 means the P-256 curve)."""
    with pytest.raises(
        ConfigurationError, match=f"the signing key does not fit JWT_ALGORITHM={algorithm}"
    ):
        make_app(JWT_ALGORITHM=algorithm, JWT_PRIVATE_KEY=key())
