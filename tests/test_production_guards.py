"""What an outside audit found in production, each closed (OPS-03, DATA-05, REL-03, HTTP-01).

Host headers, key-file permissions, commands that need no serving secrets, a superuser role,
database lock and pool timeouts.
"""

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from app.extensions import db
from app.services.tokens import generate_private_key, private_key_to_pem
from config import ConfigurationError, normalise_database_url
from tests.helpers import ApiActions, assert_problem

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
postgres_only = pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PostgreSQL")


# --- Host ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1", "/api/v1/accounts/me", "/nowhere"])
def test_untrusted_host_gets_400_and_is_never_echoed(make_app, path):
    """A forged Host must not come back in a redirect's Location (or anywhere)."""
    client = make_app("production", TRUSTED_HOSTS=["auth.example.com"]).test_client()

    response = client.get(path, headers={"Host": "evil.example"})

    assert_problem(response, 400, "bad_request")
    assert "evil.example" not in response.get_data(as_text=True)
    assert "evil.example" not in response.headers.get("Location", "")


def test_trusted_host_is_answered(make_app):
    client = make_app("production", TRUSTED_HOSTS=["auth.example.com"]).test_client()

    response = client.get("/api/v1", headers={"Host": "auth.example.com"})

    assert response.status_code == 308
    assert response.headers["Location"].endswith("/api/v1/")


def test_production_server_without_trusted_hosts_refuses_to_start(make_app):
    with pytest.raises(ConfigurationError, match="TRUSTED_HOSTS"):
        make_app("production", TRUSTED_HOSTS=None)


# --- Client address behind proxies ---------------------------------------------------------


def test_forwarded_for_is_ignored_without_trusted_proxies(make_app):
    """The client is the socket's peer: a forged X-Forwarded-For changes nothing."""
    app = make_app("production")
    api = ApiActions(app.test_client())
    api.signup()

    api.client.post(
        "/api/v1/auth/login",
        json={"email": "ada@example.com", "password": "correct horse battery staple"},
        headers={"X-Forwarded-For": "203.0.113.9"},
        environ_overrides={"REMOTE_ADDR": "10.0.0.2"},
    )

    assert recorded_session_ip(app) == "10.0.0.2"


def test_forwarded_for_counts_only_as_many_hops_as_trusted(make_app):
    """One proxy of ours: its entry (the right-most) is the client; the client's own are not."""
    app = make_app("production", TRUSTED_PROXY_HOPS=1)
    api = ApiActions(app.test_client())
    api.signup()

    api.client.post(
        "/api/v1/auth/login",
        json={"email": "ada@example.com", "password": "correct horse battery staple"},
        headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"},
        environ_overrides={"REMOTE_ADDR": "10.0.0.2"},
    )

    assert recorded_session_ip(app) == "203.0.113.9"


def recorded_session_ip(app) -> str:
    with app.app_context():
        return db.session.execute(text("SELECT ip_address FROM sessions")).scalar_one()


# --- Key files -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_open_to_group_or_others_refuses_start_up(make_app, tmp_path, mode):
    """OPS-03: a world- or group-readable signing key is not accepted silently."""
    key = tmp_path / "signing-key.pem"
    key.write_bytes(private_key_to_pem(generate_private_key("EdDSA")))
    key.chmod(mode)

    with pytest.raises(ConfigurationError, match="group or others") as raised:
        make_app("production", JWT_PRIVATE_KEY=None, JWT_PRIVATE_KEY_FILE=str(key))

    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_key_file_for_its_owner_alone_is_accepted(make_app, tmp_path, mode):
    key = tmp_path / "signing-key.pem"
    key.write_bytes(private_key_to_pem(generate_private_key("EdDSA")))
    key.chmod(mode)

    app = make_app("production", JWT_PRIVATE_KEY=None, JWT_PRIVATE_KEY_FILE=str(key))

    assert app.extensions["gatehouse"].tokens.keys.signing_key.private_key is not None


# --- Commands need no serving secrets ------------------------------------------------------


def flask_command(*arguments: str, **environ: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GATEHOUSE_", "JWT_", "FLASK_", "DATABASE", "MIGRATION", "REDIS"))
    }
    env.update(environ)
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "manage", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migration_in_production_needs_no_key_issuer_or_hosts(tmp_path):
    """`flask db upgrade` uses none of them, so it does not ask for them."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"

    result = flask_command("db", "upgrade", GATEHOUSE_ENV="production", DATABASE_URL=url)

    assert result.returncode == 0, result.stderr
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM roles")).scalar_one() == 2
    engine.dispose()


def test_migration_connects_with_the_migration_url_when_set(tmp_path):
    """DATA-05: the owner role migrates; the app's own role (DATABASE_URL) is not used."""
    app_url = f"sqlite:///{tmp_path / 'app-role.db'}"
    owner_url = f"sqlite:///{tmp_path / 'owner-role.db'}"

    result = flask_command(
        "db",
        "upgrade",
        GATEHOUSE_ENV="production",
        DATABASE_URL=app_url,
        MIGRATION_DATABASE_URL=owner_url,
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "owner-role.db").exists()
    assert not (tmp_path / "app-role.db").exists()


