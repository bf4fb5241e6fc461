"""The audit log: what is recorded, in which transaction, the hash chain, its verification,
purges, and parallel writers (SECURITY.md ADM-06, ADM-07, D-8, DATA-01, DATA-03, LOG-01)."""

from __future__ import annotations

import itertools
import logging
import os
import uuid

import pytest
from sqlalchemy import delete, insert, select, text, update

from app.extensions import db
from app.models import AuditChainHead, AuditCheckpoint, AuditEvent
from app.services import audit
from app.services.unit_of_work import unit_of_work
from tests.helpers import STRONG_PASSWORD, mailed_token
from tests.test_concurrency import race

REPEATS = 50 if os.environ.get("TEST_DATABASE_URL") else 5
NEW_PASSWORD = "a different horse battery staple"


def records(app) -> list[dict]:
    """Every audit record, by sequence, as column → value."""
    with app.app_context():
        rows = db.session.execute(select(AuditEvent).order_by(AuditEvent.sequence)).scalars()
        found = [
            {column.name: getattr(row, column.name) for column in AuditEvent.__table__.columns}
            for row in rows
        ]
        db.session.remove()
    return found


def events(app, name: str | None = None) -> list[dict]:
    return [row for row in records(app) if name is None or row["event"] == name]


def execute(app, statement) -> None:
    """Run a statement straight on the database, as someone with write access would."""
    with app.app_context():
        db.session.execute(statement)
        db.session.commit()
        db.session.remove()


def cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["audit", *args])


def some_records(app, api, count: int = 5) -> list[dict]:
    """A few records from real requests: a sign-up and wrong logins."""
    api.signup()
    for _ in range(count - 1):
        app.test_client().post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": "wrong password"}
        )
    found = records(app)
    assert len(found) == count
    return found


def forged(previous: dict, sequence: int, **changes) -> dict:
    """A record that links correctly after ``previous`` and carries a correct hash of its own."""
    row = {**previous, "sequence": sequence, "prev_hash": previous["hash"], **changes}
    row["hash"] = audit.content_hash(row)
    return row


# --- What is recorded ------------------------------------------------------------------------


def test_signup_records_user_created_with_the_request_it_came_from(app, client):
    """ADM-06: time, event, actor, subject, IP, user agent, request id, outcome."""
    response = client.post(
        "/api/v1/accounts",
        json={"email": "ada@example.com", "password": STRONG_PASSWORD},
        headers={"User-Agent": "Gatehouse-Test/1.0", "X-Request-ID": "req-signup-1"},
    )

    [row] = events(app, "user_created")
    account_id = uuid.UUID(response.get_json()["id"])
    assert (row["actor_id"], row["subject_id"], row["outcome"]) == (
        account_id,
        account_id,
        "success",
    )
    assert (row["client_ip"], row["user_agent"], row["request_id"]) == (
        "127.0.0.1",
        "Gatehouse-Test/1.0",
        "req-signup-1",
    )
    assert row["occurred_at"].tzinfo is not None


def test_user_agent_is_kept_printable_and_at_most_255_characters(app, client):
    client.post(
        "/api/v1/accounts",
        json={"email": "ada@example.com", "password": STRONG_PASSWORD},
        headers={"User-Agent": "A\u200bgent/" + "x" * 400},
    )

    [row] = events(app, "user_created")
    assert row["user_agent"].startswith("Agent/x")
    assert len(row["user_agent"]) == 255


def test_failed_login_of_an_unknown_address_is_recorded_with_a_keyed_digest_only(app, client):
    """LOG-01, D-8: the reason is kept internally; the address only as an HMAC."""
    response = client.post(
        "/api/v1/auth/login", json={"email": "Nobody@Example.com", "password": "whatever pass"}
    )

    assert response.status_code == 401
    [row] = events(app, "authn_login_fail")
    assert (row["actor_id"], row["subject_id"], row["outcome"]) == (None, None, "failure")
    assert row["details"]["reason"] == "unknown_account"
    digest = row["details"]["email_hmac"]
    assert len(digest) == 64 and "nobody" not in str(row).lower()
    with app.app_context():
        assert digest == audit.email_reference("nobody@example.com")  # same address, same digest
        assert digest != audit.email_reference("somebody@example.com")
    assert "reason" not in response.get_json() and "unknown" not in response.get_data(as_text=True)


