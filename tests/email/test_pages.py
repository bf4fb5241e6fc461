"""The pages mailed links lead to (``/account/…``, app/pages/), end to end (SECURITY.md EM-07,
EM-03, EM-05, HTTP-01, HTTP-06, HTTP-07).

A page holds a token only in the browser: the link carries it in the URL fragment, the page's
script sends it in a JSON body when the person presses the button. So the server side of a page
is static: it must spend nothing on a visit (mail scanners open links), echo nothing of the
request, leak nothing through ``Referer``, run nothing but our own script, and never be framed.
Every token a test uses comes from the link of a message the loopback SMTP server received.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from flask import Flask

from tests.email.conftest import Inbox
from tests.helpers import STRONG_PASSWORD, ApiActions, assert_problem, link_in, snapshot, token_in
from tests.mail.conftest import Delivered

ADA = "ada@example.com"
NEW_ADDRESS = "ada.new@example.org"
NEW_PASSWORD = "a brand new passphrase for ada"
CONFIGS = ["testing", "production"]
# A generous mail budget: each test's sign-ups and requests stay clear of the limits.
BUDGET = {"MAIL_RATE_LIMIT_PER_ACCOUNT": "1000/hour"}


@dataclass(frozen=True)
class Flow:
    """One kind of mailed link: the page it leads to and the API call the page makes."""

    purpose: str
    page: str
    endpoint: str
    subject: str
    to: str
    extra: dict = field(default_factory=dict)


FLOWS = {
    "verify_email": Flow(
        "verify_email",
        "/account/verify-email",
        "/api/v1/auth/verify-email",
        "Verify your email address",
        ADA,
    ),
    "reset_password": Flow(
        "reset_password",
        "/account/reset-password",
        "/api/v1/auth/password-reset/confirm",
        "Reset your password",
        ADA,
        {"new_password": NEW_PASSWORD},
    ),
    "change_email": Flow(
        "change_email",
        "/account/confirm-email",
        "/api/v1/accounts/me/email/confirm",
        "Confirm your new email address",
        NEW_ADDRESS,
    ),
}
PAGES = [flow.page for flow in FLOWS.values()]
ASSETS = {
    "/account/assets/account.js": "text/javascript",
    "/account/assets/account.css": "text/css",
}
# CSP sources a page may name: its own origin, or nothing. No inline code ('unsafe-inline',
# nonces, hashes), no eval, no scheme (https:, data:) and no other host.
ALLOWED_SOURCES = {"'self'", "'none'"}
# What an answer must never show of the server's insides (HTTP-01).
LEAKS = ("traceback", 'file "/', "werkzeug", "sqlalchemy", "psycopg", "jinja2", ".py")


@pytest.fixture
def build(flow_app, clock_factory, redis_prefix):
    """``build(config_name="testing", **overrides)``: a flow app, its clock frozen, its mail
    budgets counted under a Redis prefix of its own (when the suite runs with Redis)."""
    prefix = f"{redis_prefix}{uuid.uuid4().hex}:" if redis_prefix is not None else None

    def make(config_name: str = "testing", **overrides) -> Flask:
        if prefix is not None:
            overrides.setdefault("REDIS_KEY_PREFIX", prefix)
        app = flow_app(config_name, **{**BUDGET, **overrides})
        clock_factory(app)
        return app

    return make


def mail_a_link(app: Flask, inbox: Inbox, flow: Flow) -> Delivered:
    """Do what makes Gatehouse mail ``flow``'s link to a fresh account; the message that came."""
    api = ApiActions(app.test_client())
    if flow.purpose == "verify_email":
        api.signup(ADA, verify=False)
    elif flow.purpose == "reset_password":
        api.signup(ADA)
        inbox.deliver(app)
        assert (
            api.client.post("/api/v1/auth/password-reset", json={"email": ADA}).status_code == 202
        )
    else:
        tokens = api.signup_and_login(ADA)
        inbox.deliver(app)
        response = api.client.post(
            "/api/v1/accounts/me/email",
            json={"new_email": NEW_ADDRESS, "password": STRONG_PASSWORD},
            headers=tokens.headers,
        )
        assert response.status_code == 202, response.get_json()
    arrived = [
        m
        for m in inbox.deliver(app)
        if m.rcpt_tos == [flow.to] and m.message["Subject"] == flow.subject
    ]
    assert len(arrived) == 1, [m.message["Subject"] for m in arrived]
    return arrived[0]


