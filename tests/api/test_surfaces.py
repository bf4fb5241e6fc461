"""Surfaces: error format and security headers chosen per blueprint (HTTP-01, HTTP-07).

The API answers problem documents under a CSP that allows nothing; the docs page runs Swagger
UI under a CSP of its own; a blueprint of another kind (an OAuth endpoint later) renders the
same error catalogue its own way. None of it is decided by the path.
"""

import io
import re

import pytest
from flask import Blueprint, Response, jsonify
from werkzeug.exceptions import MethodNotAllowed

from app import surfaces
from app.errors import InvalidCredentials, problem_from
from tests.helpers import assert_problem

API_CSP = "default-src 'none'; frame-ancestors 'none'"


@pytest.fixture(params=["testing", "production"])
def app(request, make_app):
    return make_app(request.param)


def csp_directives(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {
        part.split()[0]: " ".join(part.split()[1:])
        for part in (piece.strip() for piece in policy.split(";"))
        if part
    }


def test_docs_page_runs_no_inline_script_and_cannot_be_framed(client):
    """HTTP-07: the one page that runs scripts allows only its own, and no framing."""
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    directives = csp_directives(response)
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    html = response.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.DOTALL)
    assert scripts and all(
        'src="' in attributes and not body.strip() for attributes, body in scripts
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/docs/static/docs.js",
        "/swaggerui/swagger-ui-bundle.js",
        "/swaggerui/swagger-ui.css",
    ],
)
def test_docs_page_assets_are_served_on_the_docs_surface(client, path):
    with client.get(path) as response:
        assert response.status_code == 200
        assert csp_directives(response)["script-src"] == "'self'"


def test_docs_page_names_the_openapi_document_it_shows(client):
    html = client.get("/api/v1/docs").get_data(as_text=True)

    assert 'data-specs-url="/api/v1/swagger.json"' in html


@pytest.mark.parametrize("path", ["/api/v1/swagger.json", "/api/v1/accounts/me", "/nowhere"])
def test_api_and_unrouted_answers_get_the_strict_csp(client, path):
    assert client.get(path).headers["Content-Security-Policy"] == API_CSP


def test_missing_docs_asset_is_a_problem_document(client):
    response = client.get("/swaggerui/nothing-here.js")

    assert_problem(response, 404, "not_found")


def oauth_error(error: BaseException) -> Response:
    """RFC 6749 §5.2 shape, from the same catalogue."""
    problem = problem_from(error)
    response = jsonify(error=problem.code, error_description=problem.detail)
    response.status_code = problem.status
    response.headers.update(problem.headers)
    return response


@pytest.fixture
def oauth_client(app):
    blueprint = Blueprint("oauth_test", __name__, url_prefix="/oauth")

    @blueprint.post("/token")
    def token():
        raise InvalidCredentials()

    app.register_blueprint(blueprint)
    surfaces.register(
        app,
        surfaces.Surface("oauth", render_error=oauth_error, cache_control="no-store"),
        blueprint.name,
    )
    return app.test_client()


def test_another_blueprint_renders_the_same_codes_its_own_way(oauth_client):
    response = oauth_client.post("/oauth/token")

    assert response.status_code == 401
    assert response.mimetype == "application/json"
    assert response.get_json() == {
        "error": "invalid_credentials",
        "error_description": "Invalid email or password",
    }
    assert response.headers["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" not in response.headers


def test_routing_errors_inside_another_blueprint_use_its_surface(oauth_client):
    response = oauth_client.get("/oauth/token")

    assert response.status_code == MethodNotAllowed.code
    assert response.get_json()["error"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def post_chunked(client, path: str, body: bytes, content_type: str):
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        content_type=content_type,
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json"],
)
def test_chunked_body_over_the_limit_is_refused_before_any_parser(app, client, content_type):
    """HTTP-03: the size check sits under every blueprint, for forms as for JSON."""
    body = b"a=" + b"x" * app.config["MAX_CONTENT_LENGTH"]

    response = post_chunked(client, "/api/v1/accounts", body, content_type)

    assert_problem(response, 413, "payload_too_large")


def test_chunked_body_over_the_limit_to_a_plain_route_is_refused(app, client):
    app.add_url_rule("/form", "form", lambda: "read", methods=["POST"])
    body = b"a=" + b"x" * app.config["MAX_CONTENT_LENGTH"]

    response = post_chunked(client, "/form", body, "application/x-www-form-urlencoded")

    assert_problem(response, 413, "payload_too_large")


def test_chunked_form_body_within_the_limit_is_read_whole(app, client):
    from flask import request

    app.add_url_rule("/form", "form", lambda: request.form["a"], methods=["POST"])

    response = post_chunked(
        client, "/form", b"a=" + b"x" * 1000, "application/x-www-form-urlencoded"
    )

    assert response.status_code == 200
    assert response.get_data() == b"x" * 1000


class BrokenChunks(io.RawIOBase):
    """What a server's de-chunking reader does with bad framing: raise on read."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client measures the stream first
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def readinto(self, buffer) -> int:
        raise OSError("Invalid chunk header")


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/nowhere"])
def test_body_with_broken_chunk_framing_returns_400_problem(client, path):
    """HTTP-01: a body the server cannot de-chunk is a 400 problem, not a 500 page."""
    response = client.post(
        path,
        input_stream=BrokenChunks(),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )

    body = assert_problem(response, 400, "bad_request")
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Content-Security-Policy"] == API_CSP


@pytest.mark.parametrize(
    "path", ["/api/v1/docs", "/api/v1/swagger.json", "/swaggerui/swagger-ui-bundle.js"]
)
def test_docs_off_serves_neither_the_page_nor_the_document(make_app, path):
    client = make_app("production", DOCS_ENABLED=False).test_client()

    assert_problem(client.get(path), 404, "not_found")
    assert client.get("/api/v1/accounts/me").status_code == 401  # the API itself still answers
