"""The email_key data migration (revision 88b98afca4eb): existing rows get the new key.

On a scratch SQLite database, and on a scratch PostgreSQL database (created and dropped here)
when TEST_DATABASE_URL is set. SECURITY.md DATA-02 (the unique index is on the normalised key),
LOG-03 (variants are one account), OPS-04 (round trip, no-op on an empty table, a refused run
changes nothing), DATA-01.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import flask_migrate
import pytest
import sqlalchemy as sa
from email_validator import validate_email

from app import create_app
from app.extensions import db
from config import normalise_database_url

ROOT = Path(__file__).resolve().parent.parent
MIGRATION_FILE = ROOT / "migrations" / "versions" / "0002_email_key_nfkc_casefold.py"
BEFORE = "fc0c2f27227c"
REVISION = "88b98afca4eb"
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")

accounts = sa.table(
    "accounts",
    sa.column("id", sa.Uuid()),
    sa.column("email", sa.String()),
    sa.column("email_key", sa.String()),
    sa.column("password_hash", sa.String()),
    sa.column("email_verified", sa.Boolean()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("password_changed_at", sa.DateTime(timezone=True)),
)

# Typed at sign-up -> the key the new rule must give (old rows keep their display address).
REKEYED = {
    "ada@example.com": "ada@example.com",
    "Grace@Example.com": "grace@example.com",
    "ＡＤＡＭ@example.com": "adam@example.com",
    "Straße@example.com": "strasse@example.com",
    "ADİ@example.com": "adi@example.com",
    "ﬁnn@example.com": "finn@example.com",
    "\u212aate@example.com": "kate@example.com",
    "Ada@XN--BCHER-KVA.example": "ada@bücher.example",
    "ΣΟΦΊΑ@example.gr": "σοφία@example.gr",
    "\u0430da@example.com": "\u0430da@example.com",  # mixed scripts: still keyed, never lost
}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL"),
        ),
    ]
)
def scratch_url(request, tmp_path) -> Iterator[str]:
    """An empty database of its own: never the shared test schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migration.db'}"
        return
    name = f"gatehouse_mig_{uuid.uuid4().hex[:10]}"
    server = sa.make_url(normalise_database_url(TEST_DATABASE_URL))
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migrate(url: str, command: str, revision: str) -> None:
    """Run alembic through the app, as `flask --app manage db upgrade` does."""
    app = create_app("testing", {"DATABASE_URL": url})
    with app.app_context():
        try:
            getattr(flask_migrate, command)(revision=revision)
        finally:
            db.engine.dispose()


def old_style(typed: str) -> tuple[str, str]:
    """What the code before this revision stored: (normalized, normalized.lower())."""
    normalized = validate_email(typed, check_deliverability=False).normalized
    return normalized, normalized.lower()


def insert(url: str, emails: list[str]) -> dict[str, uuid.UUID]:
    """Insert old-style rows; returns typed address -> account id."""
    now = datetime.now(UTC)
    ids = {}
    rows = []
    for typed in emails:
        email, key = old_style(typed)
        ids[typed] = uuid.uuid4()
        rows.append(
            {
                "id": ids[typed],
                "email": email,
                "email_key": key,
                "password_hash": "$argon2id$placeholder",
                "email_verified": False,
                "created_at": now,
                "updated_at": now,
                "password_changed_at": now,
            }
        )
    engine = sa.create_engine(normalise_database_url(url))
    with engine.begin() as connection:
        connection.execute(accounts.insert(), rows)
    engine.dispose()
    return ids


def state(url: str) -> tuple[dict[uuid.UUID, tuple[str, str]], str]:
    """(account id -> (email, email_key), alembic revision)."""
    engine = sa.create_engine(normalise_database_url(url))
    with engine.connect() as connection:
        rows = connection.execute(sa.select(accounts.c.id, accounts.c.email, accounts.c.email_key))
        keys = {row.id: (row.email, row.email_key) for row in rows}
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    return keys, version


def test_upgrade_existing_rows_get_the_new_key_and_downgrade_restores_the_old(scratch_url):
    """DATA-02, LOG-03, OPS-04: full-width, case, sharp s, Turkish i, ligature, Kelvin sign and
    IDNA rows are re-keyed, addresses untouched; the downgrade gives back the old keys."""
    migrate(scratch_url, "upgrade", BEFORE)
    ids = insert(scratch_url, list(REKEYED))
    before, _ = state(scratch_url)

    migrate(scratch_url, "upgrade", REVISION)
    after, version = state(scratch_url)

    assert version == REVISION
    for typed, expected_key in REKEYED.items():
        email, key = after[ids[typed]]
        assert key == expected_key, typed
        assert email == before[ids[typed]][0]  # the display address is never rewritten

    migrate(scratch_url, "downgrade", BEFORE)
    restored, version = state(scratch_url)

    assert version == BEFORE
    assert restored == before


def test_upgrade_full_width_row_is_found_by_the_app_key(scratch_url):
    """LOG-03: after the migration, the app's key for any variant finds the old row."""
    from app.services import emails

    migrate(scratch_url, "upgrade", BEFORE)
    ids = insert(scratch_url, ["ＡＤＡ@example.com"])

    migrate(scratch_url, "upgrade", REVISION)
    after, _ = state(scratch_url)

    key = after[ids["ＡＤＡ@example.com"]][1]
    for variant in ["ada@example.com", "Ada@EXAMPLE.com", "ａｄａ@example.com"]:
        assert emails.email_lookup_key(variant) == key