def redeem(client, flow: Flow, token: str):
    """What the page's script does when the button is pressed: the token in a JSON body."""
    return client.post(flow.endpoint, json={"token": token, **flow.extra})


def csp_of(response) -> dict[str, list[str]]:
    """The one Content-Security-Policy header, as directive -> sources."""
    [header] = response.headers.getlist("Content-Security-Policy")
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in directives, f"{name} given twice"
        directives[name] = sources
    return directives


def assert_page_security_headers(response, config_name: str) -> None:
    """EM-07, HTTP-07: no Referer leaves the page, only our own script and style run, nobody
    frames it, nothing is sniffed; HSTS in production."""
    headers = response.headers
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    csp = csp_of(response)
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    for directive, sources in csp.items():
        assert set(sources) <= ALLOWED_SOURCES, (directive, sources)
    # frame-ancestors does the denial; an X-Frame-Options, if any, must agree with it.
    assert headers.get("X-Frame-Options", "DENY").upper() == "DENY"
    if config_name == "production":
        assert headers["Strict-Transport-Security"].startswith("max-age=")
    else:
        assert "Strict-Transport-Security" not in headers


def assert_not_stored(response) -> None:
    """HTTP-07: neither the browser nor a cache in between keeps the answer."""
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def fetch(client, path: str, **kwargs):
    """GET ``path``; the answer read whole and closed (a served file is a stream)."""
    response = client.get(path, **kwargs)
    response.get_data()
    response.close()
    return response


def assert_no_leak(response) -> None:
    lowered = response.get_data(as_text=True).lower()
    for leak in LEAKS:
        assert leak not in lowered, leak


