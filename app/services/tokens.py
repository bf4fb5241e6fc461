"""Signing keys, access-token JWTs and opaque refresh tokens.

Access tokens are JWTs signed with an asymmetric key (EdDSA/Ed25519 by default, or ES256), typed
``at+jwt`` (RFC 9068) and named by ``kid``. Anyone can verify them with the JWKS document.
Refresh tokens are 256 random bits; only their SHA-256 digest is stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from app.errors import InvalidToken
from config import ConfigurationError, Settings

ACCESS_TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "jti", "iat", "exp"]
MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True)
class SigningKey:
    """A key of our set; a retired key has only its public half and never signs."""

    kid: str
    algorithm: str
    private_key: Any | None
    public_key: Any

    def public_jwk(self) -> dict[str, str]:
        algorithm = OKPAlgorithm if self.algorithm == "EdDSA" else ECAlgorithm
        jwk: dict[str, str] = algorithm.to_jwk(self.public_key, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": self.algorithm})
        return jwk


def _thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint: a ``kid`` that is the same wherever the key is loaded."""
    members = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return jwt.utils.base64url_encode(digest).decode()


def generate_private_key(algorithm: str) -> Any:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def private_key_to_pem(private_key: Any) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def signing_key_from_private(private_key: Any, algorithm: str) -> SigningKey:
    # The public half's type and curve decide whether the pair fits the algorithm.
    return _key_from_public(private_key.public_key(), algorithm, private_key, "the signing key")


def _key_from_public(
    public_key: Any, algorithm: str, private_key: Any | None, name: str
) -> SigningKey:
    expected = ed25519.Ed25519PublicKey if algorithm == "EdDSA" else ec.EllipticCurvePublicKey
    if not isinstance(public_key, expected) or (
        algorithm == "ES256" and public_key.curve.name != "secp256r1"
    ):
        raise ConfigurationError(f"{name} does not fit JWT_ALGORITHM={algorithm}")
    algorithm_class = OKPAlgorithm if algorithm == "EdDSA" else ECAlgorithm
    jwk = algorithm_class.to_jwk(public_key, as_dict=True)
    return SigningKey(_thumbprint(jwk), algorithm, private_key, public_key)


_PUBLIC_KEY_PEM = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


def load_retired_keys(settings: Settings) -> list[SigningKey]:
    """The public keys that still verify tokens signed before a key rotation, and never sign.

    From ``JWT_RETIRED_PUBLIC_KEYS`` (PEM text, one or more blocks) or
    ``JWT_RETIRED_PUBLIC_KEYS_FILE``. Raises ConfigurationError when they cannot be used.
    """
    pem = _configured_pem(
        settings.jwt_retired_public_keys,
        settings.jwt_retired_public_keys_file,
        "JWT_RETIRED_PUBLIC_KEYS",
    )
    if pem is None:
        return []
    blocks = _PUBLIC_KEY_PEM.findall(pem)
    if not blocks and pem.strip():
        raise ConfigurationError("the retired keys are not PEM public keys (BEGIN PUBLIC KEY)")
    keys = []
    for block in blocks:
        try:
            public_key = serialization.load_pem_public_key(block)
        except (ValueError, TypeError):
            raise ConfigurationError("a retired key is not a valid PEM public key") from None
        keys.append(_key_from_public(public_key, settings.jwt_algorithm, None, "a retired key"))
    return keys


def load_signing_key(settings: Settings) -> SigningKey:
    """Load the signing key named by the settings.

    Order: ``JWT_PRIVATE_KEY`` (PEM text), ``JWT_PRIVATE_KEY_FILE``, then, in development,
    ``JWT_GENERATE_KEY_FILE`` (created once with mode 0600); the test settings get a fresh key.
    Raises ConfigurationError when there is none or it cannot be read.
    """
    algorithm = settings.jwt_algorithm
    pem = _configured_pem(
        settings.jwt_private_key, settings.jwt_private_key_file, "JWT_PRIVATE_KEY", secret=True
    )
    if pem is None and settings.jwt_generate_key_file:
        pem = _generated_key_file(Path(settings.jwt_generate_key_file), algorithm)
    if pem is None:
        if settings.testing:
            return signing_key_from_private(generate_private_key(algorithm), algorithm)
        raise ConfigurationError("no signing key: set JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE")
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError("the signing key is not an unencrypted PEM private key") from None
    return signing_key_from_private(private_key, algorithm)


def _configured_pem(
    text: str | None, path: str | None, setting: str, *, secret: bool = False
) -> bytes | None:
    """PEM from ``setting`` (the text itself) or else ``<setting>_FILE`` (a path); None if unset.

    A ``secret`` file (a private key) must be readable by its owner alone (OPS-03).
    Raises ConfigurationError when the file cannot be read or is open to others.
    """
    if text:
        return text.encode()
    if not path:
        return None
    if secret:
        refuse_shared_secret_file(Path(path), f"{setting}_FILE")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {setting}_FILE: {exc.strerror}") from None