def test_upgrade_colliding_rows_abort_with_their_ids_and_change_nothing(scratch_url):
    """DATA-01, DATA-02: two accounts that become one key are never merged or dropped: the
    migration stops, names the account ids (never an address) and leaves every row as it was."""
    migrate(scratch_url, "upgrade", BEFORE)
    ids = insert(
        scratch_url,
        ["ada@example.com", "ａｄａ@example.com", "Straße@example.com", "strasse@example.com"],
    )
    ids |= insert(scratch_url, ["ＧＲＡＣＥ@example.com"])  # would change, does not collide
    before, _ = state(scratch_url)

    with pytest.raises(Exception, match="email_key migration refused") as raised:
        migrate(scratch_url, "upgrade", REVISION)

    message = str(raised.value)
    for typed in ["ada@example.com", "ａｄａ@example.com", "Straße@example.com"]:
        assert str(ids[typed]) in message
    assert str(ids["ＧＲＡＣＥ@example.com"]) not in message
    assert "2 group(s)" in message
    assert "@" not in message and "example" not in message  # ids only, no address
    assert state(scratch_url) == (before, BEFORE)


def test_upgrade_row_without_a_valid_new_key_aborts_with_its_id(scratch_url):
    """Full-width full stops were accepted, but their NFKC form ".." is no address: the row is
    named for the operator, not silently left with a stale key."""
    migrate(scratch_url, "upgrade", BEFORE)
    ids = insert(scratch_url, ["ａ．．ｂ@example.com", "ada@example.com"])
    before, _ = state(scratch_url)

    with pytest.raises(Exception, match="no longer makes a valid key") as raised:
        migrate(scratch_url, "upgrade", REVISION)

    assert str(ids["ａ．．ｂ@example.com"]) in str(raised.value)
    assert str(ids["ada@example.com"]) not in str(raised.value)
    assert state(scratch_url) == (before, BEFORE)


def test_upgrade_on_an_empty_table_is_a_no_op(scratch_url):
    """OPS-04: the shared test schema and every fresh database run this revision."""
    migrate(scratch_url, "upgrade", REVISION)
    migrate(scratch_url, "downgrade", BEFORE)
    migrate(scratch_url, "upgrade", REVISION)

    assert state(scratch_url) == ({}, REVISION)


def test_upgrade_collision_through_the_cli_exits_non_zero_naming_ids(tmp_path):
    """What an operator sees from `flask --app manage db upgrade` in production."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    migrate(url, "upgrade", BEFORE)
    ids = insert(url, ["ada@example.com", "ＡＤＡ@example.com"])
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GATEHOUSE_", "JWT_", "FLASK_", "DATABASE", "MIGRATION", "REDIS"))
    }
    env.update(GATEHOUSE_ENV="production", DATABASE_URL=url)

    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "manage", "db", "upgrade", REVISION],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "EmailKeyCollision" in output
    assert all(str(account_id) in output for account_id in ids.values())
    assert "@example.com" not in output.casefold()
    assert state(url)[1] == BEFORE


def load_migration():
    spec = importlib.util.spec_from_file_location("email_key_migration", MIGRATION_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_update_of_a_row_changed_meanwhile_aborts(scratch_url):
    """OPS-04: a row the app changed between the migration's read and its write fails the
    compare-and-set, and the run stops instead of overwriting it."""
    module = load_migration()
    migrate(scratch_url, "upgrade", BEFORE)
    ids = insert(scratch_url, ["ＧＲＡＣＥ@example.com", "ＡＤＡ@example.com"])
    engine = sa.create_engine(normalise_database_url(scratch_url))
    grace, ada = ids["ＧＲＡＣＥ@example.com"], ids["ＡＤＡ@example.com"]

    with engine.begin() as connection:
        module._update(connection, [(grace, "ｇｒａｃｅ@example.com", "grace@example.com")])
    stale = [(ada, "ｇｏｎｅ@example.com", "ada@example.com"), (grace, "x", "y")]
    with (
        pytest.raises(module.EmailKeyCollision, match="changed while it ran"),
        engine.begin() as connection,
    ):
        module._update(connection, stale)
    engine.dispose()

    keys = {account_id: key for account_id, (_, key) in state(scratch_url)[0].items()}
    assert keys == {grace: "grace@example.com", ada: "ａｄａ@example.com"}


def test_frozen_key_in_the_migration_matches_the_app_rule():
    """The migration keeps its own copy of the rule (so later app changes cannot change what it
    did); today both must agree, on every example the unit tests use."""
    from app.services import emails

    module = load_migration()
    samples = [
        *REKEYED,
        "STRAẞE@example.com",
        "adı@example.com",
        "山田たろう@example.jp",
        "ǰane@example.com",
        "иван@пример.рф",
        "josé.müller@bücher.example",
    ]

    for typed in samples:
        stored, _ = old_style(typed)
        assert module._new_key(stored) == emails.email_key(stored), typed
        assert module._new_key(stored) == emails.email_key(typed), typed
    assert module._new_key("ａ．．ｂ@example.com") is None
