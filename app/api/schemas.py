"""RESTx models shared by the namespaces, named for their direction."""

from __future__ import annotations

from flask_restx import Model, fields

problem_response = Model(
    "ProblemResponse",
    {
        "type": fields.String(example="urn:gatehouse:problem:validation_failed"),
        "title": fields.String,
        "status": fields.Integer,
        "detail": fields.String,
        "code": fields.String(description="Stable machine-readable error code"),
        "instance": fields.String,
        "request_id": fields.String,
        "errors": fields.List(
            fields.Raw,
            description="Per-field errors: objects with `field`, `code` and `detail`",
        ),
    },
)
