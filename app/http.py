"""The HTTP layer under every blueprint: request ids, body size, headers on every answer.

Which security headers an answer gets beyond the common ones (CSP, caching) is its surface's
choice (``app/surfaces.py``), made per blueprint.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.wsgi import get_content_length

from app.runtime import settings
from app.surfaces import current_surface

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")
_OVERSIZED_KEY = "gatehouse.body_too_large"
_UNREADABLE_KEY = "gatehouse.body_unreadable"


# Probes and scrapes come by pod or container address, not by the public host name.
UNNAMED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def init_app(app: Flask) -> None:
    settings = app.extensions["gatehouse"].settings
    app.wsgi_app = BoundedChunkedBody(app.wsgi_app, settings.max_content_length)
    if settings.trusted_hosts:
        app.wsgi_app = ProbesNeedNoHost(app.wsgi_app, settings.trusted_hosts[0])
    app.before_request(_assign_request_id)
    app.before_request(_refuse_oversized_body)
    app.after_request(_add_headers)


class BoundedChunkedBody:
    """WSGI middleware: a body without ``Content-Length`` (chunked) gets one, or a 413.

    Werkzeug stops reading such a body at ``MAX_CONTENT_LENGTH`` instead of refusing it, so a
    larger one would reach a parser cut short. Here it is read up to one byte past the limit:
    a body of exactly the limit is passed on whole, with its length; a longer one is marked and
    refused with 413 before any view runs, whatever the endpoint parses (JSON, forms). A body
    whose chunk framing is broken is refused with 400 the same way, not left to crash the app.
    """

    def __init__(self, wsgi_app: Any, limit: int) -> None:
        self.wsgi_app = wsgi_app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        limit = self.limit
        # Werkzeug's rule: a chunked body's Content-Length (if any) means nothing.
        if get_content_length(environ) is None and environ.get("wsgi.input_terminated"):
            try:
                body = environ["wsgi.input"].read(limit + 1)
            except (OSError, ValueError):  # bad chunk framing, or the client went away
                environ[_UNREADABLE_KEY] = True
                body = b""
            if len(body) > limit:
                environ[_OVERSIZED_KEY] = True
                body = b""
            # From here on the body is an ordinary one of known length.
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ.pop("wsgi.input_terminated", None)
        return self.wsgi_app(environ, start_response)


class ProbesNeedNoHost:
    """WSGI middleware: liveness, readiness and metrics answer whatever ``Host`` they are sent.

    Orchestrators call them at the pod's address; ``TRUSTED_HOSTS`` (which protects the
    redirects and links of everything else) would refuse them. Their answers build no URL.
    """

    def __init__(self, wsgi_app: Any, host: str) -> None:
        self.wsgi_app = wsgi_app
        self.host = host

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in UNNAMED_PATHS:
            environ["HTTP_HOST"] = self.host
        return self.wsgi_app(environ, start_response)


def _refuse_oversized_body() -> None:
    if request.environ.get(_UNREADABLE_KEY):
        raise BadRequest("The request body could not be read.")
    if request.environ.get(_OVERSIZED_KEY):
        raise RequestEntityTooLarge()


def _assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


@dataclass(frozen=True)
class RequestOrigin:
    """Where a request came from, as the audit log records it (``services/audit.py``)."""

    client_ip: str | None
    user_agent: str | None
    request_id: str | None


def request_origin() -> RequestOrigin | None:
    """The current request's client address (as ``TRUSTED_PROXY_HOPS`` resolves it, the one
    the rate limits and the access log use), its User-Agent (printable, at most 255
    characters) and its request id; None outside a request (a CLI command, a job)."""
    if not has_request_context():
        return None
    agent = "".join(char for char in request.headers.get("User-Agent", "") if char.isprintable())
    return RequestOrigin(
        client_ip=(request.remote_addr or None) and request.remote_addr[:45],
        user_agent=agent[:255] or None,
        request_id=getattr(g, "request_id", None),
    )


def _add_headers(response: Response) -> Response:
    headers = response.headers
    if 300 <= response.status_code < 400 and response.mimetype == "text/html":
        # Werkzeug's slash redirects carry a small HTML page; the Location header is enough.
        response.set_data(b"")
        del headers["Content-Type"]
    elif request.method == "OPTIONS" and response.status_code == 200 and not response.get_data():
        # Flask's automatic OPTIONS answer: the Allow header is all of it, so no content.
        response.status_code = 204
        del headers["Content-Type"]
    request_id = getattr(g, "request_id", None)
    if request_id:
        headers["X-Request-ID"] = request_id
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    surface = current_surface()
    headers.update(surface.headers)
    if surface.cache_control and "Cache-Control" not in headers:
        headers["Cache-Control"] = surface.cache_control
        if surface.cache_control == "no-store":
            headers["Pragma"] = "no-cache"  # HTTP/1.0 caches
    if settings().hsts_enabled:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return response
