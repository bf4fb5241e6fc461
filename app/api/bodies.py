"""Typed request and response bodies: the schema that validates is the schema the docs show.

``@body(Model)`` parses the request's JSON, validates it against a strict pydantic model
(``extra="forbid"``) and hands the typed object to the resource method as ``body``;
``@returns(Model, status)`` serialises what the method returns through a pydantic model;
``@raises(ErrorClass, ...)`` names the domain errors an operation answers with. All three record
what they do on the method, and ``app/api/openapi.py`` writes the OpenAPI document from those
records, so documentation and behaviour cannot drift.

Refused with a problem document: a non-JSON media type (415), malformed JSON, bad UTF-8, NaN,
nesting deeper than ``MAX_JSON_DEPTH``, duplicate keys, a body that is not an object (400),
and, per field at any depth, unknown or missing fields, wrong types, out-of-range values and
control characters (400 ``validation_failed``). Error details never echo the submitted value
(it may be a password).
Bodies over ``MAX_CONTENT_LENGTH`` never get here (413, ``app/http.py``).
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from flask import Response, request
from flask_restx.utils import merge
from pydantic import BaseModel, ValidationError

from app.errors import (
    DomainError,
    DuplicateKey,
    FieldError,
    InvalidBody,
    MalformedJSON,
    UnsupportedMediaType,
    ValidationFailed,
    all_of,
)

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)

# A body of a thousand unknown keys gets a short answer, not a long list.
MAX_REPORTED_ERRORS = 20
# No body of ours nests half as deep; anything deeper is refused before it is walked.
MAX_JSON_DEPTH = 32

# pydantic error types → (our stable per-field code, what it tells the client).
_TYPE_ERRORS = {
    "string_type",
    "int_type",
    "int_from_float",
    "float_type",
    "bool_type",
    "dict_type",
    "model_type",
    "model_attributes_type",
    "list_type",
    "uuid_type",
    "datetime_type",
    "none_required",
}
_FIELD_ERRORS: dict[str, tuple[str, str]] = {
    "missing": ("missing", "is required"),
    "extra_forbidden": ("unknown_field", "is not a known field"),
    "string_too_long": ("too_long", "is too long"),
    "string_too_short": ("too_short", "is too short"),
    "too_long": ("too_long", "is too long"),
    "too_short": ("too_short", "is too short"),
    "string_pattern_mismatch": ("invalid_format", "has the wrong format"),
    "literal_error": ("invalid_value", "is not one of the allowed values"),
    "enum": ("invalid_value", "is not one of the allowed values"),
    "greater_than": ("out_of_range", "is too small"),
    "greater_than_equal": ("out_of_range", "is too small"),
    "less_than": ("out_of_range", "is too large"),
    "less_than_equal": ("out_of_range", "is too large"),
    "string_unicode": ("invalid_characters", "contains control characters"),
}
INVALID_CHARACTERS = ("invalid_characters", "contains control characters")

# The errors every operation with a JSON body can answer with.
BODY_ERRORS: tuple[type[DomainError], ...] = (
    ValidationFailed,
    MalformedJSON,
    DuplicateKey,
    InvalidBody,
    UnsupportedMediaType,
)


Rules = Callable[[dict[str, Any]], list[ValidationFailed]]


def body(model: type[M], rules: Rules | None = None) -> Callable[[F], F]:
    """Parse and validate the JSON body against ``model``; pass it to the method as ``body``.

    ``rules`` (a service function) reports the domain rules the body's fields break, so one
    400 lists every failing field, structure and policy alike.
    """

    def decorator(method: F) -> F:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return method(*args, body=parse_body(model, rules), **kwargs)

        return _document(wrapper, body=model, errors=_error_entries(BODY_ERRORS))

    return decorator


def query(model: type[M]) -> Callable[[F], F]:
    """Validate the query string against ``model``; pass it to the method as ``query``.

    Unknown or repeated parameters and invalid values answer 400 ``validation_failed`` per
    parameter. Values are strings on the wire, so ``model`` converts them (``limit=10`` is an
    integer, ``verified=true`` a boolean): it is not strict, but it refuses extras.
    """

    def decorator(method: F) -> F:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return method(*args, query=parse_query(model), **kwargs)

        return _document(wrapper, query=model, errors=_error_entries((ValidationFailed,)))

    return decorator


def parse_query(model: type[M]) -> M:
    """Return the request's query parameters as a ``model``. Raises ValidationFailed."""
    errors = [
        FieldError(name[:100], "repeated", "is given more than once")
        for name, values in request.args.lists()
        if len(values) > 1
    ]
    document = request.args.to_dict(flat=True)
    errors += [FieldError(name[:100], *INVALID_CHARACTERS) for name in _unclean_strings(document)]
    if errors:
        raise ValidationFailed(errors[:MAX_REPORTED_ERRORS])
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise ValidationFailed(_field_errors(exc)[:MAX_REPORTED_ERRORS]) from None


