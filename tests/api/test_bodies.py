"""The typed-body layer on models with nested objects and lists (HTTP-02, HTTP-04).

The API's own bodies are flat today; later ones (admin filters, MFA) nest. A nested model must
validate field by field at every depth, never crash, and refuse control characters inside a
nested object or a list item exactly as it does at the top level. Run under both configs, as
production answers errors without TESTING's re-raising.
"""

import json

import pytest
from flask import jsonify
from pydantic import Field

from app.api.bodies import body
from app.api.schemas import RequestBody
from tests.helpers import assert_problem

PATH = "/test/orders"


class Address(RequestBody):
    city: str = Field(max_length=20)
    lines: list[str] = Field(default_factory=list, max_length=3)


class Order(RequestBody):
    name: str
    address: Address
    tags: list[str] = Field(default_factory=list)


VALID = {"name": "parcel", "address": {"city": "Lyon", "lines": ["1 rue X"]}, "tags": ["a"]}


@pytest.fixture(params=["testing", "production"])
def client(request, make_app):
    app = make_app(request.param)

    @body(Order)
    def create_order(body: Order):
        return jsonify(body.model_dump())

    app.add_url_rule(PATH, "create_order", create_order, methods=["POST"])
    return app.test_client()


def post(client, document) -> object:
    # json.dumps writes \u0000 and \ud800 escapes, as a hostile client would.
    return client.post(PATH, data=json.dumps(document), content_type="application/json")


def field_errors(response) -> list[tuple[str, str]]:
    problem = assert_problem(response, 400, "validation_failed")
    return [(error["field"], error["code"]) for error in problem["errors"]]


def test_valid_nested_body_reaches_the_view_typed(client):
    response = post(client, VALID)

    assert response.status_code == 200
    assert response.get_json() == VALID


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"address": {"city": 7}}, [("address.city", "invalid_type")]),
        ({"address": {"city": "x" * 21}}, [("address.city", "too_long")]),
        ({"address": {"city": "Lyon", "zip": "69000"}}, [("address.zip", "unknown_field")]),
        ({"address": {}}, [("address.city", "missing")]),
        ({"address": "Lyon"}, [("address", "invalid_type")]),
        ({"address": None}, [("address", "invalid_type")]),
        ({"tags": ["a", 2]}, [("tags.1", "invalid_type")]),
        (
            {"address": {"city": "Lyon", "lines": ["a", "b", "c", "d"]}},
            [("address.lines", "too_long")],
        ),
    ],
    ids=["type", "length", "unknown", "missing", "string", "null", "list-item", "list-length"],
)
def test_invalid_nested_field_returns_400_naming_its_path(client, change, expected):
    """HTTP-02: per field, at any depth; never a 500."""
    assert field_errors(post(client, {**VALID, **change})) == expected


@pytest.mark.parametrize(
    "bad", ["nul\u0000", "lone\ud800", "bell\u0007"], ids=["nul", "surrogate", "bell"]
)
@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda bad: {"address": {"city": bad}}, "address.city"),
        (lambda bad: {"tags": ["fine", bad]}, "tags.1"),
        (lambda bad: {"address": {"city": "Lyon", "lines": [bad]}}, "address.lines.0"),
    ],
    ids=["nested-object", "list-item", "list-in-object"],
)
def test_control_character_at_any_depth_returns_400_invalid_characters(client, change, path, bad):
    """HTTP-04: refused like one at the top level (PostgreSQL text cannot hold NUL)."""
    assert field_errors(post(client, {**VALID, **change(bad)})) == [(path, "invalid_characters")]


def test_every_failing_field_is_reported_at_once(client):
    """One answer lists them all, so a form can show every problem together."""
    document = {"name": 1, "address": {"city": "nul\u0000", "zip": 1}, "extra": True}

    assert sorted(field_errors(post(client, document))) == [
        ("address.city", "invalid_characters"),
        ("address.zip", "unknown_field"),
        ("extra", "unknown_field"),
        ("name", "invalid_type"),
    ]


@pytest.mark.parametrize("depth", [33, 500, 941, 970, 990])
def test_body_nested_past_the_limit_returns_400_malformed_json(client, depth):
    """HTTP-03: refused before any walk over it, never a RecursionError 500."""
    junk = "[" * depth + '"x"' + "]" * depth
    data = '{"name": "parcel", "address": {"city": "Lyon"}, "tags": ' + junk + "}"

    response = client.post(PATH, data=data, content_type="application/json")

    assert_problem(response, 400, "malformed_json")


def test_body_nested_to_the_limit_is_validated_field_by_field(client):
    nested = "[" * 31 + '"x"' + "]" * 31  # 32 levels with the enclosing object
    data = '{"name": "parcel", "address": {"city": "Lyon"}, "tags": ' + nested + "}"

    assert field_errors(client.post(PATH, data=data, content_type="application/json")) == [
        ("tags.0", "invalid_type")
    ]