def test_wrong_password_is_recorded_with_its_reason_against_the_account(app, api, client):
    """LOG-01: the answer is generic, the record says why."""
    account_id = uuid.UUID(api.signup()["id"])

    client.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": "wrong pass"})

    [row] = events(app, "authn_login_fail")
    assert row["subject_id"] == account_id
    assert row["details"] == {"reason": "wrong_password"}


def test_login_refresh_and_logout_are_each_recorded_once(app, api, client):
    """ADM-06: refresh is an audited event too."""
    api.signup()
    tokens = api.login()
    refreshed = api.refresh(tokens.refresh_token).get_json()

    client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
    )

    names = [row["event"] for row in records(app)]
    assert names == ["user_created", "authn_login_success", "authn_token_refresh", "session_end"]
    assert events(app, "session_end")[0]["details"]["reason"] == "logout"


def test_refresh_token_reuse_is_recorded_with_the_session_it_ended(app, api):
    """SES-03: audit ``authn_token_reuse``."""
    api.signup()
    tokens = api.login()
    api.refresh(tokens.refresh_token)

    assert api.refresh(tokens.refresh_token).status_code == 401

    [reuse] = events(app, "authn_token_reuse")
    [ended] = [row for row in events(app, "session_end")]
    assert reuse["outcome"] == "failure"
    assert reuse["details"]["session_id"] == ended["details"]["session_id"]
    assert ended["details"]["reason"] == "refresh_token_reused"


def test_lockout_is_recorded_when_it_starts(make_app):
    """ADM-06: lockout and unlock."""
    app = make_app(LOCKOUT_FAILURES=3)
    client = app.test_client()
    client.post("/api/v1/accounts", json={"email": "ada@example.com", "password": STRONG_PASSWORD})
    for _ in range(3):
        client.post("/api/v1/auth/login", json={"email": "ada@example.com", "password": "nope"})

    [lock] = events(app, "authn_login_lock")
    assert lock["outcome"] == "failure" and lock["details"]["seconds"] > 0


def test_a_committed_password_change_has_exactly_one_record(app, api, client):
    """ADM-06: a committed change always has its record, in the same transaction."""
    tokens = api.signup_and_login()

    response = client.post(
        "/api/v1/accounts/me/password",
        json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD},
        headers=tokens.headers,
    )

    assert response.status_code == 204
    assert len(events(app, "authn_password_change")) == 1


def test_a_password_change_refused_by_the_policy_leaves_no_record(app, api, client):
    """ADM-06, DATA-01: a change that did not happen is not recorded as done."""
    tokens = api.signup_and_login()
    before = records(app)

    response = client.post(
        "/api/v1/accounts/me/password",
        json={"current_password": STRONG_PASSWORD, "new_password": "short"},
        headers=tokens.headers,
    )

    assert response.status_code == 400
    assert records(app) == before


def test_a_rolled_back_unit_of_work_leaves_no_record_and_logs_nothing(app, caplog):
    """ADM-06: the record commits or vanishes with the change; the line follows the commit."""
    with app.app_context(), caplog.at_level(logging.INFO, logger="gatehouse.security"):
        with pytest.raises(RuntimeError), unit_of_work() as uow:
            audit.record(uow, "authn_password_change", subject_id=uuid.uuid4())
            raise RuntimeError("the change failed")
        db.session.remove()

    assert records(app) == []
    assert "authn_password_change" not in caplog.messages