def refuse_shared_secret_file(path: Path, setting: str) -> None:
    """Raise ConfigurationError when ``path`` is readable or writable by group or others."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigurationError(f"cannot read {setting}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigurationError(
            f"{setting} {path} is open to group or others (mode {mode & 0o777:04o}); "
            "make it 0600 or 0400"
        )


def _generated_key_file(path: Path, algorithm: str) -> bytes:
    if path.exists():
        refuse_shared_secret_file(path, "the development key file")
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = private_key_to_pem(generate_private_key(algorithm))
    # O_EXCL: two processes starting at once must not overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return pem


class KeySet:
    """The key that signs new tokens and every key that still verifies old ones."""

    def __init__(self, signing_key: SigningKey, retired: list[SigningKey] | None = None) -> None:
        self.signing_key = signing_key
        self._by_kid = {signing_key.kid: signing_key}
        for key in retired or []:
            self._by_kid.setdefault(key.kid, key)  # the signing key itself is never demoted

    def find(self, kid: Any) -> SigningKey | None:
        return self._by_kid.get(kid) if isinstance(kid, str) else None

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.public_jwk() for key in self._by_kid.values()]}


@dataclass(frozen=True)
class AccessClaims:
    """The verified claims of an access token."""

    account_id: uuid.UUID
    session_id: uuid.UUID
    jti: str
    raw: dict[str, Any]


class AccessTokenCodec:
    """Issues and verifies access tokens with one key set, issuer and audience."""

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        lifetime_seconds: int,
        leeway_seconds: int,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.lifetime_seconds = lifetime_seconds
        self.leeway_seconds = leeway_seconds

    def issue(
        self,
        *,
        account_id: uuid.UUID,
        session_id: uuid.UUID,
        roles: list[str],
        amr: list[str],
        auth_time: datetime,
        email_verified: bool,
        now: datetime,
    ) -> str:
        issued_at = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(account_id),
            "sid": str(session_id),
            "jti": uuid.uuid4().hex,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + self.lifetime_seconds,
            "roles": roles,
            "amr": amr,
            "auth_time": int(auth_time.timestamp()),
            "email_verified": email_verified,
        }
        key = self.keys.signing_key
        return jwt.encode(
            claims,
            key.private_key,
            algorithm=key.algorithm,
            headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
        )

    def verify(self, token: str, *, now: datetime) -> AccessClaims:
        """Verify signature, type, issuer, audience and times (against ``now``).

        Only our algorithm and our keys are used: ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers
        are never looked at. Raises InvalidToken for any failure.
        """
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("The access token is too long.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("The access token is malformed.") from None
        key = self.keys.find(header.get("kid"))
        if (
            key is None
            or header.get("alg") != key.algorithm
            or header.get("typ") != ACCESS_TOKEN_TYPE
            or "crit" in header  # we understand no critical extensions (RFC 7515 §4.1.11)
        ):
            raise InvalidToken("The access token is not one of ours.")
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={
                    "require": REQUIRED_CLAIMS,
                    "strict_aud": True,
                    # Times are checked below against the service's clock, not the library's.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise InvalidToken("The access token is invalid.") from None
        self._check_times(claims, now)
        # Belt and braces: exact issuer match whatever the library version does.
        if claims["iss"] != self.issuer:
            raise InvalidToken("The access token is invalid.")
        try:
            account_id = uuid.UUID(claims["sub"])
            session_id = uuid.UUID(claims["sid"])
        except (TypeError, ValueError, AttributeError):
            raise InvalidToken("The access token is invalid.") from None
        if not isinstance(claims["jti"], str):
            raise InvalidToken("The access token is invalid.")
        return AccessClaims(account_id, session_id, claims["jti"], claims)

    def _check_times(self, claims: dict[str, Any], now: datetime) -> None:
        """``exp`` passed, or ``iat``/``nbf`` ahead, by more than the leeway: refused."""
        times = {name: claims.get(name) for name in ("exp", "iat", "nbf")}
        for name, value in times.items():
            if value is None and name == "nbf":
                continue
            # Whole NumericDates only; bool is an int in Python, and strings are not dates.
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidToken("The access token is invalid.")
        current = now.timestamp()
        if times["exp"] <= current - self.leeway_seconds:
            raise InvalidToken("The access token has expired.")
        if times["iat"] > current + self.leeway_seconds:
            raise InvalidToken("The access token is not valid yet.")
        if times["nbf"] is not None and times["nbf"] > current + self.leeway_seconds:
            raise InvalidToken("The access token is not valid yet.")


def new_refresh_token() -> str:
    """256 bits from the operating system's CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


def digest_refresh_token(token: str) -> str:
    """SHA-256 is enough here: the token has 256 random bits, nothing to brute-force."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def load_secret_key(settings: Settings) -> bytes:
    """The HMAC key for device tokens: ``SECRET_KEY``, or ``SECRET_KEY_FILE`` (owner-only).

    Development generates the file once (256 random bits, mode 0600); production refuses to
    start without one. Raises ConfigurationError.
    """
    if settings.secret_key:
        return settings.secret_key.encode()
    if settings.secret_key_file:
        path = Path(settings.secret_key_file)
        if settings.env_name == "development" and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as file:
                    file.write(secrets.token_urlsafe(48))
        refuse_shared_secret_file(path, "SECRET_KEY_FILE")
        secret = path.read_text().strip().encode()
        if len(secret) < 32:
            raise ConfigurationError("SECRET_KEY_FILE must hold at least 32 bytes")
        return secret
    if settings.testing:
        return secrets.token_bytes(32)
    raise ConfigurationError("no SECRET_KEY: set SECRET_KEY or SECRET_KEY_FILE")
