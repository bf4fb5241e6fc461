"""Strict JSON request bodies, checked against the RESTx model that documents them.

Rejected with a problem document: a non-JSON media type (415), malformed JSON, bad UTF-8, deep
nesting, duplicate keys, a body that is not an object (400), and, per field, unknown or missing
fields, wrong types, over-long strings and control characters (400 ``validation_failed``).
Error details never echo the submitted value (it may be a password).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from flask import current_app, request
from flask_restx import Model, fields
from jsonschema import Draft4Validator
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import (
    DuplicateKey,
    FieldError,
    InvalidBody,
    MalformedJSON,
    UnsupportedMediaType,
    ValidationFailed,
)


class NullableString(fields.String):
    """A string field that also accepts ``null``."""

    def schema(self) -> dict[str, Any]:
        schema = super().schema()
        schema["x-nullable"] = True
        return schema


# A body of a thousand unknown keys gets a short answer, not a long list.
MAX_REPORTED_ERRORS = 20

_DETAILS = {
    "type": "has the wrong type",
    "maxLength": "is too long",
    "minLength": "is too short",
    "pattern": "has the wrong format",
    "enum": "is not one of the allowed values",
}
_CODES = {
    "type": "invalid_type",
    "maxLength": "too_long",
    "minLength": "too_short",
    "pattern": "invalid_format",
    "enum": "invalid_value",
}


def parse_json_body(model: Model) -> dict[str, Any]:
    """Return the request's JSON object after checking it against ``model``.

    Raises UnsupportedMediaType, MalformedJSON, DuplicateKey, InvalidBody, ValidationFailed.
    """
    mimetype = request.mimetype
    if not (mimetype == "application/json" or mimetype.endswith("+json")):
        raise UnsupportedMediaType()
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH: werkzeug raises 413
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    # A chunked body has no Content-Length; werkzeug stops reading it at the limit instead of
    # refusing it. One more byte from the server's (terminated) stream tells a body of exactly
    # the limit, which is allowed, from a longer one.
    if (
        request.content_length is None
        and limit is not None
        and len(raw) >= limit
        and request.environ["wsgi.input"].read(1)
    ):
        raise RequestEntityTooLarge()
    try:
        body = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
        )
    except _DuplicateKeyFound as exc:
        raise DuplicateKey(f"The key {exc.key!r} appears more than once.") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedJSON() from None
    if not isinstance(body, dict):
        raise InvalidBody()
    errors = list(_field_errors(body, model))
    if errors:
        raise ValidationFailed(errors[:MAX_REPORTED_ERRORS])
    return body


def _field_errors(body: dict[str, Any], model: Model):
    schema = model._schema
    properties: dict[str, dict[str, Any]] = schema.get("properties", {})
    for name in body:
        if name not in properties:
            yield FieldError(name[:100], "unknown_field", "is not a known field")
    for name in schema.get("required", []):
        if name not in body:
            yield FieldError(name, "missing", "is required")
    for name, value in body.items():
        if name not in properties:
            continue
        field_schema = dict(properties[name])
        if value is None and field_schema.pop("x-nullable", False):
            continue
        field_schema.pop("x-nullable", None)
        error = next(iter(Draft4Validator(field_schema).iter_errors(value)), None)
        if error is not None:
            rule = error.validator
            yield FieldError(name, _CODES.get(rule, "invalid"), _DETAILS.get(rule, "is invalid"))
        elif isinstance(value, str) and not _is_clean_text(value):
            yield FieldError(name, "invalid_characters", "contains control characters")


def _is_clean_text(value: str) -> bool:
    # Control characters (NUL breaks PostgreSQL text) and lone surrogates (not encodable as
    # UTF-8) are refused in every string.
    return not any(unicodedata.category(char) in ("Cc", "Cs") for char in value)


class _DuplicateKeyFound(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:100]


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if not _is_clean_text(key):
            # A key is echoed in errors; one that is not clean text is not worth echoing.
            raise ValueError("control character or lone surrogate in a key")
        if key in result:
            raise _DuplicateKeyFound(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