def test_a_nested_block_that_rolls_back_takes_only_its_own_record(app):
    """ADM-06: a savepoint's failure undoes its record, not the outer block's."""
    with app.app_context():
        with unit_of_work() as outer:
            audit.record(outer, "user_created")
            with pytest.raises(RuntimeError), unit_of_work() as inner:
                audit.record(inner, "authn_password_change")
                raise RuntimeError("the inner part failed")
            audit.record(outer, "user_email_verified")
        db.session.remove()

    assert [row["event"] for row in records(app)] == ["user_created", "user_email_verified"]
    assert [row["sequence"] for row in records(app)] == [1, 2]


def test_each_record_is_logged_once_after_the_commit_with_its_fields(app, api, caplog):
    """OPS-02: the structured line keeps the vocabulary name and fields it had before."""
    api.signup()
    with caplog.at_level(logging.INFO, logger="gatehouse.security"):
        api.login()

    [line] = [r for r in caplog.records if getattr(r, "event", None) == "authn_login_success"]
    [row] = events(app, "authn_login_success")
    assert line.account_id == str(row["subject_id"])
    assert line.session_id == row["details"]["session_id"]
    assert line.amr == "pwd"


def test_details_naming_a_secret_are_refused(app):
    """ADM-06: never a password, token, hash or clear email."""
    with app.app_context(), unit_of_work() as uow:
        for key in ("password", "refresh_token", "token_hash", "email"):
            with pytest.raises(ValueError):
                audit.record(uow, "user_created", details={key: "x"})


def test_no_record_holds_a_password_token_hash_or_clear_email(app, api, client):
    """ADM-06, DATA-03, D-8: scan every column of every record after a full flow."""
    secrets: list[str] = [STRONG_PASSWORD, NEW_PASSWORD, "ada@example.com", "new@example.com"]
    tokens = api.signup_and_login()
    secrets += [tokens.access_token, tokens.refresh_token]
    refreshed = api.refresh(tokens.refresh_token).get_json()
    headers = {"Authorization": f"Bearer {refreshed['access_token']}"}
    secrets += [refreshed["access_token"], refreshed["refresh_token"]]
    pat = client.post(
        "/api/v1/accounts/me/tokens",
        json={"name": "ci", "scopes": ["activity:read"]},
        headers=headers,
    ).get_json()
    secrets.append(pat["token"])
    client.delete(f"/api/v1/accounts/me/tokens/{pat['id']}", headers=headers)
    client.post(
        "/api/v1/accounts/me/email",
        json={"new_email": "new@example.com", "password": STRONG_PASSWORD},
        headers=headers,
    )
    change = mailed_token(app, "new@example.com", "email_change_confirm")
    client.post("/api/v1/accounts/me/email/confirm", json={"token": change})
    client.post("/api/v1/auth/password-reset", json={"email": "new@example.com"})
    reset = mailed_token(app, "new@example.com", "reset_password")
    client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": reset, "new_password": NEW_PASSWORD}
    )
    secrets += [change, reset]
    last = api.login("new@example.com", NEW_PASSWORD)
    client.delete("/api/v1/accounts/me", json={"password": NEW_PASSWORD}, headers=last.headers)

    found = records(app)
    names = {row["event"] for row in found}
    assert {
        "user_created",
        "authn_login_success",
        "authn_token_refresh",
        "authn_token_created",
        "authn_token_revoked",
        "user_email_change_request",
        "user_email_change",
        "password_reset_request",
        "password_reset_link_queued",
        "authn_password_reset",
        "session_end",
        "user_deleted",
    } <= names
    dump = repr(found).lower()
    for secret in secrets:
        assert secret.lower() not in dump
    assert "$argon2" not in dump and "@" not in dump
    with app.app_context():
        stored = db.session.execute(text("SELECT * FROM audit_events")).all()
    raw = repr(stored).lower()
    assert all(secret.lower() not in raw for secret in secrets) and "@" not in raw


