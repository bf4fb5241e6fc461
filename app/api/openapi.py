"""The OpenAPI (Swagger 2.0) document, written from what each operation really does.

Flask-RESTx lays out the paths, summaries (from docstrings) and security requirements; this
module adds, for every operation, what ``@body``, ``@returns``, ``@raises`` and
``@auth_required`` recorded on it: the request schema, the success response, and every error
status with its codes, all with the pydantic models' own JSON Schemas (converted to Swagger
2.0). Errors anyone can meet on any operation are added to all: 413 (body over the size limit),
500 and 503. Every error is ``application/problem+json`` with the ``Problem`` schema.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from flask_restx import Api
from flask_restx.swagger import extract_path
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from app.api.bodies import documented
from app.api.schemas import ProblemResponse
from app.errors import INTERNAL_ERROR, PROBLEM_MEDIA_TYPE, ServiceUnavailable

JSON = "application/json"
RESPONSE_HEADERS = {
    401: {"WWW-Authenticate": {"type": "string", "description": "The challenge (RFC 6750)"}},
    503: {"Retry-After": {"type": "integer", "description": "Seconds to wait"}},
}
DEFINITIONS = "#/definitions/"
# (status, code, title) every operation may answer with, whatever it does.
EVERY_OPERATION_ERRORS = {
    "payload_too_large": (413, "The request body is too large"),
    INTERNAL_ERROR.code: (500, INTERNAL_ERROR.title),
    ServiceUnavailable.code: (503, ServiceUnavailable.title),
}


def complete_spec(api: Api, spec: dict[str, Any]) -> dict[str, Any]:
    """Add bodies, responses and errors to RESTx's ``spec``, from the operations' records."""
    spec = copy.deepcopy(spec)
    spec["consumes"] = [JSON]
    spec["produces"] = [JSON, PROBLEM_MEDIA_TYPE]
    definitions: dict[str, Any] = {}
    problem_ref = register_model(ProblemResponse, definitions, "serialization")
    for path, method, record in operations(api):
        operation = spec["paths"][path][method]
        if "body" in record:
            operation["parameters"] = [
                *[p for p in operation.get("parameters", []) if p.get("in") != "body"],
                {
                    "name": "payload",
                    "in": "body",
                    "required": True,
                    "schema": register_model(record["body"], definitions, "validation"),
                },
            ]
        if "query" in record:
            operation["parameters"] = [
                *operation.get("parameters", []),
                *query_parameters(record["query"]),
            ]
        responses: dict[str, Any] = {}
        for status, (model, description, headers) in sorted(record.get("returns", {}).items()):
            response: dict[str, Any] = {"description": description}
            if model is not None:
                response["schema"] = register_model(model, definitions, "serialization")
            if headers:
                response["headers"] = {
                    name: {"type": "string", "description": text} for name, text in headers.items()
                }
            responses[str(status)] = response
        for status, codes in sorted(_errors_by_status(record).items()):
            description = "; ".join(f"`{code}`: {title}" for code, title in codes)
            responses[str(status)] = {"description": description, "schema": problem_ref}
            if status in RESPONSE_HEADERS:
                responses[str(status)]["headers"] = RESPONSE_HEADERS[status]
        operation["responses"] = responses
    spec["definitions"] = definitions
    return spec


# What a Swagger 2.0 query parameter may say of its value, besides its type.
_QUERY_KEYWORDS = ("format", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern")


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The fields of a ``@query`` model as Swagger 2.0 ``in: query`` parameters."""
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", []))
    parameters = []
    for name, field_schema in schema.get("properties", {}).items():
        options = [o for o in field_schema.get("anyOf", [field_schema]) if o != {"type": "null"}]
        if len(options) != 1 or "type" not in options[0]:
            raise ValueError(f"Swagger 2.0 cannot describe the query parameter {name!r}")
        value = options[0]
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "type": value["type"],
        }
        parameter.update({key: value[key] for key in _QUERY_KEYWORDS if key in value})
        if "const" in value:
            parameter["enum"] = [value["const"]]
        if "description" in field_schema:
            parameter["description"] = field_schema["description"]
        parameters.append(parameter)
    return parameters


def operations(api: Api) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(path, method, record)`` for every operation, ``path`` as the document writes it."""
    for namespace in api.namespaces:
        for resource in namespace.resources:
            for url in api.ns_urls(namespace, resource.urls):
                for method in sorted(resource.resource.methods or ()):
                    handler = getattr(resource.resource, method.lower())
                    yield extract_path(url), method.lower(), _record(handler)


def _record(handler: Any) -> dict[str, Any]:
    record = dict(documented(handler))
    errors = dict(record.get("errors", {}))
    errors.update(EVERY_OPERATION_ERRORS)
    record["errors"] = errors
    return record


def _errors_by_status(record: dict[str, Any]) -> dict[int, list[tuple[str, str]]]:
    by_status: dict[int, list[tuple[str, str]]] = {}
    for code, (status, title) in sorted(record["errors"].items()):
        by_status.setdefault(status, []).append((code, title))
    return by_status


# --- JSON Schema (pydantic, draft 2020-12) to Swagger 2.0 ---------------------------------


def register_model(
    model: type[BaseModel], definitions: dict[str, Any], mode: JsonSchemaMode
) -> dict[str, str]:
    """Put ``model`` (and the models it nests) in ``definitions``; return a reference to it.

    ``mode`` is "validation" for what the service accepts, "serialization" for what it sends.
    """
    schema = model.model_json_schema(ref_template=DEFINITIONS + "{model}", mode=mode)
    for name, nested in schema.pop("$defs", {}).items():
        definitions[name] = to_swagger(nested)
    name = schema.get("title", model.__name__)
    definitions[name] = to_swagger(schema)
    return {"$ref": DEFINITIONS + name}


def to_swagger(schema: Any) -> Any:
    """Rewrite the JSON Schema constructs Swagger 2.0 lacks; refuse those it cannot say."""
    if isinstance(schema, list):
        return [to_swagger(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    for unsupported in ("oneOf", "prefixItems", "if", "not"):
        if unsupported in schema:
            raise ValueError(f"Swagger 2.0 cannot describe {unsupported!r}: {schema}")
    if "anyOf" in schema:
        options = [option for option in schema.pop("anyOf") if option != {"type": "null"}]
        if len(options) != 1:
            raise ValueError(f"Swagger 2.0 cannot describe a union: {options}")
        option = to_swagger(options[0])
        # A $ref takes no siblings; wrapping it keeps x-nullable next to it.
        schema.update({"allOf": [option]} if "$ref" in option else option)
        schema["x-nullable"] = True
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    if "examples" in schema:
        schema["example"] = schema.pop("examples")[0]
    return {key: to_swagger(value) for key, value in schema.items()}