class Markup(HTMLParser):
    """A page's elements: ``tags`` as (name, attributes), and the text inside each script."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.script_text.append("")

    def handle_endtag(self, tag) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data) -> None:
        if self._in_script:
            self.script_text[-1] += data

    def all(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.tags if tag == name]


# --- Headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize("page", PAGES)
def test_page_answers_200_html_with_no_referrer_strict_csp_and_no_store(build, config_name, page):
    """EM-07, HTTP-07: a page that will hold a token sends Referrer-Policy: no-referrer, allows
    no inline script and no other origin, cannot be framed and is never stored."""
    app = build(config_name)

    response = app.test_client().get(page)

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.mimetype_params.get("charset") == "utf-8"
    assert_page_security_headers(response, config_name)
    assert_not_stored(response)


@pytest.mark.parametrize("page", PAGES)
def test_page_markup_needs_nothing_its_csp_forbids(build, page):
    """HTTP-07: no inline script, handler or style (the CSP would block them, so the page would
    silently not work); every script and stylesheet is one of ours and answers 200."""
    client = build().test_client()
    markup = Markup(client.get(page).get_data(as_text=True))

    scripts = markup.all("script")
    assert len(scripts) == 1
    assert all(text.strip() == "" for text in markup.script_text)
    assert markup.all("style") == []
    for _tag, attrs in markup.tags:
        assert not any(name.startswith("on") for name in attrs), attrs
        assert "style" not in attrs, attrs
    assert {"name": "referrer", "content": "no-referrer"} in markup.all("meta")
    assets = [s["src"] for s in scripts] + [
        link["href"] for link in markup.all("link") if link.get("rel") == "stylesheet"
    ]
    assert sorted(assets) == sorted(ASSETS)
    for asset in assets:
        assert fetch(client, asset).status_code == 200


@pytest.mark.parametrize("page", PAGES)
def test_page_has_no_form_that_submits_to_a_server(build, page):
    """EM-07: the token never leaves in a URL: the page's form has no action and no method that
    would post or get it (the script sends it in a JSON body), and the CSP refuses form posts."""
    response = build().test_client().get(page)
    [form] = Markup(response.get_data(as_text=True)).all("form")

    assert "action" not in form and "method" not in form
    assert csp_of(response)["form-action"] == ["'none'"]


# --- A visit does nothing ---------------------------------------------------------------------


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize("purpose", list(FLOWS))
def test_loading_the_page_with_the_token_in_query_or_fragment_spends_nothing(
    build, inbox, config_name, purpose
):
    """EM-03, EM-07: a mail scanner opening the link (token in the fragment, or pasted into the
    query string) changes no row; the token still works afterwards through the API."""
    flow = FLOWS[purpose]
    app = build(config_name)
    token = token_in(mail_a_link(app, inbox, flow).message)
    client = app.test_client()
    before = snapshot(app)

    for url in (
        f"{flow.page}#token={token}",
        f"{flow.page}?token={token}",
        f"{flow.page}?token={token}#token={token}",
    ):
        assert client.get(url).status_code == 200
        assert client.head(url).status_code == 200

    assert snapshot(app) == before
    assert inbox.deliver(app) == []
    assert redeem(client, flow, token).status_code == 204


@pytest.mark.parametrize("page", PAGES)
def test_page_never_echoes_its_query_string(build, page):
    """EM-07: a token put in the query string is not written into the page (nor any other
    parameter): the page is the same bytes whatever the query."""
    app = build()
    client = app.test_client()
    token = "j0QhuGGS7HOr2KdXmyy2vs3eIhM0mhtCQinPjgjjczI"
    plain = client.get(page)

    response = client.get(page, query_string={"token": token, "next": "<script>alert(1)</script>"})

    assert response.status_code == 200
    assert response.get_data() == plain.get_data()
    assert token not in response.get_data(as_text=True)
    assert all(token not in value for _, value in response.headers)


@pytest.mark.parametrize("purpose", list(FLOWS))
def test_post_of_a_token_to_the_page_answers_405_and_spends_nothing(build, inbox, purpose):
    """HTTP-06, EM-03: the page is not an endpoint; a form or bot posting the token to it gets a
    405 and the token stays usable."""
    flow = FLOWS[purpose]
    app = build()
    token = token_in(mail_a_link(app, inbox, flow).message)
    client = app.test_client()
    before = snapshot(app)

    response = client.post(flow.page, json={"token": token, **flow.extra})

    assert response.status_code == 405
    assert snapshot(app) == before
    assert redeem(client, flow, token).status_code == 204


# --- Errors on the pages' surface -------------------------------------------------------------


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_on_a_page_answers_405_html_with_allow_and_no_trace(
    build, config_name, method
):
    """HTTP-01, HTTP-06: the pages' errors are small HTML pages (their surface's renderer),
    with the catalogue's code, an Allow header, the pages' headers, and nothing of the server."""
    app = build(config_name)

    response = app.test_client().open("/account/verify-email", method=method, json={})

    assert response.status_code == 405
    assert response.mimetype == "text/html"
    allow = {part.strip() for part in response.headers["Allow"].split(",")}
    assert "GET" in allow and method not in allow
    body = response.get_data(as_text=True)
    assert "<code>method_not_allowed</code>" in body
    assert Markup(body).all("script") == []
    assert_page_security_headers(response, config_name)
    assert_not_stored(response)
    assert_no_leak(response)


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize(
    "path",
    [
        "/account/assets/nope.js",
        "/account/assets/%3Cscript%3Ealert(1)%3C%2Fscript%3E.js",
        "/account/assets/../../config.py",
        "/account/assets/%2e%2e/__init__.py",
    ],
    ids=["missing", "markup", "traversal", "encoded-traversal"],
)
def test_unknown_asset_answers_404_html_without_echo_or_trace(build, config_name, path):
    """HTTP-01, HTTP-06: a missing asset (or a path that tries to leave the assets folder) is the
    pages' 404 page; the requested name is not reflected and no file outside is served."""
    app = build(config_name)

    response = app.test_client().get(path)

    assert response.status_code == 404
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert "<code>not_found</code>" in body
    assert "alert" not in body and "<script>alert" not in body
    assert "SECRET_KEY" not in body and "Blueprint" not in body
    assert_page_security_headers(response, config_name)
    assert_not_stored(response)
    assert_no_leak(response)


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize(
    "path", ["/account/nope", "/account/verify-email/", "/account", "/account/"]
)
def test_unknown_path_under_account_answers_404_problem_json_without_trace(
    build, config_name, path
):
    """HTTP-01, HTTP-06: a path no route serves belongs to no blueprint, so it gets the default
    surface's answer (app/surfaces.py): a problem document under the API's CSP, no hints."""
    app = build(config_name)

    response = app.test_client().get(path)

    body = assert_problem(response, 404, "not_found")
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert csp_of(response) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}
    assert "/account/" not in body["detail"]
    assert_not_stored(response)
    assert_no_leak(response)