def test_records_of_a_deleted_account_stay_and_the_chain_verifies(app, api, client):
    """D-8: no foreign key to the account; deletion keeps the chain whole."""
    tokens = api.signup_and_login()
    account_id = uuid.UUID(api.me(tokens.access_token).get_json()["id"])

    client.delete("/api/v1/accounts/me", json={"password": STRONG_PASSWORD}, headers=tokens.headers)

    assert {row["event"] for row in records(app) if row["subject_id"] == account_id} >= {
        "user_created",
        "authn_login_success",
        "user_deleted",
    }
    assert cli(app, "verify").exit_code == 0


# --- The chain ------------------------------------------------------------------------------


def test_records_are_numbered_without_gaps_and_each_links_to_the_one_before(app, api):
    """ADM-07."""
    found = some_records(app, api)

    assert [row["sequence"] for row in found] == [1, 2, 3, 4, 5]
    assert found[0]["prev_hash"] == audit.GENESIS_HASH
    for before, after in itertools.pairwise(found):
        assert after["prev_hash"] == before["hash"]
    assert all(audit.content_hash(row) == row["hash"] for row in found)
    with app.app_context():
        head = db.session.get(AuditChainHead, audit.HEAD_ID)
        assert (head.sequence, head.hash) == (5, found[-1]["hash"])


def test_verify_passes_on_an_untouched_chain(app, api):
    """ADM-07: the control case for the tamper tests below."""
    some_records(app, api)

    result = cli(app, "verify")

    assert result.exit_code == 0, result.output
    assert "5 record(s)" in result.output


def test_verify_names_a_record_edited_in_the_database(app, api):
    """ADM-07: someone turns a failed login into a success, straight in the table."""
    some_records(app, api)
    execute(app, update(AuditEvent).where(AuditEvent.sequence == 3).values(outcome="success"))

    result = cli(app, "verify")

    assert result.exit_code == 1
    assert "sequence 3:" in result.output and "altered" in result.output


def test_verify_names_the_record_after_one_edited_with_its_hash_recomputed(app, api):
    """ADM-07: a consistent edit of one record breaks the next one's link."""
    found = some_records(app, api)
    edited = {**found[2], "outcome": "success"}
    edited["hash"] = audit.content_hash(edited)
    execute(
        app,
        update(AuditEvent)
        .where(AuditEvent.sequence == 3)
        .values(outcome="success", hash=edited["hash"]),
    )

    result = cli(app, "verify")

    assert result.exit_code == 1
    assert "sequence 4:" in result.output and "link" in result.output


def test_verify_names_a_deleted_record(app, api):
    """ADM-07: a gap in the sequence."""
    some_records(app, api)
    execute(app, delete(AuditEvent).where(AuditEvent.sequence == 2))

    result = cli(app, "verify")

    assert result.exit_code == 1
    assert "sequence 3:" in result.output and "2 to 2 are missing" in result.output


def test_verify_names_records_deleted_from_the_end(app, api):
    """ADM-07: the head still names the last record."""
    some_records(app, api)
    execute(app, delete(AuditEvent).where(AuditEvent.sequence >= 4))

    result = cli(app, "verify")

    assert result.exit_code == 1
    assert "sequence 4:" in result.output and "missing" in result.output


def test_verify_names_a_record_inserted_after_the_head(app, api):
    """ADM-07: a well-formed record appended by hand, without moving the head."""
    found = some_records(app, api)
    execute(app, insert(AuditEvent).values(**forged(found[-1], 6, event="user_created")))

    result = cli(app, "verify")

    assert result.exit_code == 1
    assert "sequence 6:" in result.output and "inserted" in result.output


def test_verify_names_where_a_record_was_inserted_in_the_middle(app, api):
    """ADM-07: the later records renumbered to make room: the first of them no longer matches
    its hash (the sequence is part of it); a well-formed forgery cannot hide the seam."""
    found = some_records(app, api)
    execute(
        app,
        update(AuditEvent)
        .where(AuditEvent.sequence >= 3)
        .values(sequence=AuditEvent.sequence + 100),
    )
    execute(
        app,
        update(AuditEvent)
        .where(AuditEvent.sequence > 100)
        .values(sequence=AuditEvent.sequence - 99),
    )
    execute(app, insert(AuditEvent).values(**forged(found[1], 3, event="user_email_verified")))
    execute(app, update(AuditChainHead).values(sequence=6))

    result = cli(app, "verify")

    assert result.exit_code == 1
    assert "sequence 4:" in result.output


