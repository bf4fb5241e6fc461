"""Two instances behind nginx share what must be shared (issue #18, SECURITY.md JWT-06, RL-01,
RL-05, SES-04, REL-02).

``a`` and ``b`` call one instance each, straight; ``balancer`` calls nginx (tests/cluster/
conftest.py). Each test uses accounts and client addresses of its own.
"""

from __future__ import annotations

import threading
import time
import uuid

import requests
from sqlalchemy import text

from scripts.cluster import Cluster
from tests.cluster.conftest import (
    LOCKOUT_FAILURES,
    LOGIN_LIMIT_PER_IP,
    PASSWORD,
    Api,
    client_address,
)


def new_email(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:10]}@example.com"


def signed_up(api: Api, what: str) -> str:
    email = new_email(what)
    answer = api.sign_up(email)
    assert answer.status_code == 201, answer.text
    return email


def test_logout_through_one_instance_is_rejected_on_the_other_at_once(
    a: Api, b: Api, balancer: Api
) -> None:
    """JWT-06: a dead session's token fails at once on every instance, and through nginx."""
    email = signed_up(a, "logout")
    access = b.tokens(email)["access_token"]
    for api in (a, b, balancer):
        assert api.call("GET", "/accounts/me", token=access).status_code == 200

    assert a.call("POST", "/auth/logout", token=access).status_code == 204

    on_b = b.call("GET", "/accounts/me", token=access)
    assert on_b.status_code == 401, on_b.text
    assert on_b.json()["code"] == "invalid_token"
    assert a.call("GET", "/accounts/me", token=access).status_code == 401
    # nginx alternates between the two: several calls reach both.
    through = [balancer.call("GET", "/accounts/me", token=access).status_code for _ in range(4)]
    assert through == [401] * 4


def test_login_rate_limit_counts_across_instances(a: Api, b: Api) -> None:
    """RL-05: instances share counts: logins from one address alternate between the two
    instances, and the limit is reached at the combined count, not at each instance's."""
    address = client_address()
    statuses = []
    for attempt in range(LOGIN_LIMIT_PER_IP + 1):
        api = (a, b)[attempt % 2]
        body = {"email": new_email("limited"), "password": "not the password"}
        statuses.append(api.call("POST", "/auth/login", body, client=address).status_code)

    assert statuses == [401] * LOGIN_LIMIT_PER_IP + [429]
    # The other instance agrees at once.
    other = (a, b)[(LOGIN_LIMIT_PER_IP + 1) % 2]
    body = {"email": new_email("limited"), "password": "not the password"}
    refused = other.call("POST", "/auth/login", body, client=address)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"]
    # Another address is not limited: the count is the address's.
    assert a.login(new_email("other")).status_code == 401


def test_forged_forwarded_for_through_the_balancer_does_not_dodge_the_limit(
    balancer: Api,
) -> None:
    """RL-05: through nginx (TRUSTED_PROXY_HOPS=1) the instances believe only the address nginx
    appends; a fresh forged X-Forwarded-For on every request still meets the limit."""
    statuses = [
        balancer.call(
            "POST",
            "/auth/login",
            {"email": new_email("forged"), "password": "not the password"},
            client=client_address(),
        ).status_code
        for _ in range(LOGIN_LIMIT_PER_IP + 1)
    ]
    assert statuses == [401] * LOGIN_LIMIT_PER_IP + [429]


def test_lockout_counts_failures_across_instances(a: Api, b: Api) -> None:
    """RL-01: wrong passwords sent to both instances add up to one count per account: after
    LOCKOUT_FAILURES of them, alternating, the right password is refused on both."""
    control = signed_up(a, "control")
    for attempt in range(LOCKOUT_FAILURES - 1):
        assert (a, b)[attempt % 2].login(control, "wrong password!").status_code == 401
    assert b.login(control).status_code == 200  # one failure short: not locked

    email = signed_up(a, "lockout")
    for attempt in range(LOCKOUT_FAILURES):
        assert (a, b)[attempt % 2].login(email, "wrong password!").status_code == 401

    for api in (a, b):
        refused = api.login(email)
        assert refused.status_code == 401, refused.text
        assert refused.json()["code"] == "invalid_credentials"


def race(apis: list[Api], refresh_token: str) -> list[int]:
    """Every api presents ``refresh_token`` at once (threads released at a barrier)."""
    barrier = threading.Barrier(len(apis))
    statuses: list[int] = []
    lock = threading.Lock()

    def present(api: Api) -> None:
        barrier.wait()
        answer = api.call("POST", "/auth/refresh", {"refresh_token": refresh_token})
        with lock:
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=present, args=(api,)) for api in apis]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(statuses)


def test_refresh_race_across_two_instances_has_exactly_one_winner(a: Api, b: Api) -> None:
    """SES-04: one refresh token presented at once by 10 clients, half to each instance: one
    200, the rest 401, no 5xx; 20 rounds."""
    email = signed_up(a, "race")
    racers = 10
    for round_number in range(20):
        refresh_token = (a, b)[round_number % 2].tokens(email)["refresh_token"]
        # A connection each, opened before the barrier: the requests leave together.
        apis = [Api((a, b)[i % 2].base) for i in range(racers)]
        for api in apis:
            api.http.get(api.base + "/healthz", timeout=10)

        statuses = race(apis, refresh_token)

        assert statuses == [200] + [401] * (racers - 1), f"round {round_number}"


def test_killing_an_instance_mid_signup_load_loses_no_committed_signup(
    cluster: Cluster, balancer: Api, database
) -> None:
    """REL-02: SIGKILL to one instance (master and workers) in the middle of sign-ups through
    nginx: every sign-up answered 201 is in the database, failures are bounded by the requests
    in flight at the kill, and nginx keeps answering with the other instance."""
    # The load goes on past nginx's fail_timeout (5 s, deploy/cluster/nginx.conf), when nginx
    # tries the dead instance again: that attempt must move on to the live one too.
    clients, kill_after, run_for, settle = 8, 1.5, 8.5, 1.0
    victim = cluster.instances[1]
    results: list[tuple[float, str, int | None]] = []  # (sent at, email, status or no answer)
    lock = threading.Lock()
    start = time.monotonic()

    def load() -> None:
        api = Api(balancer.base)
        while (sent := time.monotonic()) - start < run_for:
            email = new_email("kill")
            try:
                status: int | None = api.call(
                    "POST", "/accounts", {"email": email, "password": PASSWORD}
                ).status_code
            except requests.RequestException:
                status = None
            with lock:
                results.append((sent - start, email, status))

    threads = [threading.Thread(target=load) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(kill_after)
        killed_at = time.monotonic() - start
        victim.kill()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        cluster.restart(victim)

    created = [email for _, email, status in results if status == 201]
    failed = [(sent, status) for sent, _, status in results if status != 201]
    with database.connect() as connection:
        stored = set(
            connection.execute(
                text("SELECT email FROM accounts WHERE email = ANY(:emails)"), {"emails": created}
            ).scalars()
        )
    assert set(created) <= stored, f"answered 201, not stored: {set(created) - stored}"
    before = [r for r in results if r[0] < killed_at]
    after = [r for r in results if r[0] > killed_at + settle]
    assert before and after, "the load did not span the kill"
    assert len(failed) <= clients, f"{len(failed)} failed: {failed}"
    assert [status for _, _, status in after if status != 201] == [], "failures after the kill"
