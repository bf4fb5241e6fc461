"""Per-environment settings, environment overrides and production's refusals."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigurationError, load_config, normalise_database_url

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "JWT_PRIVATE_KEY_FILE": "/etc/gatehouse/key.pem",
    "DATABASE_URL": "postgresql://gatehouse@db/gatehouse",
    "JWT_ISSUER": "https://auth.example.com",
}


def test_production_with_everything_set_loads():
    settings = load_config("production", environ=PRODUCTION_ENV)

    assert settings["DEBUG"] is False
    assert settings["HSTS_ENABLED"] is True
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://gatehouse@db/gatehouse"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"JWT_PRIVATE_KEY_FILE": ""}, "signing key"),
        ({"DEBUG": "1"}, "DEBUG"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"JWT_ISSUER": ""}, "JWT_ISSUER"),
        ({"ARGON2_MEMORY_COST": "8192"}, "Argon2"),
        ({"ARGON2_TIME_COST": "1"}, "Argon2"),
    ],
    ids=["no-key", "debug", "no-database", "no-issuer", "weak-memory", "weak-time"],
)
def test_production_refuses_unsafe_settings_with_one_line(change, reason):
    """OPS-03, PWD-06."""
    with pytest.raises(ConfigurationError) as raised:
        load_config("production", environ={**PRODUCTION_ENV, **change})

    message = str(raised.value)
    assert reason in message
    assert "\n" not in message


def test_environment_variables_override_settings():
    settings = load_config(
        "development",
        environ={
            "ACCESS_TOKEN_LIFETIME_SECONDS": "300",
            "HSTS_ENABLED": "yes",
            "JWT_AUDIENCE": "my-api",
            "REDIS_URL": "redis://cache:6379/1",
        },
    )

    assert settings["ACCESS_TOKEN_LIFETIME_SECONDS"] == 300
    assert settings["HSTS_ENABLED"] is True
    assert settings["JWT_AUDIENCE"] == "my-api"
    assert settings["REDIS_URL"] == "redis://cache:6379/1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ACCESS_TOKEN_LIFETIME_SECONDS", "fifteen"),
        ("HSTS_ENABLED", "maybe"),
        ("JWT_ALGORITHM", "HS256"),
        ("JWT_LEEWAY_SECONDS", "3600"),
        ("PASSWORD_MIN_LENGTH", "4"),
    ],
)
def test_invalid_override_is_refused(name, value):
    with pytest.raises(ConfigurationError, match=name):
        load_config("development", environ={name: value})


def test_unknown_environment_is_refused():
    with pytest.raises(ConfigurationError, match="GATEHOUSE_ENV"):
        load_config(environ={"GATEHOUSE_ENV": "staging"})


def test_testing_config_ignores_the_environment():
    settings = load_config("testing", environ={"DATABASE_URL": "postgresql://elsewhere/db"})

    assert settings["SQLALCHEMY_DATABASE_URI"] == "sqlite://"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_urls_select_the_psycopg_driver(url, expected):
    assert normalise_database_url(url) == expected


def test_production_defaults_keep_owasp_argon2_parameters():
    """PWD-06: argon2-cffi's defaults, above OWASP's minimum."""
    settings = load_config("production", environ=PRODUCTION_ENV)

    assert (settings["ARGON2_TIME_COST"], settings["ARGON2_MEMORY_COST"]) == (3, 65536)
    assert settings["ARGON2_PARALLELISM"] == 4


def test_run_py_in_production_without_key_exits_with_one_line():
    """OPS-03: the service refuses to start and says why in one line."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JWT_", "DATABASE_URL", "GATEHOUSE_"))
    }
    env.update(GATEHOUSE_ENV="production", DATABASE_URL="sqlite:///unused.db")

    result = subprocess.run(
        [sys.executable, "run.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("gatehouse: refusing to start: production needs a signing key")
