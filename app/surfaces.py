"""Surfaces: how each part of the service answers, chosen per blueprint.

A surface is a blueprint's (or several blueprints') error format and security headers. The JSON
API answers errors as RFC 9457 problem documents under a CSP that allows nothing; the API docs
page runs Swagger UI under a CSP that allows exactly that; an OAuth/OIDC blueprint would answer
RFC 6749 error objects, and HTML pages an error page, by registering surfaces of their own.
The error codes stay in one catalogue (``app/errors.py``) whatever the format.

A request for a path no route serves belongs to no blueprint and gets the default surface; one
with a method its route does not allow belongs to that route's blueprint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from flask import Flask, Response, current_app, has_request_context, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app.errors import problem_from, problem_json

_EXTENSION_KEY = "gatehouse.surfaces"
DEFAULT = None  # the key of the default surface, for requests outside every blueprint

# Data is all an API answer is: it may run, load and embed nothing, and nobody may frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def render_problem_json(error: BaseException) -> Response:
    return problem_json(problem_from(error))


@dataclass(frozen=True)
class Surface:
    """One way of answering: an error renderer and the headers every answer carries.

    ``headers`` are set on every response (a view may not override them); ``cache_control``
    is the ``Cache-Control`` of responses whose view set none (None: leave it unset).
    """

    name: str
    render_error: Callable[[BaseException], Response] = render_problem_json
    headers: Mapping[str, str] = field(default_factory=dict)
    cache_control: str | None = None


API_SURFACE = Surface(
    "api",
    headers={"Content-Security-Policy": API_CSP},
    # Answers carry personal data or tokens: never store them.
    cache_control="no-store",
)


def init_app(app: Flask) -> None:
    app.extensions[_EXTENSION_KEY] = {DEFAULT: API_SURFACE}
    app.register_error_handler(Exception, render_error)


def register(app: Flask, surface: Surface, *blueprints: str) -> None:
    """Answer requests routed to ``blueprints`` (by name) the ``surface`` way."""
    for name in blueprints:
        app.extensions[_EXTENSION_KEY][name] = surface


def current_surface() -> Surface:
    surfaces: dict[str | None, Surface] = current_app.extensions[_EXTENSION_KEY]
    blueprint = _blueprint_of_request() if has_request_context() else None
    return surfaces.get(blueprint) or surfaces[DEFAULT]


def _blueprint_of_request() -> str | None:
    if request.blueprint is not None:
        return request.blueprint
    # A wrong method matched no rule, yet the path is a route of some blueprint: ask the map
    # which, with a method the route does allow.
    error = request.routing_exception
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        adapter = current_app.url_map.bind_to_environ(request.environ)
        try:
            endpoint, _ = adapter.match(method=next(iter(error.valid_methods)))
        except HTTPException:
            return None
        return endpoint.rpartition(".")[0] or None
    return None


def render_error(error: BaseException) -> Response:
    """The one error handler: every exception, rendered the current surface's way."""
    return current_surface().render_error(error)
