"""CORS: exact origins only, never reflected otherwise, nothing at all by default (HTTP-08)."""

import pytest

ALLOWED = "https://app.example.com"
ME = "/api/v1/accounts/me"


@pytest.fixture
def cors_client(make_app):
    return make_app("production", CORS_ALLOWED_ORIGINS=[ALLOWED]).test_client()


def preflight(client, origin, method="POST", path="/api/v1/auth/login"):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )


def test_allowed_origin_is_echoed_alone_with_vary(cors_client):
    response = cors_client.get(ME, headers={"Origin": ALLOWED})

    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Origin" in response.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "RateLimit-Remaining" in response.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "https://app.example.com.evil.example",
        "https://evil-app.example.com",
        "http://app.example.com",
        "https://APP.example.com:443/x",
    ],
)
def test_other_origins_get_no_cors_header(cors_client, origin):
    """Never an arbitrary Origin reflected, never null, never a look-alike."""
    for response in (
        cors_client.get(ME, headers={"Origin": origin}),
        preflight(cors_client, origin),
    ):
        assert "Access-Control-Allow-Origin" not in response.headers
        assert origin not in str(response.headers)


def test_preflight_of_an_allowed_origin_is_cached(cors_client):
    response = preflight(cors_client, ALLOWED)

    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Max-Age"] == "600"
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers


def test_no_origins_configured_means_no_cors_headers(make_app):
    client = make_app("production").test_client()

    response = client.get(ME, headers={"Origin": ALLOWED})

    assert not [name for name, _ in response.headers if name.startswith("Access-Control")]


@pytest.mark.parametrize("value", [["*"], ["https://*.example.com"], ["app.example.com"]])
def test_wildcard_or_partial_origin_refuses_start_up(make_app, value):
    from config import ConfigurationError

    with pytest.raises(ConfigurationError, match="CORS_ALLOWED_ORIGINS"):
        make_app("production", CORS_ALLOWED_ORIGINS=value)
