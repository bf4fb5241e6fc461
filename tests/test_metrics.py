"""/metrics: Prometheus samples by route template, login outcomes, reuse, revocations, the pool.

In process here (one registry); tests/server/ checks the sums across gunicorn workers.
"""

import re

import pytest

from tests.helpers import STRONG_PASSWORD, ApiActions, assert_problem

LOGIN = "/api/v1/auth/login"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus's text format (0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? ([0-9.e+-]+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'([a-z_]+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return 0.0


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


@pytest.fixture
def client(make_app):
    return make_app("production").test_client()


def test_requests_are_counted_by_route_template_not_raw_path(client):
    before = scrape(client)
    client.get("/api/v1/accounts/me")
    client.get("/no/such/path/12345")
    after = scrape(client)

    def delta(**labels):
        return sample(after, "gatehouse_http_requests_total", **labels) - sample(
            before, "gatehouse_http_requests_total", **labels
        )

    assert delta(endpoint="/api/v1/accounts/me", method="GET", status="401") == 1
    assert delta(endpoint="unmatched", method="GET", status="404") == 1
    assert "/no/such/path/12345" not in after


def test_logins_are_counted_by_outcome(client):
    api = ApiActions(client)
    api.signup()
    before = scrape(client)

    client.post(LOGIN, json={"email": "ada@example.com", "password": "not it at all"})
    client.post(LOGIN, json={"email": "nobody@example.com", "password": "not it at all"})
    api.login()

    after = scrape(client)
    for outcome, expected in (("failure", 2), ("success", 1)):
        name = "gatehouse_logins_total"
        assert sample(after, name, outcome=outcome) - sample(before, name, outcome=outcome) == (
            expected
        )


def test_refresh_token_reuse_and_ended_sessions_are_counted(client):
    api = ApiActions(client)
    tokens = api.signup_and_login()
    api.refresh(tokens.refresh_token)
    before = scrape(client)

    api.refresh(tokens.refresh_token)  # reuse: the session ends

    after = scrape(client)
    assert (
        sample(after, "gatehouse_refresh_token_reuse_total")
        - sample(before, "gatehouse_refresh_token_reuse_total")
        == 1
    )
    name, reason = "gatehouse_sessions_revoked_total", "refresh_token_reused"
    assert sample(after, name, reason=reason) - sample(before, name, reason=reason) == 1


def test_database_pool_gauge_returns_to_its_level_after_requests(client):
    before = sample(scrape(client), "gatehouse_db_pool_connections_in_use")
    ApiActions(client).signup_and_login()

    assert sample(scrape(client), "gatehouse_db_pool_connections_in_use") == before


def test_metrics_with_a_token_set_need_it(make_app):
    client = make_app("production", METRICS_TOKEN="scrape-secret").test_client()

    refused = client.get("/metrics")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})

    assert_problem(refused, 401, "authentication_required")
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert_problem(wrong, 401, "authentication_required")
    assert allowed.status_code == 200


def test_metrics_disabled_are_not_served(make_app):
    client = make_app("production", METRICS_ENABLED=False).test_client()

    assert_problem(client.get("/metrics"), 404, "not_found")


def test_metrics_never_show_a_secret(client):
    ApiActions(client).signup_and_login()

    text = scrape(client)

    assert STRONG_PASSWORD not in text and "ada@example.com" not in text
