"""Cross-origin requests from browser apps (SECURITY.md HTTP-08), with flask-cors.

Only the exact origins of ``CORS_ALLOWED_ORIGINS`` are answered, each echoed back alone with
``Vary: Origin``; never ``*``, never ``null``, never an origin that merely resembles one on the
list. With the setting empty (the default) no CORS header is sent at all. Preflight answers are
cached by browsers for ``CORS_MAX_AGE_SECONDS``. No credentials mode: tokens travel in the
``Authorization`` header, which the app itself adds, not the browser.
"""

from __future__ import annotations

from flask import Flask, Response
from flask_cors import CORS

from app.services.devices import HEADER as DEVICE_HEADER

ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Request-ID", DEVICE_HEADER]
EXPOSED_HEADERS = [
    "Location",
    "Retry-After",
    "X-Request-ID",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    DEVICE_HEADER,
]


def init_app(app: Flask) -> None:
    settings = app.extensions["gatehouse"].settings
    if not settings.cors_allowed_origins:
        return
    CORS(
        app,
        resources={r"/api/v1/*": {}, r"/.well-known/*": {}},
        origins=list(settings.cors_allowed_origins),
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        methods=["GET", "POST", "PATCH", "DELETE"],
        max_age=settings.cors_max_age_seconds,
        supports_credentials=False,
        send_wildcard=False,
        vary_header=True,
    )
    app.after_request(_vary_on_origin)


def _vary_on_origin(response: Response) -> Response:
    """The answer depends on Origin even with one allowed origin (flask-cors says so only for
    several): a cache must not hand one origin's answer to another."""
    response.vary.add("Origin")
    return response
