"""The OpenAPI document describes what the service answers, and the README says the same.

Beyond these checks, every answer the suite receives is held to the document
(tests/openapi_conformance.py), and schemathesis fuzzes the running service against it in CI
(tests/conformance/run.py). SECURITY.md HTTP-01, ADM-03.
"""

import re
from pathlib import Path

import pytest

from app import create_app
from app.api.bodies import BODY_ERRORS
from app.errors import HTTP_CODES, DomainError

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "post", "put", "patch", "delete"}
EVERY_OPERATION = {"payload_too_large": 413, "internal_error": 500, "service_unavailable": 503}
BEARER = {"authentication_required": 401, "invalid_token": 401, "multiple_credentials": 400}
# Any change made with the session cookie (cookie-session mode) without its CSRF header.
CSRF = {"csrf_token_missing": 403, "csrf_token_invalid": 403}
BODY = {error.code: error.status for error in BODY_ERRORS}


@pytest.fixture(scope="module")
def spec():
    app = create_app("testing", {"DATABASE_URL": "sqlite://"})
    return app.test_client().get("/api/v1/swagger.json").get_json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def documented_codes(operation) -> dict[str, int]:
    return {
        code: int(status)
        for status, response in operation["responses"].items()
        for code in re.findall(r"`([a-z_]+)`", response["description"])
    }


def catalogue() -> dict[str, int]:
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    codes = {error.code: error.status for error in subclasses(DomainError)}
    codes.update({code: status for status, code in HTTP_CODES.items()})
    return codes


def test_document_promises_json_for_answers_and_problem_json_for_errors(spec):
    assert spec["produces"] == ["application/json", "application/problem+json"]
    assert spec["consumes"] == ["application/json"]


def test_every_error_response_is_a_problem_document(spec):
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["schema"] == {"$ref": "#/definitions/Problem"}, (method, path)


def test_every_operation_documents_the_errors_any_request_can_meet(spec):
    for method, path, operation in operations(spec):
        codes = documented_codes(operation)
        assert EVERY_OPERATION.items() <= codes.items(), (method, path)
        if any(p.get("in") == "body" for p in operation.get("parameters", [])):
            assert BODY.items() <= codes.items(), (method, path)
        if "security" in operation:
            assert BEARER.items() <= codes.items(), (method, path)
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
            if method not in ("get", "head", "options"):
                assert CSRF.items() <= codes.items(), (method, path)


def test_every_documented_code_is_in_the_catalogue_with_its_status(spec):
    known = catalogue()
    for method, path, operation in operations(spec):
        for code, status in documented_codes(operation).items():
            assert known.get(code) == status, (method, path, code)


def test_every_request_body_refuses_unknown_fields(spec):
    """ADM-03: the documented request schemas say what the validator does."""
    bodies = [
        parameter["schema"]["$ref"].rsplit("/", 1)[1]
        for _, _, operation in operations(spec)
        for parameter in operation.get("parameters", [])
        if parameter.get("in") == "body"
    ]
    assert bodies
    for name in bodies:
        assert spec["definitions"][name]["additionalProperties"] is False, name


def readme_rows():
    """``(method, path, auth, success status, {code: status})`` for each row of the API table."""
    section = (ROOT / "README.md").read_text().split("\n## API\n", 1)[1]
    table = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    for line in table[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        method, path = re.match(r"`(\w+) (\S+)`", cells[0]).groups()
        codes = {}
        for status, listed in re.findall(r"(\d{3})((?: ?`[a-z_]+`,?)+)", cells[3]):
            codes.update({code: int(status) for code in re.findall(r"`([a-z_]+)`", listed)})
        yield method.lower(), path, cells[1], int(cells[2].split()[0]), codes


def test_readme_api_table_matches_the_document(spec):
    """Every operation, its authentication, success status and own error codes, in both."""
    common = EVERY_OPERATION | BEARER | CSRF | BODY
    documented = {}
    for method, path, operation in operations(spec):
        success = min(int(status) for status in operation["responses"] if int(status) < 400)
        own = {c: s for c, s in documented_codes(operation).items() if c not in common}
        documented[(method, "/api/v1" + path)] = (
            "Bearer" if "security" in operation else "–",
            success,
            own,
        )

    in_readme = {
        (method, path): (auth, success, codes)
        for method, path, auth, success, codes in readme_rows()
        if path.startswith("/api/v1/")
    }

    assert in_readme == documented