@pytest.mark.parametrize("config_name", CONFIGS)
def test_api_errors_stay_problem_json_beside_the_html_pages(build, config_name):
    """HTTP-01: the same mistake on each surface gets that surface's format: a wrong method on
    a page is an HTML page, on the endpoint it posts to a problem document."""
    client = build(config_name).test_client()

    page = client.put("/account/verify-email")
    api = client.put("/api/v1/auth/verify-email", json={})

    assert page.status_code == 405 and page.mimetype == "text/html"
    assert_problem(api, 405, "method_not_allowed")
    assert csp_of(api) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}
    assert "<" not in api.get_data(as_text=True)


# --- Assets -----------------------------------------------------------------------------------


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize(("asset", "mimetype"), list(ASSETS.items()))
def test_asset_is_served_with_its_content_type_and_the_pages_security_headers(
    build, config_name, asset, mimetype
):
    """HTTP-07: the script and stylesheet come with their real type (nosniff then enforces it),
    the pages' CSP and Referrer-Policy, and are revalidated before reuse."""
    app = build(config_name)
    client = app.test_client()

    response = fetch(client, asset)

    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.mimetype_params.get("charset") == "utf-8"
    assert_page_security_headers(response, config_name)
    assert response.headers["Cache-Control"] in ("no-cache", "no-store")
    page = client.get("/account/verify-email")
    assert response.headers["Content-Security-Policy"] == page.headers["Content-Security-Policy"]


def test_script_reads_the_token_from_the_fragment_and_sends_it_in_a_json_body(build):
    """EM-07: the token is read from ``location.hash`` (never the query), dropped from the
    address bar, and posted as JSON without credentials or a Referer."""
    script = fetch(build().test_client(), "/account/assets/account.js").get_data(as_text=True)

    assert "window.location.hash" in script
    assert "location.search" not in script
    assert "history.replaceState" in script
    assert '"Content-Type": "application/json"' in script
    assert 'referrerPolicy: "no-referrer"' in script
    assert 'credentials: "omit"' in script


# --- Mailed links lead here -------------------------------------------------------------------


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize("purpose", list(FLOWS))
def test_link_in_a_mailed_message_leads_to_its_page_which_answers_200(
    build, inbox, config_name, purpose
):
    """EM-05, EM-07: the link of a real message (sign-up, reset, email change) is the flow's
    page with the token in the fragment only; that page answers 200 and posts to the flow's
    endpoint, where the same token works."""
    flow = FLOWS[purpose]
    app = build(config_name)
    delivered = mail_a_link(app, inbox, flow)
    link = urlsplit(link_in(delivered.message))
    client = app.test_client()

    response = client.get(link.path)

    assert link.path == flow.page
    assert link.query == ""
    assert link.fragment == f"token={token_in(delivered.message)}"
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    [form] = Markup(response.get_data(as_text=True)).all("form")
    assert form["data-endpoint"] == flow.endpoint
    assert redeem(client, flow, token_in(delivered.message)).status_code == 204
