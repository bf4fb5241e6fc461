"""``/account/…``: the pages the links in Gatehouse's mail lead to, on a surface of their own.

A link carries its token in the URL fragment (``#token=…``), which browsers send to no server,
log and ``Referer`` (EM-07). The page's script reads it, drops it from the address bar and
history, and sends it in a JSON body to the API when the person presses the button: nothing
happens on a mere visit, so a mail scanner that opens links spends no token. Pages are static:
no data of anyone's is in them, only the script (same origin, no inline code; the CSP forbids
everything else). Their errors are small HTML pages, never a stack trace.

Deployments with their own front end point the links there instead (``MAIL_LINK_*``).
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, render_template

from app import surfaces
from app.errors import problem_from

blueprint = Blueprint(
    "pages",
    __name__,
    url_prefix="/account",
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

# Our script and stylesheet, calls to our own API, nothing else; no form posts, no framing.
PAGES_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


def render_html_error(error: BaseException) -> Response:
    """A page saying what went wrong, in the words of the error catalogue."""
    problem = problem_from(error)
    response = Response(
        render_template("pages/error.html", problem=problem),
        status=problem.status,
        mimetype="text/html",
    )
    response.headers.update(problem.headers)
    return response


PAGES_SURFACE = surfaces.Surface(
    "pages",
    render_error=render_html_error,
    headers={"Content-Security-Policy": PAGES_CSP},
    cache_control="no-store",
)


@blueprint.get("/verify-email")
def verify_email() -> str:
    """Where verification links lead: one button that verifies the address."""
    return render_template("pages/verify_email.html")


@blueprint.get("/reset-password")
def reset_password() -> str:
    """Where reset links lead: a form for the new password."""
    return render_template("pages/reset_password.html")


@blueprint.get("/confirm-email")
def confirm_email() -> str:
    """Where email-change links lead: one button that confirms the new address."""
    return render_template("pages/confirm_email.html")


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
    surfaces.register(app, PAGES_SURFACE, blueprint.name)
