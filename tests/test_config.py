"""Per-environment settings, environment overrides and production's refusals (OPS-03)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config import (
    ENV_OVERRIDES,
    ConfigurationError,
    load_config,
    normalise_database_url,
    typed_settings,
)

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "JWT_PRIVATE_KEY_FILE": "/etc/gatehouse/key.pem",
    "DATABASE_URL": "postgresql://gatehouse@db/gatehouse",
    "JWT_ISSUER": "https://auth.example.com",
    "TRUSTED_HOSTS": "auth.example.com",
    "SECRET_KEY": "a-production-secret-key-of-32-bytes-or-more",
    "MAIL_SERVER": "smtp.example.com",
    "MAIL_FROM": "Gatehouse <no-reply@example.com>",
}


def without(environ: dict[str, str], *names: str) -> dict[str, str]:
    return {key: value for key, value in environ.items() if key not in names}


def test_load_production_with_everything_set_returns_safe_settings():
    settings = load_config("production", environ=PRODUCTION_ENV)

    assert settings["ENV_NAME"] == "production"
    assert settings["DEBUG"] is False
    assert settings["TESTING"] is False
    assert settings["HSTS_ENABLED"] is True
    assert settings["RESTX_ERROR_404_HELP"] is False
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://gatehouse@db/gatehouse"


@pytest.mark.parametrize(
    ("environ", "reason"),
    [
        (without(PRODUCTION_ENV, "JWT_PRIVATE_KEY_FILE"), "signing key"),
        ({**PRODUCTION_ENV, "JWT_PRIVATE_KEY_FILE": ""}, "signing key"),
        ({**PRODUCTION_ENV, "DEBUG": "1"}, "DEBUG"),
        ({**PRODUCTION_ENV, "DEBUG": "true"}, "DEBUG"),
        ({**PRODUCTION_ENV, "FLASK_DEBUG": "1"}, "FLASK_DEBUG"),
        (without(PRODUCTION_ENV, "DATABASE_URL"), "DATABASE_URL"),
        (without(PRODUCTION_ENV, "JWT_ISSUER"), "JWT_ISSUER"),
        ({**PRODUCTION_ENV, "ARGON2_MEMORY_COST": "8192"}, "Argon2"),
        ({**PRODUCTION_ENV, "ARGON2_TIME_COST": "1"}, "Argon2"),
    ],
    ids=[
        "no-key",
        "empty-key",
        "debug-1",
        "debug-true",
        "flask-debug",
        "no-database",
        "no-issuer",
        "weak-memory",
        "weak-time",
    ],
)
def test_load_production_with_unsafe_settings_raises_one_line_reason(environ, reason):
    """OPS-03, PWD-06: refused at start-up, with one line that names the setting."""
    with pytest.raises(ConfigurationError) as raised:
        load_config("production", environ=environ)

    message = str(raised.value)
    assert reason in message
    assert message.strip() == message
    assert "\n" not in message
    assert "\r" not in message


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_load_production_with_flask_debug_off_is_allowed(value):
    assert load_config("production", environ={**PRODUCTION_ENV, "FLASK_DEBUG": value})


def test_load_development_with_debug_on_is_allowed():
    assert load_config("development", environ={"DEBUG": "1"})["DEBUG"] is True


@pytest.mark.parametrize(
    ("name", "raw", "parsed"),
    [
        ("ACCESS_TOKEN_LIFETIME_SECONDS", "300", 300),
        ("JWT_LEEWAY_SECONDS", "0", 0),
        ("MAX_CONTENT_LENGTH", "131072", 131072),
        ("PASSWORD_MIN_LENGTH", "15", 15),
        ("REDIS_SOCKET_TIMEOUT", "0.25", 0.25),
        ("HSTS_ENABLED", "yes", True),
        ("HSTS_ENABLED", "ON", True),
        ("HSTS_ENABLED", "1", True),
        ("DEBUG", "false", False),
        ("DEBUG", "0", False),
        ("DEBUG", "off", False),
        ("JWT_AUDIENCE", "my-api", "my-api"),
        ("REDIS_URL", "redis://cache:6379/1", "redis://cache:6379/1"),
    ],
)
def test_load_with_environment_override_parses_the_value(name, raw, parsed):
    settings = load_config("development", environ={name: raw})

    assert settings[name] == parsed
    assert type(settings[name]) is type(parsed)


def test_load_with_empty_environment_variable_keeps_the_default():
    settings = load_config("development", environ={"ACCESS_TOKEN_LIFETIME_SECONDS": ""})

    assert settings["ACCESS_TOKEN_LIFETIME_SECONDS"] == 15 * 60


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ACCESS_TOKEN_LIFETIME_SECONDS", "fifteen"),
        ("ACCESS_TOKEN_LIFETIME_SECONDS", "1.5"),
        ("MAX_CONTENT_LENGTH", "64k"),
        ("REDIS_SOCKET_TIMEOUT", "fast"),
        ("HSTS_ENABLED", "maybe"),
        ("DEBUG", "2"),
        ("JWT_ALGORITHM", "HS256"),
        ("JWT_ALGORITHM", "none"),
        ("JWT_LEEWAY_SECONDS", "3600"),
        ("PASSWORD_MIN_LENGTH", "4"),
        ("ACCESS_TOKEN_LIFETIME_SECONDS", "0"),
    ],
)
def test_load_with_invalid_override_raises_configuration_error(name, value):
    """OPS-03: a bad value stops the start, never silently falls back to the default."""
    with pytest.raises(ConfigurationError, match=name) as raised:
        load_config("development", environ={name: value})

    assert "\n" not in str(raised.value)


def test_load_with_unknown_environment_name_raises_configuration_error():
    with pytest.raises(ConfigurationError, match="GATEHOUSE_ENV"):
        load_config(environ={"GATEHOUSE_ENV": "staging"})


def test_load_without_environment_name_picks_production():
    """OPS-03: fail closed; a forgotten GATEHOUSE_ENV never means development's generated key."""
    assert load_config(environ=PRODUCTION_ENV)["ENV_NAME"] == "production"


