"""Two Gatehouse instances behind nginx on real PostgreSQL and Redis (scripts/cluster.py).

The cluster runs once for the module, on a scratch PostgreSQL database of its own (created
beside TEST_DATABASE_URL's, migrated, dropped afterwards: the suite's ``test`` database is never
touched) and a Redis key prefix of its own (its keys deleted afterwards). Without PostgreSQL and
Redis (TEST_DATABASE_URL, REDIS_URL) or without nginx the tests skip, saying why; with
GATEHOUSE_REQUIRE_CLUSTER=1 (CI) and PostgreSQL and Redis configured, a missing nginx or a
cluster that does not start fails them instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, make_url, text

from bench.run import delete_redis_keys
from config import normalise_database_url
from scripts.cluster import (
    Cluster,
    ClusterError,
    cluster_environ,
    free_port,
    migrate,
    refusal,
    running_cluster,
)

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
REDIS_URL = os.environ.get("REDIS_URL")
REQUIRED = os.environ.get("GATEHOUSE_REQUIRE_CLUSTER") == "1"
PASSWORD = "cluster passphrase for two instances"
# The one rate limit the tests trip (tests/cluster/test_cluster.py); the others are out of reach
# so that no other test meets them, whatever address it comes from.
LOGIN_LIMIT_PER_IP = 6
LOCKOUT_FAILURES = 4
SETTINGS = {
    # OWASP's minimum: a valid production value that keeps logins and sign-ups quick.
    "ARGON2_TIME_COST": "2",
    "ARGON2_MEMORY_COST": "19456",
    "ARGON2_PARALLELISM": "1",
    "WEB_CONCURRENCY": "2",
    "RATELIMIT_ENABLED": "true",
    "LOGIN_RATE_LIMIT_PER_IP": f"{LOGIN_LIMIT_PER_IP}/minute",
    "LOGIN_RATE_LIMIT_PER_ACCOUNT": "1000/minute",
    "SIGNUP_RATE_LIMIT_PER_IP": "100000/minute",
    "SIGNUP_RATE_LIMIT_PER_ACCOUNT": "1000/hour",
    "REFRESH_RATE_LIMIT_PER_IP": "100000/minute",
    "LOCKOUT_FAILURES": str(LOCKOUT_FAILURES),
    # Sign-ups answer 201 (not production's generic 202), so an answer says the account exists,
    # and log in without the mailed link.
    "SIGNUP_GENERIC_ANSWER": "false",
    "LOGIN_REQUIRES_VERIFIED_EMAIL": "false",
    # A closed port: no test here reads mail, and no sender thread runs.
    "MAIL_SERVER": "127.0.0.1",
    "MAIL_PORT": "1",
    "MAIL_FROM": "Gatehouse <no-reply@cluster.example.test>",
    "MAIL_SENDER_ENABLED": "false",
    "LOG_LEVEL": "WARNING",
}


def unavailable() -> str | None:
    """Why the cluster cannot run here, or None."""
    if not TEST_DATABASE_URL or not TEST_DATABASE_URL.startswith("postgresql"):
        return "the cluster tests need PostgreSQL (TEST_DATABASE_URL) and Redis (REDIS_URL)"
    if not REDIS_URL:
        return "the cluster tests need Redis (REDIS_URL) beside PostgreSQL"
    return refusal(TEST_DATABASE_URL, REDIS_URL)


def give_up(reason: str) -> None:
    """Skip, or fail where the cluster is required and PostgreSQL and Redis are configured."""
    if REQUIRED and TEST_DATABASE_URL and REDIS_URL:
        pytest.fail(f"GATEHOUSE_REQUIRE_CLUSTER=1: {reason}", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A database of its own on ``url``'s server, dropped afterwards; yields its URL."""
    name = f"gh_cluster_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_database_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = unavailable()
    if reason:
        give_up(reason)
    assert TEST_DATABASE_URL and REDIS_URL
    prefix = f"gatehouse-cluster-test:{uuid.uuid4().hex}:"
    scratch = Path(tempfile.mkdtemp(prefix="gatehouse-cluster-test-"))
    try:
        with scratch_database(TEST_DATABASE_URL) as database_url:
            port = free_port()
            environ = cluster_environ(
                database_url=database_url,
                redis_url=REDIS_URL,
                scratch=scratch,
                balancer_port=port,
                settings={**SETTINGS, "REDIS_KEY_PREFIX": prefix},
            )
            try:
                migrate(environ)
                with running_cluster(environ, scratch=scratch, balancer_port=port) as running:
                    yield running
            except ClusterError as exc:
                give_up(f"the cluster did not start: {exc}")
    finally:
        delete_redis_keys(REDIS_URL, prefix)
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def database(cluster: Cluster) -> Iterator:
    """An engine on the cluster's database, to look at what the instances committed."""
    engine = create_engine(normalise_database_url(cluster.environ["DATABASE_URL"]))
    yield engine
    engine.dispose()


_addresses = itertools.count(1)


def client_address() -> str:
    """A client address no other request of the run has used (10.x.y.z)."""
    n = next(_addresses)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


class Api:
    """Plain HTTP against one base URL (an instance or the balancer), one connection pool each.

    ``client`` is the X-Forwarded-For an instance believes (TRUSTED_PROXY_HOPS=1): sent straight
    to an instance it is the client's address; through nginx it is a forgery nginx appends to.
    """

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        token: str | None = None,
        client: str | None = None,
    ) -> requests.Response:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if client:
            headers["X-Forwarded-For"] = client
        return self.http.request(
            method, self.base + "/api/v1" + path, json=body, headers=headers, timeout=30
        )

    def sign_up(self, email: str, password: str = PASSWORD) -> requests.Response:
        return self.call(
            "POST", "/accounts", {"email": email, "password": password}, client=client_address()
        )

    def login(self, email: str, password: str = PASSWORD) -> requests.Response:
        """A login from an address of its own: the per-address limit is another test's."""
        return self.call(
            "POST", "/auth/login", {"email": email, "password": password}, client=client_address()
        )

    def tokens(self, email: str) -> dict:
        answer = self.login(email)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def a(cluster: Cluster) -> Api:
    return Api(cluster.instances[0].url)


@pytest.fixture(scope="module")
def b(cluster: Cluster) -> Api:
    return Api(cluster.instances[1].url)


@pytest.fixture(scope="module")
def balancer(cluster: Cluster) -> Api:
    return Api(cluster.url)


@pytest.fixture(autouse=True)
def logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failing test prints the end of every instance's log and nginx's."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "cluster" in request.fixturenames:
        print(request.getfixturevalue("cluster").logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report