def test_key_generation_writes_an_owner_only_key_and_never_overwrites(tmp_path):
    out = tmp_path / "signing-key.pem"

    first = flask_command(
        "keys",
        "generate",
        "--algorithm",
        "ES256",
        "--out",
        str(out),
        GATEHOUSE_ENV="production",
        DATABASE_URL="sqlite://",
    )
    second = flask_command(
        "keys", "generate", "--out", str(out), GATEHOUSE_ENV="production", DATABASE_URL="sqlite://"
    )

    assert first.returncode == 0, first.stderr
    assert "ES256 signing key" in first.stdout
    assert out.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN PRIVATE KEY" in out.read_bytes()
    assert second.returncode != 0 and "refusing to overwrite" in second.stderr


# --- PostgreSQL: roles and timeouts --------------------------------------------------------


@postgres_only
def test_connecting_as_a_superuser_is_warned_about_once(make_app, caplog):
    """DATA-05: the test database's role is `postgres`, a superuser: the service says so."""
    app = make_app("production")
    client = app.test_client()

    with caplog.at_level("WARNING", logger="gatehouse.database"):
        client.get("/readyz")
        client.get("/readyz")

    warnings = [r for r in caplog.records if "superuser" in r.getMessage()]
    assert len(warnings) == 1


@postgres_only
def test_table_locked_longer_than_lock_timeout_answers_503(make_app):
    """REL-03: a held table lock ends in 503 after lock_timeout, not a hang."""
    app = make_app("production", DATABASE_LOCK_TIMEOUT_MS=300)
    client = app.test_client()
    tokens = ApiActions(client).signup_and_login()
    locker = create_engine(normalise_database_url(TEST_DATABASE_URL))
    with locker.connect() as connection:
        connection.execute(text("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        response = client.get("/api/v1/accounts/me", headers=tokens.headers)
        waited = time.monotonic() - started
        connection.rollback()
    locker.dispose()

    assert_problem(response, 503, "service_unavailable")
    assert waited < 2.5  # the lock timeout (0.3 s) ended it, not the statement timeout (5 s)
    assert response.headers["Retry-After"]


@postgres_only
def test_exhausted_pool_answers_503_after_the_pool_timeout(make_app):
    """REL-03: no free connection within DATABASE_POOL_TIMEOUT_SECONDS → 503, no hang."""
    app = make_app(
        "production",
        DATABASE_POOL_SIZE=1,
        DATABASE_MAX_OVERFLOW=0,
        DATABASE_POOL_TIMEOUT_SECONDS=0.3,
    )
    tokens = ApiActions(app.test_client()).signup_and_login()
    with app.app_context():
        held = db.engine.connect()  # the pool's only connection
    try:
        result = {}
        worker = threading.Thread(
            target=lambda: result.update(
                response=app.test_client().get("/api/v1/accounts/me", headers=tokens.headers)
            )
        )
        worker.start()
        worker.join(timeout=10)
    finally:
        held.close()

    assert_problem(result["response"], 503, "service_unavailable")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_scrapes_answer_at_any_host(make_app, path):
    """Kubernetes and Prometheus call these at the pod's address, not the public name."""
    client = make_app("production", TRUSTED_HOSTS=["auth.example.com"]).test_client()

    response = client.get(path, headers={"Host": "10.1.2.3:8000"})

    assert response.status_code == 200


@postgres_only
def test_migration_waiting_on_a_lock_gives_up_after_its_lock_timeout(tmp_path):
    """OPS-04: a migration behind a long-held lock fails fast instead of queueing everyone."""
    name = f"gatehouse_migrate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_database_url(TEST_DATABASE_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = TEST_DATABASE_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        environ = {"GATEHOUSE_ENV": "production", "DATABASE_URL": url}
        assert flask_command("db", "upgrade", **environ).returncode == 0
        locker = create_engine(normalise_database_url(url))
        with locker.connect() as connection:
            connection.execute(text("LOCK TABLE refresh_tokens IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            # The app's own timeouts off: only the migration's lock_timeout can end the wait.
            result = flask_command(
                "db",
                "downgrade",
                "base",
                MIGRATION_LOCK_TIMEOUT_MS="500",
                DATABASE_LOCK_TIMEOUT_MS="0",
                DATABASE_STATEMENT_TIMEOUT_MS="0",
                **environ,
            )
            waited = time.monotonic() - started
            connection.rollback()
        locker.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    assert result.returncode != 0
    assert "lock timeout" in result.stderr.lower()
    assert waited < 10