def test_load_without_environment_name_or_key_raises_configuration_error():
    """OPS-03."""
    with pytest.raises(ConfigurationError, match="signing key"):
        load_config(environ={"DATABASE_URL": "postgresql://u@h/d", "JWT_ISSUER": "https://a.b"})


def test_load_testing_ignores_the_environment():
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
def test_normalise_database_url_selects_the_psycopg_driver(url, expected):
    assert normalise_database_url(url) == expected


def test_load_with_postgresql_url_rewrites_it_for_psycopg():
    settings = load_config("development", environ={"DATABASE_URL": "postgresql://u:p@db:5432/g"})

    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db:5432/g"


def test_load_production_defaults_keep_owasp_argon2_parameters():
    """PWD-06: argon2-cffi's defaults, above OWASP's minimum."""
    settings = load_config("production", environ=PRODUCTION_ENV)

    assert (settings["ARGON2_TIME_COST"], settings["ARGON2_MEMORY_COST"]) == (3, 65536)
    assert settings["ARGON2_PARALLELISM"] == 4


def run_server(*command: str, **environ: str) -> subprocess.CompletedProcess:
    """Start ``run.py`` (or ``command``) with none of the settings this shell may carry."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ENV_OVERRIDES and not key.startswith(("GATEHOUSE_", "JWT_", "FLASK_"))
    }
    env.update(environ)
    return subprocess.run(
        list(command) or [sys.executable, "run.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("env_name", [{"GATEHOUSE_ENV": "production"}, {}], ids=["set", "unset"])
def test_run_py_in_production_without_key_exits_with_one_line(env_name):
    """OPS-03: the service refuses to start and says why in one line on stderr."""
    result = run_server(
        DATABASE_URL="postgresql://gatehouse@127.0.0.1:1/unused",
        JWT_ISSUER="https://auth.example.com",
        **env_name,
    )

    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gatehouse: refusing to start:")
    assert "signing key" in lines[0]
    assert result.stdout == ""


def test_flask_run_debug_in_production_refuses_to_start():
    """OPS-03: `flask run --debug` would serve Werkzeug's interactive debugger; refused."""
    result = run_server(
        sys.executable,
        "-m",
        "flask",
        "--app",
        "run",
        "run",
        "--debug",
        GATEHOUSE_ENV="production",
        DATABASE_URL="postgresql://gatehouse@127.0.0.1:1/unused",
        JWT_ISSUER="https://auth.example.com",
        JWT_PRIVATE_KEY_FILE="/nonexistent/key.pem",
    )

    assert result.returncode != 0
    assert result.stderr.strip() == (
        "gatehouse: refusing to start: production refuses to start with FLASK_DEBUG on"
    )


def test_run_py_with_unknown_environment_exits_with_one_line():
    """OPS-03."""
    result = run_server(GATEHOUSE_ENV="staging")

    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gatehouse: refusing to start:")
    assert "GATEHOUSE_ENV" in lines[0]


def test_typed_settings_carry_every_setting_with_its_type():
    settings = typed_settings(load_config("production", environ=PRODUCTION_ENV))

    assert settings.env_name == "production"
    assert settings.access_token_lifetime_seconds == 15 * 60
    assert settings.hsts_enabled is True
    assert settings.database_url == PRODUCTION_ENV["DATABASE_URL"]


def test_typed_settings_with_a_wrongly_typed_value_raise_one_line():
    """OPS-03: a class attribute or an override of the wrong type stops the start."""
    config = load_config("development", {"JWT_LEEWAY_SECONDS": 10})
    config["JWT_LEEWAY_SECONDS"] = "ten"

    with pytest.raises(ConfigurationError, match="JWT_LEEWAY_SECONDS") as raised:
        typed_settings(config)

    assert "\n" not in str(raised.value)


def test_application_code_reads_settings_only_through_the_typed_object():
    """No ``config["…"]`` strings scattered through services, views or the HTTP layer."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "app").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\bconfig\[|config\.get\(", line)
    ]

    assert offenders == []


def test_every_setting_is_in_the_configuration_reference():
    """An operator finds every variable the service or its server reads documented."""
    reference = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", reference))
    server = set(
        re.findall(
            r"""(?:environ\.get|_env_int)\(["']([A-Z_]+)["']""",
            (ROOT / "gunicorn.conf.py").read_text(),
        )
    )
    assert server  # the pattern still finds gunicorn.conf.py's variables

    assert (set(ENV_OVERRIDES) | server | {"GATEHOUSE_ENV"}) - documented == set()


@pytest.mark.parametrize(
    ("port", "issuer"), [("5077", "http://127.0.0.1:5077"), ("", "http://127.0.0.1:5000")]
)
def test_development_issuer_names_the_port_make_run_serves_on(port, issuer):
    """Tokens and mailed links of `PORT=5077 make run` point at 5077, not at the default."""
    environment = {key: value for key, value in os.environ.items() if key != "PORT"}
    if port:
        environment["PORT"] = port
    printed = subprocess.run(
        [sys.executable, "-c", "from config import DevelopmentConfig as c; print(c.JWT_ISSUER)"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    assert printed == issuer
