"""The REST API: a Flask-RESTx ``Api`` on a blueprint mounted at ``/api/v1``."""

from __future__ import annotations

from flask import Blueprint
from flask_restx import Api

from app.errors import render_problem


class ProblemApi(Api):
    """An ``Api`` whose every error, raised in any endpoint, is a problem document.

    RESTx otherwise answers errors from its endpoints with its own JSON shape and, with
    TESTING off, turns unknown exceptions into bare 500s; here one renderer answers them all.
    """

    def handle_error(self, e: Exception):
        return render_problem(e)


blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

api = ProblemApi(
    blueprint,
    title="Gatehouse API",
    version="1.0",
    description=(
        "Accounts and authentication. Errors are RFC 9457 problem documents "
        "(application/problem+json) with a stable `code`."
    ),
    doc="/docs",
    authorizations={
        "Bearer": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Bearer <access token>`",
        }
    },
)

# Imported for their side effect of declaring routes on the namespaces.
from app.api.accounts import ns as accounts_ns  # noqa: E402
from app.api.auth import ns as auth_ns  # noqa: E402

api.add_namespace(accounts_ns, path="/accounts")
api.add_namespace(auth_ns, path="/auth")