@dataclass(frozen=True)
class Reply:
    """A success other than the operation's main one: a status ``@also_returns`` documents."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def returns(
    model: type[BaseModel] | None,
    status: int = 200,
    description: str | None = None,
    headers: dict[str, str] | None = None,
) -> Callable[[F], F]:
    """Serialise the method's result through ``model`` with ``status`` (None: no content).

    The method may return ``(result, headers)`` to add response headers; ``headers`` documents
    them (name → description). It may also return a :class:`Reply` with a status documented
    by ``@also_returns`` (below this decorator), serialised through that status's model.
    """
    text = description or HTTPStatus(status).phrase

    def decorator(method: F) -> F:
        alternatives: dict[int, Any] = documented(method).get("returns", {})

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            result = method(*args, **kwargs)
            return _respond(result, model, status, alternatives)

        return _document(wrapper, returns={status: (model, text, headers or {})})

    return decorator


def also_returns(
    model: type[BaseModel] | None,
    status: int,
    description: str,
    headers: dict[str, str] | None = None,
) -> Callable[[F], F]:
    """Document another success the method answers with by returning ``Reply(status, …)``."""

    def decorator(method: F) -> F:
        return _document(method, returns={status: (model, description, headers or {})})

    return decorator


def _respond(
    result: Any, model: type[BaseModel] | None, status: int, alternatives: dict[int, Any]
) -> Response:
    headers: dict[str, str] = {}
    if isinstance(result, Reply):
        if result.status not in alternatives:
            raise RuntimeError(f"status {result.status} is not documented with @also_returns")
        model, status = alternatives[result.status][0], result.status
        result, headers = result.body, result.headers
    elif isinstance(result, tuple):  # (body, headers)
        result, headers = result
    if model is None:
        response = Response(status=status)
        del response.headers["Content-Type"]  # no content, so no type (not text/html)
    else:
        payload = model.model_validate(result, from_attributes=True)
        response = Response(payload.model_dump_json(), status=status, mimetype="application/json")
    response.headers.update({name: value for name, value in headers.items() if value})
    return response


def raises(*errors: type[DomainError]) -> Callable[[F], F]:
    """Document the domain errors (and so the statuses and codes) the operation answers with."""

    def decorator(method: F) -> F:
        return _document(method, errors=_error_entries(errors))

    return decorator


def documented(method: Callable[..., Any]) -> dict[str, Any]:
    """What the decorators above recorded on ``method``, for the OpenAPI document."""
    return getattr(method, "__apidoc__", {}).get("gatehouse", {})


def _error_entries(errors: tuple[type[DomainError], ...]) -> dict[str, tuple[int, str]]:
    return {error.code: (error.status, error.title) for error in errors}


def _document(method: F, **record: Any) -> F:
    method.__apidoc__ = merge(  # type: ignore[attr-defined]
        getattr(method, "__apidoc__", {}), {"gatehouse": record}
    )
    return method


# --- Parsing ------------------------------------------------------------------------------


def parse_body(model: type[M], rules: Rules | None = None) -> M:
    """Return the request's JSON object as a ``model``.

    Raises UnsupportedMediaType, MalformedJSON, DuplicateKey, InvalidBody, ValidationFailed (a
    single rule's own subclass when that rule is the only problem).
    """
    mimetype = request.mimetype
    if not (mimetype == "application/json" or mimetype.endswith("+json")):
        raise UnsupportedMediaType()
    document = parse_json(request.get_data(cache=True))
    if not isinstance(document, dict):
        raise InvalidBody()
    try:
        parsed = model.model_validate(document)
    except ValidationError as exc:
        errors = _field_errors(exc)
    else:
        errors = []
    reported = {error.field for error in errors}
    errors += [
        FieldError(path, *INVALID_CHARACTERS)
        for path in _unclean_strings(document)
        if not any(path == field or path.startswith(field + ".") for field in reported)
    ]
    reported = {error.field for error in errors}
    broken = [
        problem
        for problem in (rules(document) if rules else [])
        if not any(error.field in reported for error in problem.errors)
    ]
    if broken and not errors:
        raise all_of(broken)
    errors += [error for problem in broken for error in problem.errors]
    if errors:
        raise ValidationFailed(errors[:MAX_REPORTED_ERRORS])
    return parsed


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8 only, no duplicate keys, no NaN or Infinity, at most 32 levels deep.

    Raises MalformedJSON, DuplicateKey.
    """
    try:
        document = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
        )
    except _DuplicateKeyFound as exc:
        raise DuplicateKey(f"The key {exc.key!r} appears more than once.") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedJSON() from None
    if _depth(document) > MAX_JSON_DEPTH:
        raise MalformedJSON(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
    return document


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        kind = error["type"]
        if kind in _TYPE_ERRORS:
            code, detail = "invalid_type", "has the wrong type"
        else:
            code, detail = _FIELD_ERRORS.get(kind, ("invalid", "is invalid"))
        errors.append(FieldError(_path(error["loc"]), code, detail))
    return errors


def _path(location: tuple[int | str, ...]) -> str:
    """``("items", 0, "name")`` → ``items.0.name``; a key as sent, cut short."""
    return ".".join(str(part)[:100] for part in location)


def _unclean_strings(document: Any) -> list[str]:
    """Paths of every string, at any depth, that holds control characters.

    Iterative: a document nested as deep as the parser allows must not exhaust the stack here.
    """
    found: list[str] = []
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not is_clean_text(value):
                found.append(path)
        elif isinstance(value, dict):
            stack.extend(
                (f"{path}.{key[:100]}" if path else key[:100], item) for key, item in value.items()
            )
        elif isinstance(value, list):
            stack.extend((f"{path}.{index}", item) for index, item in enumerate(value))
    return sorted(found)


def _depth(document: Any) -> int:
    """How deeply arrays and objects nest in ``document`` (a scalar is 0), iteratively."""
    deepest = 0
    stack: list[tuple[int, Any]] = [(0, document)]
    while stack:
        depth, value = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth + 1)
            items = value.values() if isinstance(value, dict) else value
            stack.extend((depth + 1, item) for item in items)
    return deepest


def is_clean_text(value: str) -> bool:
    """No control characters (NUL breaks PostgreSQL text) and no lone surrogates (they cannot
    be encoded as UTF-8), anywhere in a request body."""
    return not any(unicodedata.category(char) in ("Cc", "Cs") for char in value)


class _DuplicateKeyFound(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:100]


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if not is_clean_text(key):
            # A key is echoed in errors; one that is not clean text is not worth echoing.
            raise ValueError("control character or lone surrogate in a key")
        if key in result:
            raise _DuplicateKeyFound(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
