"""The REST API: a Flask-RESTx ``Api`` on a blueprint mounted at ``/api/v1``.

Its surface (``app/surfaces.py``): errors are RFC 9457 problem documents, each 401 (and 403
for scopes) with the challenge ``app/api/security.py`` picks; every answer carries a CSP that
allows nothing and ``Cache-Control: no-store``. The OpenAPI document is completed from what the
operations declare (``app/api/openapi.py``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request
from flask_restx import Api
from werkzeug.exceptions import HTTPException, NotFound

from app import surfaces
from app.api import security
from app.api.openapi import complete_spec
from app.errors import problem_from, problem_json


def render_api_error(error: BaseException) -> Response:
    problem = problem_from(error)
    challenge = security.challenge_for(problem)
    if challenge:
        problem = problem.with_header("WWW-Authenticate", challenge)
    return problem_json(problem)


class GatehouseApi(Api):
    """An ``Api`` whose errors are this surface's, and whose document tells the truth.

    RESTx otherwise answers errors from its endpoints with its own JSON shape and, with
    TESTING off, turns unknown exceptions into bare 500s; here one renderer answers them all.
    """

    def handle_error(self, e: Exception) -> Response:
        return render_api_error(e)

    def _should_use_fr_error_handler(self) -> bool:
        # RESTx matches the URL again to decide; a Host outside TRUSTED_HOSTS makes that raise
        # (werkzeug's SecurityError) inside the error handler itself. Such a request is no
        # one's route: the app's handler answers it.
        try:
            return bool(super()._should_use_fr_error_handler())
        except HTTPException:
            return False

    @property
    def __schema__(self) -> dict[str, Any]:
        if not self._schema:
            self._schema = complete_spec(self, super().__schema__)
        return self._schema


blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

api = GatehouseApi(
    blueprint,
    title="Gatehouse API",
    version="1.0",
    description=(
        "Accounts and authentication. Every error is an RFC 9457 problem document "
        "(`application/problem+json`) with a stable `code`; an unknown path answers 404 "
        "`not_found` and a method a path does not support 405 `method_not_allowed` with `Allow`."
    ),
    doc=False,  # the Swagger UI page is served by app/api/docs.py, on its own surface
    authorizations={
        "Bearer": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Bearer <access token>`, or `Bearer gh_pat_…` (a personal "
            "access token, on the operations its scopes allow). Every operation that takes it "
            "also takes the session cookie of POST /auth/session (Swagger 2.0 cannot describe "
            "a cookie scheme); with the cookie, POST, PATCH and DELETE need `X-CSRF-Token`.",
        }
    },
)

# Imported for their side effect of declaring routes on the namespaces.
from app.api.accounts import ns as accounts_ns  # noqa: E402
from app.api.admin import ns as admin_ns  # noqa: E402
from app.api.audit import activity_ns  # noqa: E402
from app.api.audit import ns as audit_ns  # noqa: E402
from app.api.auth import ns as auth_ns  # noqa: E402
from app.api.cookie_session import ns as cookie_session_ns  # noqa: E402
from app.api.mfa import ns as mfa_ns  # noqa: E402
from app.api.sessions import ns as sessions_ns  # noqa: E402
from app.api.tokens import ns as tokens_ns  # noqa: E402

api.add_namespace(accounts_ns, path="/accounts")
api.add_namespace(auth_ns, path="/auth")
api.add_namespace(mfa_ns, path="/accounts/me/mfa")
api.add_namespace(sessions_ns, path="/accounts/me/sessions")
api.add_namespace(cookie_session_ns, path="/auth/session")
api.add_namespace(tokens_ns, path="/accounts/me/tokens")
api.add_namespace(admin_ns, path="/admin")
api.add_namespace(audit_ns, path="/admin/audit-events")
api.add_namespace(activity_ns, path="/accounts/me/activity")

API_SURFACE = surfaces.Surface(
    "api",
    render_error=render_api_error,
    headers=surfaces.API_SURFACE.headers,
    cache_control=surfaces.API_SURFACE.cache_control,
)


def init_app(app: Flask) -> None:
    """Register the API, the well-known documents and the docs page, each on its surface."""
    from app.api.docs import DOCS_SURFACE
    from app.api.docs import blueprint as docs_blueprint
    from app.api.jwks import blueprint as jwks_blueprint

    security.init_app(app)
    app.register_blueprint(blueprint)
    app.register_blueprint(jwks_blueprint)
    surfaces.register(app, API_SURFACE, blueprint.name)
    surfaces.register(app, surfaces.API_SURFACE, jwks_blueprint.name)
    if app.extensions["gatehouse"].settings.docs_enabled:
        app.register_blueprint(docs_blueprint)
        surfaces.register(app, DOCS_SURFACE, docs_blueprint.name, "restx_doc")
    else:
        app.before_request(_hide_docs)


def _hide_docs() -> None:
    """DOCS_ENABLED off: the OpenAPI document and Swagger UI's assets are not served."""
    if request.endpoint in ("api.specs", "restx_doc.static"):
        raise NotFound()
