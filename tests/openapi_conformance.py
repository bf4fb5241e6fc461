"""Every answer the test suite gets from the API is checked against the OpenAPI document.

``make_app`` attaches a recorder to each app it builds; when the test ends, each recorded
answer of an API operation must have a status the document lists for that operation, the
media type it promises (none for 204, ``application/problem+json`` for errors,
``application/json`` otherwise) and a body that validates against the documented schema.
So the document is held to the whole suite's traffic, both configurations and both databases,
not only to a fuzzer's.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request
from flask_restx.swagger import extract_path
from jsonschema import Draft4Validator, FormatChecker

API_PREFIX = "/api/v1"
NOT_OPERATIONS = {"api.specs", "api.root"}
_spec: dict[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    method: str
    path: str  # as the document writes it, e.g. /accounts/me
    status: int
    content_type: str | None
    body: bytes


class ConformanceRecorder:
    def __init__(self) -> None:
        self.answers: list[Answer] = []

    def attach(self, app: Flask) -> None:
        app.after_request(self._record)

    def _record(self, response: Response) -> Response:
        rule = request.url_rule
        if (
            rule is None
            or not rule.endpoint.startswith("api.")
            or rule.endpoint in NOT_OPERATIONS
            or request.method in ("OPTIONS", "HEAD")  # answered by Flask, not an operation
        ):
            return response
        path = extract_path(rule.rule)[len(API_PREFIX) :]
        self.answers.append(
            Answer(
                request.method.lower(),
                path,
                response.status_code,
                response.headers.get("Content-Type"),
                b"" if response.direct_passthrough else response.get_data(),
            )
        )
        return response

    def violations(self, spec: dict[str, Any]) -> list[str]:
        return [problem for answer in self.answers for problem in _check(answer, spec)]


def spec_of(app: Flask) -> dict[str, Any]:
    global _spec
    if _spec is None:
        _spec = app.test_client().get(f"{API_PREFIX}/swagger.json").get_json()
    return _spec


def _check(answer: Answer, spec: dict[str, Any]) -> list[str]:
    where = f"{answer.method.upper()} {answer.path} → {answer.status}"
    operation = spec["paths"].get(answer.path, {}).get(answer.method)
    if operation is None:
        return [f"{where}: no such operation in the document"]
    documented = operation["responses"].get(str(answer.status))
    if documented is None:
        return [f"{where}: status not documented ({', '.join(operation['responses'])})"]
    if answer.status == 204:
        if answer.content_type is not None or answer.body:
            return [f"{where}: a 204 with content ({answer.content_type})"]
        return []
    expected = "application/problem+json" if answer.status >= 400 else "application/json"
    media_type = (answer.content_type or "").split(";")[0].strip()
    if media_type != expected or media_type not in spec["produces"]:
        return [f"{where}: media type {media_type!r}, documented {expected!r}"]
    schema = documented.get("schema")
    if schema is None:
        return [f"{where}: a body the document gives no schema for"]
    validator = Draft4Validator(
        {**_json_schema(schema), "definitions": _json_schema(spec["definitions"])},
        format_checker=FormatChecker(),
    )
    return [f"{where}: {error.message}" for error in validator.iter_errors(json.loads(answer.body))]


def _json_schema(schema: Any) -> Any:
    """Swagger 2.0's ``x-nullable`` as JSON Schema: the schema, or null."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _json_schema(value) for key, value in schema.items() if key != "x-nullable"}
    if schema.get("x-nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return copy.deepcopy(converted)
