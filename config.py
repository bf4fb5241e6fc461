"""Settings for each environment.

One class per environment, chosen by ``GATEHOUSE_ENV`` (development, testing, production).
Unset means production, so a server whose variable was forgotten refuses to start instead of
running with development's generated key; ``make run`` sets development.
Every setting in ``ENV_OVERRIDES`` can be overridden by an environment variable of the same
name; they are read in one place, :func:`load_config`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal, get_args

from limits import parse_many
from pydantic import BaseModel, ConfigDict, Field, ValidationError

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"


class ConfigurationError(RuntimeError):
    """The settings are unsafe or incomplete; the service refuses to start."""


class Config:
    """Defaults shared by every environment."""

    ENV_NAME = "base"
    DEBUG = False
    TESTING = False

    # Database. SQLite is the embedded default; PostgreSQL is the production database.
    DATABASE_URL = f"sqlite:///{INSTANCE_DIR / 'gatehouse.db'}"
    # The owner role that runs migrations, when the app's own role may not alter the schema
    # (least privilege, DATA-05); `flask --app manage db upgrade` uses it, the server never does.
    MIGRATION_DATABASE_URL: str | None = None
    # Per process (gunicorn worker): pool_size + max_overflow connections at most.
    DATABASE_POOL_SIZE = 5
    DATABASE_MAX_OVERFLOW = 5
    DATABASE_POOL_TIMEOUT_SECONDS = 3.0
    DATABASE_POOL_RECYCLE_SECONDS = 1800
    # PostgreSQL: a pooled connection idle this long is pinged before use (a restart may have
    # broken it); one in steady use is not, which saves a round trip per request.
    DATABASE_PING_AFTER_IDLE_SECONDS = 1.0
    DATABASE_CONNECT_TIMEOUT_SECONDS = 5
    # PostgreSQL: a statement or a lock wait past these ends with 503, never a hang (REL-03).
    DATABASE_STATEMENT_TIMEOUT_MS = 5000
    DATABASE_LOCK_TIMEOUT_MS = 3000
    MIGRATION_LOCK_TIMEOUT_MS = 5000
    # Optional: Redis for the state instances share (rate limits, cookie sessions).
    REDIS_URL: str | None = None
    REDIS_KEY_PREFIX = "gatehouse:"
    REDIS_SOCKET_TIMEOUT = 0.5

    # Tokens. The signing key is a PEM private key (Ed25519 for EdDSA, P-256 for ES256).
    JWT_ALGORITHM = "EdDSA"
    JWT_PRIVATE_KEY: str | None = None
    JWT_PRIVATE_KEY_FILE: str | None = None
    # Public keys of rotated-out signing keys: they still verify (and are published in the JWKS)
    # until the tokens they signed have expired; see the README's key rotation.
    JWT_RETIRED_PUBLIC_KEYS: str | None = None
    JWT_RETIRED_PUBLIC_KEYS_FILE: str | None = None
    # Development only: generate the key once and keep it in this file.
    JWT_GENERATE_KEY_FILE: str | None = None
    JWT_ISSUER = "http://127.0.0.1:5000"
    JWT_AUDIENCE = "gatehouse"
    JWT_LEEWAY_SECONDS = 60
    ACCESS_TOKEN_LIFETIME_SECONDS = 15 * 60
    REFRESH_TOKEN_LIFETIME_SECONDS = 30 * 24 * 3600
    SESSION_LIFETIME_SECONDS = 90 * 24 * 3600
    # Deleting the account or changing its address without the password needs a login this
    # recent (SES-09); with the password in the body, any session will do.
    REAUTHENTICATION_WINDOW_SECONDS = 600

    # Passwords: Argon2id. argon2-cffi's defaults (RFC 9106 low-memory profile: t=3, 64 MiB,
    # p=4) are above the OWASP minimum (t=2, 19 MiB, p=1).
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_COST = 65536
    ARGON2_PARALLELISM = 4
    # Hashes one process runs at once (None: one per core) and how long a request waits for a
    # free slot before 503 `busy` (REL-10).
    ARGON2_MAX_CONCURRENT: int | None = None
    ARGON2_QUEUE_TIMEOUT_SECONDS = 2.0
    PASSWORD_MIN_LENGTH = 8
    PASSWORD_MAX_LENGTH = 256
    # PWD-05: a shipped list of 100,000 common passwords (app/data/README.md), and optionally a
    # k-anonymity check against a breach corpus (Have I Been Pwned's range API), failing open.
    PASSWORD_BREACHED_LIST_ENABLED = True
    PASSWORD_BREACH_API_ENABLED = False
    PASSWORD_BREACH_API_URL = "https://api.pwnedpasswords.com"
    PASSWORD_BREACH_API_TIMEOUT_SECONDS = 1.5

    # HTTP.
    MAX_CONTENT_LENGTH = 64 * 1024
    HSTS_ENABLED = False
    # Host names the service answers to; others get 400 (never echoed into a redirect).
    # None accepts any (development); production requires a list.
    TRUSTED_HOSTS: list[str] | None = None
    # Proxies in front of the service whose X-Forwarded-For/-Proto/-Host are believed. 0: none,
    # the client is the socket's peer and a forged header changes nothing.
    TRUSTED_PROXY_HOPS = 0
    DOCS_ENABLED = True
    # Browser origins allowed to call the API (exact, e.g. https://app.example.com); empty: none.
    CORS_ALLOWED_ORIGINS: list[str] = []
    CORS_MAX_AGE_SECONDS = 600
    RESTX_ERROR_404_HELP = False
    ERROR_INCLUDE_MESSAGE = False
    RESTX_MASK_SWAGGER = False
    SWAGGER_UI_DOC_EXPANSION = "list"

    # Lockout (D-5): after LOCKOUT_FAILURES wrong passwords in a row an account is locked for
    # LOCKOUT_SECONDS, doubled for each lock that follows without a success, at most
    # LOCKOUT_MAX_SECONDS; never for good. A device that logged in before (its device token)
    # is not locked out by failures from elsewhere; its own failures count against it alone.
    LOCKOUT_FAILURES = 10
    LOCKOUT_SECONDS = 300
    LOCKOUT_MAX_SECONDS = 3600
    DEVICE_TOKEN_LIFETIME_SECONDS = 90 * 24 * 3600
    DEVICE_FAILURES = "10/15minutes"
    # Signs device tokens (and later cookie sessions): 32 bytes or more of randomness.
    SECRET_KEY: str | None = None
    SECRET_KEY_FILE: str | None = None

    # Rate limits, in the `limits` notation ("10/minute;100/hour"), per client address or per
    # the account a request names. RATELIMIT_ENABLED off turns them all off (benchmarks).
    RATELIMIT_ENABLED = True
    LOGIN_RATE_LIMIT_PER_IP = "30/minute;300/hour"
    LOGIN_RATE_LIMIT_PER_ACCOUNT = "10/minute;60/hour"
    SIGNUP_RATE_LIMIT_PER_IP = "10/minute;100/hour"
    SIGNUP_RATE_LIMIT_PER_ACCOUNT = "5/hour"
    REFRESH_RATE_LIMIT_PER_IP = "120/minute"
    PASSWORD_RESET_RATE_LIMIT_PER_IP = "10/minute;100/hour"
    # Messages with a link one account (or unknown address) is sent per window, per kind;
    # requests beyond it answer the same and send nothing (EM-01).
    MAIL_RATE_LIMIT_PER_ACCOUNT = "3/hour;10/day"
    EMAIL_RATE_LIMIT_PER_IP = "10/minute;100/hour"
    PASSWORD_CHECK_RATE_LIMIT_PER_IP = "10/minute;100/hour"
    PAT_CREATE_RATE_LIMIT_PER_IP = "10/minute;100/hour"

    # Personal access tokens (scripts, CI): the longest life one may ask for (also the life of
    # one that names none; 0: no limit, and such a token never expires), and how many live
    # tokens an account may hold.
    PAT_MAX_LIFETIME_SECONDS = 365 * 24 * 3600
    PAT_MAX_PER_ACCOUNT = 50

    # Mail. Without MAIL_SERVER (development, testing) messages are written as .eml files to
    # MAIL_OUTBOX_DIR and logged; production needs a server. Messages wait in the outbox table,
    # written in the transaction of the change that causes them, until the SMTP server accepts.
    MAIL_SERVER: str | None = None
    MAIL_PORT = 587
    MAIL_USE_TLS = True
    MAIL_USE_SSL = False
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_FROM = "Gatehouse <no-reply@localhost>"
    MAIL_TIMEOUT_SECONDS = 10.0
    MAIL_MAX_ATTEMPTS = 8
    MAIL_RETRY_BASE_SECONDS = 30
    MAIL_POLL_SECONDS = 5.0
    MAIL_SENDER_ENABLED = True
    MAIL_OUTBOX_DIR = str(INSTANCE_DIR / "outbox")
    # Links in mail: PUBLIC_URL (default: JWT_ISSUER) and the pages Gatehouse serves, or a
    # front end's own page, e.g. https://app.example/reset?token={token}.
    PUBLIC_URL: str | None = None
    MAIL_LINK_VERIFY_EMAIL: str | None = None
    MAIL_LINK_RESET_PASSWORD: str | None = None
    MAIL_LINK_CONFIRM_EMAIL: str | None = None
    EMAIL_VERIFICATION_TOKEN_LIFETIME_SECONDS = 1800
    PASSWORD_RESET_TOKEN_LIFETIME_SECONDS = 1800
    EMAIL_CHANGE_TOKEN_LIFETIME_SECONDS = 1800
    # An administrator's invitation (a reset link to choose the first password) lives longer.
    INVITATION_TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600
    # D-9: logins refused (403 email_not_verified, after a correct password) until verified.
    LOGIN_REQUIRES_VERIFIED_EMAIL = False
    # D-2: a sign-up for a taken address answers like a new one (202) and mails the owner.
    SIGNUP_GENERIC_ANSWER = False

    # Two-factor authentication (TOTP, RFC 6238). A correct password of an account with TOTP
    # on earns an mfa_token, not tokens: it lives MFA_TOKEN_LIFETIME_SECONDS, completes one
    # login and dies after MFA_TOKEN_MAX_ATTEMPTS wrong codes. TOTP_ISSUER names the service
    # in authenticator apps. Completions are limited per client address like logins.
    MFA_TOKEN_LIFETIME_SECONDS = 300
    MFA_TOKEN_MAX_ATTEMPTS = 5
    MFA_RATE_LIMIT_PER_IP = "30/minute;300/hour"
    TOTP_ISSUER = "Gatehouse"
    # MFA-06: administrative operations need a login that used a second factor (amr has otp).
    ADMIN_REQUIRES_MFA = True
    # ADM-07: `flask audit purge` deletes audit records older than this (a checkpoint keeps the
    # rest verifiable); 0 keeps them for ever.
    AUDIT_RETENTION_DAYS = 365

    # Logs, metrics, traces.
    LOG_LEVEL = "INFO"
    LOG_FORMAT = "text"
    METRICS_ENABLED = True
    METRICS_TOKEN: str | None = None
    OTEL_EXPORTER_OTLP_ENDPOINT: str | None = None
    OTEL_SERVICE_NAME = "gatehouse"


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    # `make run` serves on PORT: tokens and mailed links name the address it serves on.
    JWT_ISSUER = f"http://127.0.0.1:{os.environ.get('PORT') or 5000}"
    JWT_GENERATE_KEY_FILE = str(INSTANCE_DIR / "jwt-signing-key.pem")
    SECRET_KEY_FILE = str(INSTANCE_DIR / "secret-key")
    LOG_LEVEL = "DEBUG"


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    # The suite logs in many times a test; the rate-limit tests turn limits on themselves.
    RATELIMIT_ENABLED = False
    SECRET_KEY = "testing-secret-key-" + "x" * 32
    DATABASE_URL = "sqlite://"
    # Cheap hashing keeps the suite fast; a test checks production keeps the real parameters.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST = 1024
    ARGON2_PARALLELISM = 1
    # Mail stays in the outbox table; the mail tests start a sender against their SMTP server.
    MAIL_SENDER_ENABLED = False


class ProductionConfig(Config):
    ENV_NAME = "production"
    DATABASE_URL = None  # must be given explicitly
    HSTS_ENABLED = True
    JWT_ISSUER = None  # must be given explicitly: it is the public URL tokens name
    LOG_FORMAT = "json"
    MAIL_OUTBOX_DIR = None  # production sends over SMTP
    LOGIN_REQUIRES_VERIFIED_EMAIL = True
    SIGNUP_GENERIC_ANSWER = True


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


class Settings(BaseModel):
    """The typed settings the services read: one object, built once per app by ``create_app``.

    Each field is the lower-case name of a setting above (``JWT_ISSUER`` is ``jwt_issuer``), and
    each may be set by an environment variable of the upper-case name. Flask's and its
    extensions' own keys (``SQLALCHEMY_*``, ``RESTX_*``) stay in ``app.config``.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", alias_generator=str.upper, validate_by_name=True
    )

    env_name: str
    debug: bool = Field(description="Flask debug mode (production refuses it)")
    testing: bool

    database_url: str | None = Field(description="SQLAlchemy URL of the database")
    migration_database_url: str | None = Field(
        description="URL of the owner role that runs migrations (default: DATABASE_URL)"
    )
    database_pool_size: int = Field(description="Connections kept open per process")
    database_max_overflow: int = Field(description="Extra connections a process may open")
    database_pool_timeout_seconds: float = Field(
        description="Wait for a free connection before 503"
    )
    database_pool_recycle_seconds: int = Field(description="Reopen connections older than this")
    database_ping_after_idle_seconds: float = Field(
        ge=0, description="PostgreSQL: ping a pooled connection idle this long before using it"
    )
    database_connect_timeout_seconds: int = Field(description="Give up connecting after this")
    database_statement_timeout_ms: int = Field(
        description="PostgreSQL statement_timeout of the app's sessions (0: none)"
    )
    database_lock_timeout_ms: int = Field(
        description="PostgreSQL lock_timeout of the app's sessions (0: none)"
    )
    migration_lock_timeout_ms: int = Field(description="PostgreSQL lock_timeout of migrations")
    redis_url: str | None = Field(description="Redis for state the instances share")
    redis_key_prefix: str = Field(description="Prefix of every Redis key")
    redis_socket_timeout: float = Field(description="Seconds before a Redis call gives up")

    jwt_algorithm: str = Field(description="EdDSA (Ed25519) or ES256 (P-256)")
    jwt_private_key: str | None = Field(description="PEM (PKCS#8) signing key")
    jwt_private_key_file: str | None = Field(
        description="File holding the PEM signing key (mode 0600 or 0400)"
    )
    jwt_retired_public_keys: str | None = Field(description="PEM public keys that still verify")
    jwt_retired_public_keys_file: str | None = Field(description="File of retired public keys")
    jwt_generate_key_file: str | None = Field(description="Development: generated key file")
    jwt_issuer: str | None = Field(description="iss of every token, matched exactly")
    jwt_audience: str = Field(description="aud of every token")
    jwt_leeway_seconds: int = Field(description="Clock skew allowed (0 to 60)")
    access_token_lifetime_seconds: int = Field(description="Access-token life")
    refresh_token_lifetime_seconds: int = Field(description="Refresh-token life (idle limit)")
    session_lifetime_seconds: int = Field(description="Absolute session life")
    reauthentication_window_seconds: int = Field(
        description="How recent a login must be for a sensitive change made without the password"
    )

    argon2_time_cost: int = Field(description="Argon2id passes")
    argon2_memory_cost: int = Field(description="Argon2id memory in KiB")
    argon2_parallelism: int = Field(description="Argon2id lanes")
    argon2_max_concurrent: int | None = Field(
        description="Hashes a process runs at once (default: one per core)"
    )
    argon2_queue_timeout_seconds: float = Field(
        description="Wait for a hashing slot before 503 busy"
    )
    lockout_failures: int = Field(description="Wrong passwords in a row that lock an account")
    lockout_seconds: int = Field(description="First lock's length; doubled for each next one")
    lockout_max_seconds: int = Field(description="Longest lock")
    device_token_lifetime_seconds: int = Field(description="Life of a device token")
    device_failures: str = Field(description="Wrong passwords a recognised device may make")
    secret_key: str | None = Field(description="Signs device tokens (32+ bytes)")
    secret_key_file: str | None = Field(description="File holding SECRET_KEY (mode 0600)")
    password_min_length: int = Field(description="Shortest password, in code points")
    password_max_length: int = Field(description="Longest password, in code points")
    password_breached_list_enabled: bool = Field(description="Refuse common passwords (list)")
    password_breach_api_enabled: bool = Field(description="Ask a breach corpus (k-anonymity)")
    password_breach_api_url: str = Field(description="Base URL of the range API")
    password_breach_api_timeout_seconds: float = Field(description="Give up on it after this")

    max_content_length: int = Field(description="Largest request body in bytes")
    hsts_enabled: bool = Field(description="Send Strict-Transport-Security")
    trusted_hosts: list[str] | None = Field(
        description="Host names answered (comma-separated); others get 400"
    )
    trusted_proxy_hops: int = Field(description="Proxies whose X-Forwarded-* headers count")
    docs_enabled: bool = Field(description="Serve the Swagger UI page and OpenAPI document")
    cors_allowed_origins: list[str] = Field(description="Exact browser origins allowed (CORS)")
    cors_max_age_seconds: int = Field(description="How long browsers cache a CORS preflight")

    ratelimit_enabled: bool = Field(description="Apply the rate limits below")
    login_rate_limit_per_ip: str = Field(description="Logins per client address")
    login_rate_limit_per_account: str = Field(description="Logins per account named")
    signup_rate_limit_per_ip: str = Field(description="Sign-ups per client address")
    signup_rate_limit_per_account: str = Field(description="Sign-ups per address named")
    refresh_rate_limit_per_ip: str = Field(description="Refreshes per client address")
    password_check_rate_limit_per_ip: str = Field(
        description="Password changes and deletions per client address"
    )
    pat_create_rate_limit_per_ip: str = Field(
        description="Personal access tokens created per client address"
    )
    pat_max_lifetime_seconds: int = Field(
        description="Longest personal-access-token life, and the default (0: no limit)"
    )
    pat_max_per_account: int = Field(description="Live personal access tokens per account")

    password_reset_rate_limit_per_ip: str = Field(description="Reset requests per address")
    mail_rate_limit_per_account: str = Field(
        description="Mails with a link per account (or address) and kind; more are dropped"
    )
    email_rate_limit_per_ip: str = Field(
        description="Verification resends, confirmations and email changes per address"
    )

    mail_server: str | None = Field(description="SMTP server; unset: .eml files (development)")
    mail_port: int = Field(description="SMTP port")
    mail_use_tls: bool = Field(description="STARTTLS")
    mail_use_ssl: bool = Field(description="SMTP over TLS from the start")
    mail_username: str | None = Field(description="SMTP login")
    mail_password: str | None = Field(description="SMTP password")
    mail_from: str = Field(description="From of every message")
    mail_timeout_seconds: float = Field(description="SMTP connection and command timeout")
    mail_max_attempts: int = Field(description="Sends tried before a message is failed")
    mail_retry_base_seconds: int = Field(description="First retry delay; doubled each time")
    mail_poll_seconds: float = Field(description="How often the in-process sender looks")
    mail_sender_enabled: bool = Field(description="Send from the service's own processes")
    mail_outbox_dir: str | None = Field(description="Where .eml files go without MAIL_SERVER")
    public_url: str | None = Field(description="Base of links in mail (default JWT_ISSUER)")
    mail_link_verify_email: str | None = Field(description="Verification link, with {token}")
    mail_link_reset_password: str | None = Field(description="Reset link, with {token}")
    mail_link_confirm_email: str | None = Field(description="Email-change link, with {token}")
    email_verification_token_lifetime_seconds: int = Field(description="Verification link life")
    password_reset_token_lifetime_seconds: int = Field(description="Reset link life")
    email_change_token_lifetime_seconds: int = Field(description="Email-change link life")
    invitation_token_lifetime_seconds: int = Field(description="Invitation link life")
    login_requires_verified_email: bool = Field(description="Refuse unverified logins (403)")
    signup_generic_answer: bool = Field(description="Answer taken addresses like new ones")
    mfa_token_lifetime_seconds: int = Field(description="Life of an mfa_token (login step two)")
    mfa_token_max_attempts: int = Field(description="Wrong codes that end an mfa_token")
    mfa_rate_limit_per_ip: str = Field(description="Second-factor login steps per address")
    totp_issuer: str = Field(description="Issuer the authenticator app shows")
    admin_requires_mfa: bool = Field(description="Admin operations need otp in amr (403)")
    audit_retention_days: int = Field(description="Audit records kept, in days (0: for ever)")

    log_level: str = Field(description="Level of the gatehouse logger")
    log_format: Literal["json", "text"] = Field(description="One JSON object per line, or text")
    metrics_enabled: bool = Field(description="Serve /metrics (Prometheus)")
    metrics_token: str | None = Field(description="Bearer token /metrics requires, when set")
    otel_exporter_otlp_endpoint: str | None = Field(
        description="OTLP/HTTP collector URL; traces are exported when set"
    )
    otel_service_name: str = Field(description="service.name of exported traces")


