"""Request ids and the headers every response carries."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, current_app, g, request

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")
DOCS_PREFIXES = ("/api/v1/docs", "/swaggerui/", "/api/v1/swagger.json")


def init_app(app: Flask) -> None:
    app.before_request(_assign_request_id)
    app.after_request(_add_headers)


def _assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


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
    if not request.path.startswith(DOCS_PREFIXES):
        # The docs page runs scripts; everything else is data and needs none.
        headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        if "Cache-Control" not in headers:
            # Answers carry personal data or tokens: never store them.
            headers["Cache-Control"] = "no-store"
            headers["Pragma"] = "no-cache"
    if current_app.config["HSTS_ENABLED"]:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return response

