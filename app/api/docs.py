"""``/api/v1/docs``: the Swagger UI page, on a surface of its own.

The page runs Swagger UI's scripts (served from Flask-RESTx's package, same origin) and one
script of ours that starts it; no inline script, so the page's CSP can forbid them. Its
errors are problem documents like the API's.
"""

from __future__ import annotations

from flask import Blueprint, render_template, url_for

from app import surfaces

blueprint = Blueprint(
    "docs",
    __name__,
    url_prefix="/api/v1/docs",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

# Swagger UI sets inline styles and draws some images as data: URLs; nothing else is allowed,
# nothing from another origin, and nobody may frame the page (clickjacking).
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
DOCS_SURFACE = surfaces.Surface("docs", headers={"Content-Security-Policy": DOCS_CSP})


@blueprint.get("")
def swagger_ui():
    """The interactive API documentation."""
    return render_template("docs.html", specs_url=url_for("api.specs"))