# Settings that never come from the environment: the environment's own name, and testing.
NOT_FROM_ENVIRONMENT = frozenset({"ENV_NAME", "TESTING", "JWT_GENERATE_KEY_FILE"})


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _words(value: str) -> list[str]:
    return [word.strip() for word in value.split(",") if word.strip()]


def _parser_for(annotation: Any) -> Callable[[str], Any]:
    """The parser of an environment variable, from the setting's declared type."""
    optional = [arg for arg in get_args(annotation) if arg is not type(None)]
    if len(optional) == 1 and optional[0] in (bool, int, float):
        annotation = optional[0]
    if annotation is bool:
        return _bool
    if annotation in (int, float):
        return annotation
    if "list[" in str(annotation):
        return _words
    return str


# Settings that may come from the environment, with how to parse them: every typed setting.
ENV_OVERRIDES: dict[str, Callable[[str], Any]] = {
    name.upper(): _parser_for(field.annotation)
    for name, field in Settings.model_fields.items()
    if name.upper() not in NOT_FROM_ENVIRONMENT
}

SUPPORTED_ALGORITHMS = ("EdDSA", "ES256")


def load_config(
    name: str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    *,
    serving: bool = True,
) -> dict[str, Any]:
    """Return the settings of environment ``name`` with environment variables applied.

    ``serving=False`` is for the command line (``manage.py``): it connects with
    ``MIGRATION_DATABASE_URL`` when set, and does not ask for what only serving needs (the
    signing key, the issuer, the trusted hosts).
    Raises ConfigurationError for an unknown environment, an unparsable value or, in
    production, an unsafe setting.
    """
    environ = dict(os.environ if environ is None else environ)
    name = name or environ.get("GATEHOUSE_ENV") or "production"
    try:
        config_class = CONFIGS[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown GATEHOUSE_ENV {name!r}; choose one of {', '.join(CONFIGS)}"
        ) from None

    settings = {key: getattr(config_class, key) for key in dir(config_class) if key.isupper()}
    if name != "testing":  # the test suite sets its own values explicitly
        for key, parse in ENV_OVERRIDES.items():
            if key in environ and environ[key] != "":
                try:
                    settings[key] = parse(environ[key])
                except ValueError as exc:
                    raise ConfigurationError(f"{key}: {exc}") from None
    settings.update(overrides or {})

    url = settings["DATABASE_URL"]
    if not serving and settings.get("MIGRATION_DATABASE_URL"):
        url = settings["MIGRATION_DATABASE_URL"]
    if url:
        settings["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(url)
        settings["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(settings)
    _check(settings, environ, serving=serving)
    return settings


def engine_options(settings: dict[str, Any]) -> dict[str, Any]:
    """SQLAlchemy engine options: bounded pools and timeouts on PostgreSQL (REL-01, REL-03).

    ``pool_pre_ping`` notices connections a database restart broke (on PostgreSQL only those
    idle for ``DATABASE_PING_AFTER_IDLE_SECONDS``: ``app.database``); ``hide_parameters`` keeps
    rows (hashes, emails) out of database errors' log lines. A process opens at most
    ``DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW`` connections.
    """
    options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
    if not settings["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return options
    options["pool_pre_ping"] = False
    timeouts = (
        f"-c statement_timeout={int(settings['DATABASE_STATEMENT_TIMEOUT_MS'])} "
        f"-c lock_timeout={int(settings['DATABASE_LOCK_TIMEOUT_MS'])}"
    )
    options.update(
        pool_size=settings["DATABASE_POOL_SIZE"],
        max_overflow=settings["DATABASE_MAX_OVERFLOW"],
        pool_timeout=settings["DATABASE_POOL_TIMEOUT_SECONDS"],
        pool_recycle=settings["DATABASE_POOL_RECYCLE_SECONDS"],
        connect_args={
            "connect_timeout": settings["DATABASE_CONNECT_TIMEOUT_SECONDS"],
            "options": timeouts,
            "application_name": "gatehouse",
        },
    )
    return options


def typed_settings(config: dict[str, Any]) -> Settings:
    """The typed view of ``load_config``'s result. Raises ConfigurationError on a wrong type."""
    try:
        return Settings.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        raise ConfigurationError(f"{name}: {first['msg']}") from None


def normalise_database_url(url: str) -> str:
    """Select the psycopg 3 driver for plain ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _check(settings: dict[str, Any], environ: dict[str, str], *, serving: bool) -> None:
    if settings["JWT_ALGORITHM"] not in SUPPORTED_ALGORITHMS:
        raise ConfigurationError(f"JWT_ALGORITHM must be one of {', '.join(SUPPORTED_ALGORITHMS)}")
    if settings["PASSWORD_MIN_LENGTH"] < 8:
        raise ConfigurationError("PASSWORD_MIN_LENGTH must be at least 8")
    if settings["PASSWORD_MAX_LENGTH"] < max(64, settings["PASSWORD_MIN_LENGTH"]):
        raise ConfigurationError("PASSWORD_MAX_LENGTH must be at least 64")
    if settings["ACCESS_TOKEN_LIFETIME_SECONDS"] <= 0:
        raise ConfigurationError("ACCESS_TOKEN_LIFETIME_SECONDS must be positive")
    if settings["REFRESH_TOKEN_LIFETIME_SECONDS"] <= 0 or settings["SESSION_LIFETIME_SECONDS"] <= 0:
        raise ConfigurationError("refresh-token and session lifetimes must be positive")
    if settings["REAUTHENTICATION_WINDOW_SECONDS"] <= 0:
        raise ConfigurationError("REAUTHENTICATION_WINDOW_SECONDS must be positive")
    if not 0 <= settings["JWT_LEEWAY_SECONDS"] <= 60:
        raise ConfigurationError("JWT_LEEWAY_SECONDS must be between 0 and 60")
    if settings["SECRET_KEY"] and len(settings["SECRET_KEY"].encode()) < 32:
        raise ConfigurationError("SECRET_KEY must be at least 32 bytes (256 bits)")
    if settings["AUDIT_RETENTION_DAYS"] < 0:
        raise ConfigurationError("AUDIT_RETENTION_DAYS must be 0 (keep for ever) or more")
    if settings["PAT_MAX_LIFETIME_SECONDS"] < 0 or 0 < settings["PAT_MAX_LIFETIME_SECONDS"] < 60:
        raise ConfigurationError("PAT_MAX_LIFETIME_SECONDS must be 0 (no limit) or at least 60")
    if settings["PAT_MAX_PER_ACCOUNT"] < 1:
        raise ConfigurationError("PAT_MAX_PER_ACCOUNT must be positive")
    if settings["LOCKOUT_FAILURES"] < 1 or settings["LOCKOUT_SECONDS"] < 1:
        raise ConfigurationError("LOCKOUT_FAILURES and LOCKOUT_SECONDS must be positive")
    for key in [k for k in settings if "_RATE_LIMIT_PER_" in k or k == "DEVICE_FAILURES"]:
        try:
            if not parse_many(settings[key]):
                raise ValueError("no limit")
        except ValueError:
            raise ConfigurationError(
                f"{key}: not a rate limit like 10/minute;100/hour: {settings[key]!r}"
            ) from None
    if not 0 < settings["PASSWORD_BREACH_API_TIMEOUT_SECONDS"] <= 10:
        raise ConfigurationError("PASSWORD_BREACH_API_TIMEOUT_SECONDS must be between 0 and 10")
    if not str(settings["PASSWORD_BREACH_API_URL"]).startswith(("https://", "http://")):
        raise ConfigurationError("PASSWORD_BREACH_API_URL must be an http(s) URL")
    for origin in settings["CORS_ALLOWED_ORIGINS"]:
        if not re.fullmatch(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?", origin):
            raise ConfigurationError(
                f"CORS_ALLOWED_ORIGINS: {origin!r} is not an exact origin like https://app.example.com"
            )
    for key in ("MAIL_LINK_VERIFY_EMAIL", "MAIL_LINK_RESET_PASSWORD", "MAIL_LINK_CONFIRM_EMAIL"):
        if settings[key] and (
            "{token}" not in settings[key]
            or not str(settings[key]).startswith(("https://", "http://"))
        ):
            raise ConfigurationError(f"{key} must be an http(s) URL containing {{token}}")
    if settings["MAIL_USE_TLS"] and settings["MAIL_USE_SSL"]:
        raise ConfigurationError("MAIL_USE_TLS (STARTTLS) and MAIL_USE_SSL exclude each other")
    if not 0 < settings["MAIL_PORT"] < 65536:
        raise ConfigurationError("MAIL_PORT must be between 1 and 65535")
    for key in (
        "MAIL_TIMEOUT_SECONDS",
        "MAIL_RETRY_BASE_SECONDS",
        "MAIL_POLL_SECONDS",
        "MAIL_MAX_ATTEMPTS",
        "MFA_TOKEN_LIFETIME_SECONDS",
        "MFA_TOKEN_MAX_ATTEMPTS",
        "EMAIL_VERIFICATION_TOKEN_LIFETIME_SECONDS",
        "PASSWORD_RESET_TOKEN_LIFETIME_SECONDS",
        "EMAIL_CHANGE_TOKEN_LIFETIME_SECONDS",
    ):
        if settings[key] <= 0:
            raise ConfigurationError(f"{key} must be positive")
    sender = settings["MAIL_FROM"] or ""
    if any(ord(c) < 32 or ord(c) == 127 for c in sender) or "@" not in parseaddr(sender)[1]:
        raise ConfigurationError(
            "MAIL_FROM must be one address, e.g. Gatehouse <no-reply@example.com>"
        )
    if settings["PUBLIC_URL"] and not str(settings["PUBLIC_URL"]).startswith(
        ("https://", "http://")
    ):
        raise ConfigurationError("PUBLIC_URL must be an http(s) URL, e.g. https://auth.example.com")
    if settings["TRUSTED_PROXY_HOPS"] < 0:
        raise ConfigurationError("TRUSTED_PROXY_HOPS must be 0 or more")
    for key in ("DATABASE_POOL_SIZE", "DATABASE_STATEMENT_TIMEOUT_MS", "DATABASE_LOCK_TIMEOUT_MS"):
        if settings[key] < 0:
            raise ConfigurationError(f"{key} must be 0 or more")
    if settings["ENV_NAME"] == "production":
        _check_production(settings, environ, serving=serving)


def _check_production(settings: dict[str, Any], environ: dict[str, str], *, serving: bool) -> None:
    if settings["DEBUG"]:
        raise ConfigurationError("production refuses to start with DEBUG on")
    # `flask run --debug` sets FLASK_DEBUG and starts Werkzeug's interactive debugger whatever
    # the app's DEBUG says; the same truthiness rule as flask.helpers.get_debug_flag.
    if environ.get("FLASK_DEBUG", "").lower() not in ("", "0", "false", "no"):
        raise ConfigurationError("production refuses to start with FLASK_DEBUG on")
    if not settings["DATABASE_URL"]:
        raise ConfigurationError("production needs DATABASE_URL")
    if serving:
        _check_production_serving(settings)
    if (
        settings["ARGON2_MEMORY_COST"] < 19456
        or settings["ARGON2_TIME_COST"] < 2
        or settings["ARGON2_PARALLELISM"] < 1
    ):
        raise ConfigurationError(
            "production refuses Argon2 parameters below OWASP's minimum (m=19456, t=2, p=1)"
        )


def _check_production_serving(settings: dict[str, Any]) -> None:
    """What only a serving process needs; migrations and key generation do without."""
    if not (settings["JWT_PRIVATE_KEY"] or settings["JWT_PRIVATE_KEY_FILE"]):
        raise ConfigurationError(
            "production needs a signing key: set JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE"
        )
    if not settings["JWT_ISSUER"]:
        raise ConfigurationError("production needs JWT_ISSUER (the service's public URL)")
    if not settings["TRUSTED_HOSTS"]:
        raise ConfigurationError(
            "production needs TRUSTED_HOSTS (the host names it answers to, comma-separated)"
        )
    if not (settings["SECRET_KEY"] or settings["SECRET_KEY_FILE"]):
        raise ConfigurationError("production needs SECRET_KEY or SECRET_KEY_FILE (32+ bytes)")
    if not settings["MAIL_SERVER"]:
        raise ConfigurationError("production needs MAIL_SERVER (the SMTP server mail goes through)")
    if settings["MAIL_USERNAME"] and not (settings["MAIL_USE_TLS"] or settings["MAIL_USE_SSL"]):
        raise ConfigurationError(
            "production refuses to send MAIL_PASSWORD in clear: set MAIL_USE_TLS or MAIL_USE_SSL"
        )
    if parseaddr(settings["MAIL_FROM"])[1].lower().endswith("@localhost"):
        raise ConfigurationError(
            "production needs a real MAIL_FROM, e.g. Gatehouse <no-reply@example.com>"
        )
