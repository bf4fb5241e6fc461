"""Account lockout without a denial-of-service lever (SECURITY.md RL-01…RL-03, RL-06, RL-07)."""

import os

import pytest
from sqlalchemy import select, text

from app.extensions import db
from app.models import Account
from app.services import lockout
from app.services.devices import HEADER
from tests.helpers import STRONG_PASSWORD, ApiActions, assert_problem, snapshot
from tests.test_concurrency import race

LOGIN = "/api/v1/auth/login"
WRONG = "not the password at all"


@pytest.fixture
def app(make_app):
    return make_app("production", LOCKOUT_FAILURES=3, LOCKOUT_SECONDS=300, LOCKOUT_MAX_SECONDS=900)


@pytest.fixture
def clock(app, clock_factory):
    return clock_factory(app)


@pytest.fixture
def owner(client):
    ApiActions(client).signup()
    return client


def login(client, password=WRONG, email="ada@example.com", device=None, address="10.0.0.9"):
    return client.post(
        LOGIN,
        json={"email": email, "password": password},
        headers={HEADER: device} if device else {},
        environ_overrides={"REMOTE_ADDR": address},
    )


def fail(client, times, **kwargs):
    return [login(client, **kwargs).status_code for _ in range(times)]


def answer_shape(response) -> tuple:
    """Everything a client sees, but the request id and its echoes."""
    body = {k: v for k, v in response.get_json().items() if k != "request_id"}
    headers = {k: v for k, v in response.headers if k not in ("X-Request-ID", "Content-Length")}
    return response.status_code, body, headers


def account_row(app):
    with app.app_context():
        account = db.session.scalar(select(Account))
        return account.failed_login_count, account.locked_until, account.lock_count


def test_failures_reaching_the_threshold_lock_the_account(app, owner, clock):
    """D-5: the third wrong password locks; the right one is then refused too."""
    assert fail(owner, 3) == [401, 401, 401]

    refused = login(owner, password=STRONG_PASSWORD)

    assert_problem(refused, 401, "invalid_credentials")
    _, locked_until, lock_count = account_row(app)
    assert locked_until is not None and lock_count == 1


def test_locked_account_answers_byte_for_byte_like_a_wrong_password(app, owner, clock):
    """RL-02: no Retry-After, no other code, the same headers: a lock is not told apart."""
    fail(owner, 3)

    locked = login(owner, password=STRONG_PASSWORD)
    wrong = login(owner, email="nobody@example.com")

    assert answer_shape(locked) == answer_shape(wrong)
    assert "Retry-After" not in locked.headers


def test_failures_count_per_account_across_case_variants_and_addresses(app, owner, clock):
    """RL-01: the account is counted, not the client: new addresses and spellings don't help."""
    for index, email in enumerate(["ADA@example.com", "Ada@Example.com", "ada@EXAMPLE.COM"]):
        login(owner, email=email, address=f"198.51.100.{index}")

    assert_problem(login(owner, password=STRONG_PASSWORD), 401, "invalid_credentials")


def test_attempts_during_a_lock_neither_count_nor_extend_it(app, owner, clock):
    """RL-03: the lock ends when it was set to end, whatever happened meanwhile."""
    fail(owner, 3)
    _, locked_until, _ = account_row(app)
    clock.advance(seconds=200)
    fail(owner, 5)

    assert account_row(app)[1] == locked_until
    clock.advance(seconds=101)
    assert login(owner, password=STRONG_PASSWORD).status_code == 200


def test_each_lock_after_another_is_longer_up_to_the_cap(app, owner, clock):
    """RL-03: repeat locks grow (300 s, 600 s, then the 900 s cap), never permanent."""
    lengths = []
    for _ in range(4):
        fail(owner, 3)
        _, locked_until, _ = account_row(app)
        lengths.append(round((locked_until - clock.now()).total_seconds()))
        clock.current = locked_until
        clock.advance(seconds=1)

    assert lengths == [300, 600, 900, 900]
    assert login(owner, password=STRONG_PASSWORD).status_code == 200


def test_a_success_resets_the_count_and_the_growth(app, owner, clock):
    fail(owner, 2)
    assert login(owner, password=STRONG_PASSWORD).status_code == 200
    fail(owner, 2)

    assert account_row(app) == (2, None, 0)
    assert login(owner, password=STRONG_PASSWORD).status_code == 200


def test_failures_for_an_unknown_email_store_nothing(app, owner, clock):
    """RL-04: no row, no counter, for an address without an account."""
    before = snapshot(app)

    fail(owner, 5, email="nobody@example.com")

    assert snapshot(app) == before