# --- Retention ------------------------------------------------------------------------------


def test_purge_deletes_old_records_and_the_rest_still_verifies(app, api, clock):
    """ADM-07: a checkpoint anchors what is left."""
    some_records(app, api, count=3)
    clock.advance(days=400)
    app.test_client().post("/api/v1/auth/login", json={"email": "x@example.com", "password": "p"})

    result = cli(app, "purge")

    assert result.exit_code == 0, result.output
    assert "purged 3" in result.output
    assert [row["sequence"] for row in records(app)] == [4]
    with app.app_context():
        checkpoint = db.session.scalars(select(AuditCheckpoint)).one()
        assert (checkpoint.sequence, checkpoint.purged) == (3, 3)
    assert cli(app, "verify").exit_code == 0


def test_purge_keeps_records_within_the_retention_period(make_app, clock_factory):
    app = make_app(AUDIT_RETENTION_DAYS=30)
    clock = clock_factory(app)
    client = app.test_client()
    client.post("/api/v1/auth/login", json={"email": "x@example.com", "password": "p"})
    clock.advance(days=29)

    assert "purged 0" in cli(app, "purge").output
    assert len(records(app)) == 1


def test_verify_fails_when_the_checkpoint_is_deleted(app, api, clock):
    """ADM-07: the remaining records no longer link to the genesis."""
    some_records(app, api, count=3)
    clock.advance(days=400)
    app.test_client().post("/api/v1/auth/login", json={"email": "x@example.com", "password": "p"})
    cli(app, "purge")
    execute(app, delete(AuditCheckpoint))

    result = cli(app, "verify")

    assert result.exit_code == 1
    assert "sequence 4:" in result.output


def test_purge_refuses_to_delete_a_broken_chain(app, api, clock):
    """ADM-07: a purge never hides an altered record."""
    some_records(app, api, count=3)
    execute(app, update(AuditEvent).where(AuditEvent.sequence == 2).values(outcome="success"))
    clock.advance(days=400)

    result = cli(app, "purge")

    assert result.exit_code == 1
    assert "sequence 2" in result.output
    assert len(records(app)) == 3


def test_appends_after_a_purge_of_everything_continue_the_chain(app, api, clock):
    """ADM-07: the head survives the records it named."""
    some_records(app, api, count=2)
    clock.advance(days=400)
    cli(app, "purge")

    app.test_client().post("/api/v1/auth/login", json={"email": "x@example.com", "password": "p"})

    [row] = records(app)
    assert row["sequence"] == 3
    assert cli(app, "verify").exit_code == 0


# --- Parallel writers -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [8])
def test_parallel_writers_never_fork_the_chain(make_app, n):
    """ADM-07: requests released at one barrier each append; the chain stays one line, numbered
    without gaps or duplicates, and verifies (50 repeats on PostgreSQL)."""
    apps = [make_app(), make_app()]
    apps[0].test_client().post(
        "/api/v1/accounts", json={"email": "ada@example.com", "password": STRONG_PASSWORD}
    )

    def attempt(client, index):
        # Unknown addresses (an append alone) and wrong passwords (an append after a lockout
        # update) mixed, so appends meet other work in their transactions.
        email = "ada@example.com" if index % 2 else f"nobody{index}@example.com"
        return client.post("/api/v1/auth/login", json={"email": email, "password": "wrong pw"})

    for _ in range(REPEATS):
        responses = race(apps, n, attempt)
        assert {response.status_code for response in responses} == {401}

    found = records(apps[0])
    assert [row["sequence"] for row in found] == list(range(1, len(found) + 1))
    locks = sum(row["event"] == "authn_login_lock" for row in found)
    assert len(found) == 1 + REPEATS * n + locks
    result = cli(apps[0], "verify")
    assert result.exit_code == 0, result.output
