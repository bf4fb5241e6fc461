"""What a request costs the database, on PostgreSQL: statements, transactions, pings (issue #18).

``GET /accounts/me`` is the path every resource server's call takes: one indexed read and no
transaction around it. Reads outside a unit of work run in autocommit; the unit of work that
follows them is still one transaction. Pooled connections are pinged only after idling.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, select, text

from app.extensions import db
from app.models import Account
from app.services.unit_of_work import unit_of_work
from config import normalise_database_url
from tests.conftest import TEST_DATABASE_URL
from tests.helpers import ApiActions, assert_problem

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PostgreSQL")


@contextmanager
def statements_of(app: Flask) -> Iterator[list[tuple[str, bool]]]:
    """Each statement the app's engine sends meanwhile, and whether it ran in autocommit."""
    seen: list[tuple[str, bool]] = []

    def record(connection, _cursor, statement, _parameters, _context, _many) -> None:
        seen.append((statement, connection.connection.dbapi_connection.autocommit))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_me_is_one_statement_outside_any_transaction(app: Flask, api: ApiActions) -> None:
    """Resolving the token reads the session, the account and its roles in one statement, in
    autocommit: no BEGIN/ROLLBACK round trips, no lazy load of the roles (JWT-06 still holds:
    the session row is read on every request)."""
    tokens = api.signup_and_login()
    assert api.me(tokens.access_token).status_code == 200  # records the session's first use

    with statements_of(app) as seen:
        response = api.me(tokens.access_token)

    assert response.status_code == 200
    assert response.get_json()["roles"] == ["user"]
    assert len(seen) == 1, seen
    assert seen[0][1] is True  # autocommit: psycopg sent no BEGIN, and no ROLLBACK follows


def test_a_unit_of_work_after_reads_is_still_one_transaction(app: Flask, api: ApiActions) -> None:
    """A read in autocommit, then a unit of work that writes and fails: nothing it wrote stays."""
    api.signup()
    with app.test_request_context():
        account = db.session.scalars(select(Account)).one()  # a read outside the block
        with pytest.raises(RuntimeError), unit_of_work() as uow:
            uow.session.execute(
                text("UPDATE accounts SET display_name = 'Changed' WHERE id = :id"),
                {"id": account.id},
            )
            raise RuntimeError("the operation fails after writing")
        db.session.remove()
        stored = db.session.scalars(select(Account.display_name)).one()
    assert stored != "Changed"


def test_statements_of_a_unit_of_work_run_in_a_transaction(app: Flask, api: ApiActions) -> None:
    """Refresh reads and writes inside one unit of work: none of its statements autocommits."""
    tokens = api.signup_and_login()
    with statements_of(app) as seen:
        assert api.refresh(tokens.refresh_token).status_code == 200
    assert seen and all(not autocommit for _, autocommit in seen), seen


def test_a_pooled_connection_handed_out_again_is_transactional(make_app) -> None:
    """Reads switch autocommit on for their session only: whoever takes the connection next
    (a migration, a CLI command's own connection) gets a transaction, not autocommit."""
    app = make_app(DATABASE_POOL_SIZE=1, DATABASE_MAX_OVERFLOW=0)  # the same connection again
    api = ApiActions(app.test_client())
    tokens = api.signup_and_login()
    assert api.me(tokens.access_token).status_code == 200  # records the first use: writes
    assert api.me(tokens.access_token).status_code == 200  # only reads
    with app.app_context(), db.engine.connect() as connection:
        assert connection.connection.dbapi_connection.autocommit is False


def _kill_pooled_connections(app: Flask) -> None:
    """End, from outside, the server side of the app's pooled connection(s)."""
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        db.session.remove()  # back to the pool
    outside = create_engine(normalise_database_url(TEST_DATABASE_URL))
    with outside.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    outside.dispose()


def test_a_connection_that_idled_is_pinged_and_replaced_when_broken(make_app) -> None:
    """A database restart breaks pooled connections: one that idled past
    ``DATABASE_PING_AFTER_IDLE_SECONDS`` is pinged before use and replaced, so the request
    succeeds (REL-01)."""
    app = make_app(DATABASE_PING_AFTER_IDLE_SECONDS=0)
    api = ApiActions(app.test_client())
    tokens = api.signup_and_login()
    _kill_pooled_connections(app)

    response = api.me(tokens.access_token)

    assert response.status_code == 200


def test_a_connection_in_steady_use_is_not_pinged(make_app) -> None:
    """Within the idle threshold there is no ping (the round trip it saves): a connection broken
    meanwhile fails one request with 503 problem+json, never a stack trace, and the pool drops
    it, so the next request succeeds."""
    app = make_app(DATABASE_PING_AFTER_IDLE_SECONDS=3600)
    api = ApiActions(app.test_client())
    tokens = api.signup_and_login()
    _kill_pooled_connections(app)

    assert_problem(api.me(tokens.access_token), 503, "service_unavailable")
    assert api.me(tokens.access_token).status_code == 200


def test_refresh_reads_account_and_roles_with_the_token(app: Flask, api: ApiActions) -> None:
    """The rotated access token names the account's roles: they come with the token's own read,
    not in lazy loads after it. Six statements: read, lock the session, spend the token (SES-04's
    compare-and-set), insert its successor, lock the audit chain's head, and append the record
    with the head's move in one statement (PostgreSQL's data-modifying WITH)."""
    tokens = api.signup_and_login()
    with statements_of(app) as seen:
        assert api.refresh(tokens.refresh_token).status_code == 200
    reads = [statement for statement, _ in seen if statement.lstrip().startswith("SELECT")]
    assert len(reads) == 1, reads
    assert len(seen) == 6, [statement[:60] for statement, _ in seen]