def test_a_device_that_logged_in_before_is_not_locked_out_by_others(app, owner, clock):
    """RL-03 (OWASP device cookies): the owner's device logs in while strangers lock the account."""
    device = login(owner, password=STRONG_PASSWORD).headers[HEADER]
    fail(owner, 3, address="203.0.113.7")  # an attacker without the device token
    assert login(owner, password=STRONG_PASSWORD).status_code == 401

    trusted = login(owner, password=STRONG_PASSWORD, device=device)

    assert trusted.status_code == 200
    assert trusted.headers[HEADER] != device  # a fresh one for next time


def test_a_recognised_devices_failures_count_against_the_device_alone(make_app, clock_factory):
    app = make_app("production", LOCKOUT_FAILURES=3, DEVICE_FAILURES="2/hour")
    clock_factory(app)
    client = app.test_client()
    ApiActions(client).signup()
    device = login(client, password=STRONG_PASSWORD).headers[HEADER]

    fail(client, 2, device=device)

    assert account_row(app)[0] == 0  # the account's count did not move
    fail(client, 3)  # strangers lock the account
    assert login(client, password=STRONG_PASSWORD, device=device).status_code == 401


@pytest.mark.parametrize("kind", ["forged", "other-account", "garbage"])
def test_a_device_token_that_is_not_this_accounts_does_not_pass_a_lock(app, owner, clock, kind):
    ApiActions(owner).signup("eve@example.com")
    tokens = {
        "forged": "eyJhIjoiMSJ9.forged.signature",
        "other-account": login(owner, password=STRONG_PASSWORD, email="eve@example.com").headers[
            HEADER
        ],
        "garbage": "x" * 600,
    }
    fail(owner, 3)

    assert login(owner, password=STRONG_PASSWORD, device=tokens[kind]).status_code == 401


def test_wrong_current_password_on_change_counts_towards_the_lock(app, owner, clock):
    """RL-06: every password check counts, 400 current_password_incorrect each time."""
    tokens = ApiActions(owner).login()
    for _ in range(3):
        response = owner.post(
            "/api/v1/accounts/me/password",
            json={"current_password": WRONG, "new_password": "another long passphrase"},
            headers=tokens.headers,
        )
        assert_problem(response, 400, "current_password_incorrect")

    assert_problem(login(owner, password=STRONG_PASSWORD), 401, "invalid_credentials")


def test_locked_account_refuses_even_the_right_password_on_deletion(app, owner, clock):
    tokens = ApiActions(owner).login()
    fail(owner, 3)

    response = owner.delete(
        "/api/v1/accounts/me", json={"password": STRONG_PASSWORD}, headers=tokens.headers
    )

    assert_problem(response, 400, "current_password_incorrect")
    assert account_row(app)[1] is not None


def test_unlock_lifts_a_lock_at_once(app, owner, clock):
    """For the admin API and the password reset to come."""
    fail(owner, 3)
    with app.app_context():
        account_id = db.session.scalar(select(Account.id))
        lockout.unlock(account_id)

    assert login(owner, password=STRONG_PASSWORD).status_code == 200


def test_lock_by_an_admin_holds_until_its_end(app, owner, clock):
    with app.app_context():
        lockout.lock(db.session.scalar(select(Account.id)), seconds=60)

    assert_problem(login(owner, password=STRONG_PASSWORD), 401, "invalid_credentials")
    clock.advance(seconds=61)
    assert login(owner, password=STRONG_PASSWORD).status_code == 200


PARALLEL = 50 if os.environ.get("TEST_DATABASE_URL") else 10


def test_parallel_wrong_logins_keep_an_exact_count(make_app):
    """RL-07: failed = failed + 1 … RETURNING; no lost update under parallel failures."""
    # Room for every racer: no hashing-slot or pool timeout may answer 503 here.
    app = make_app(
        "production",
        LOCKOUT_FAILURES=10_000,
        ARGON2_QUEUE_TIMEOUT_SECONDS=120,
        DATABASE_POOL_SIZE=PARALLEL,
        DATABASE_POOL_TIMEOUT_SECONDS=60,
    )
    ApiActions(app.test_client()).signup()

    responses = race([app], PARALLEL, lambda client, index: login(client))

    assert {r.status_code for r in responses} == {401}
    with app.app_context():
        count = db.session.execute(text("SELECT failed_login_count FROM accounts")).scalar_one()
    assert count == PARALLEL
