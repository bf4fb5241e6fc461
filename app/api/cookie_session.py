"""``/auth/session``: cookie-session mode, for browser apps that keep no tokens in JavaScript.

A login here sets an HttpOnly session cookie instead of answering tokens; every endpoint that
takes a Bearer token takes the cookie too, and a request that changes something with it must
carry the session's CSRF token in ``X-CSRF-Token`` (SECURITY.md HTTP-09). The session is the
same row a token login opens: it is listed, ended and purged the same way.
"""

from __future__ import annotations

from flask_restx import Namespace, Resource
from werkzeug.http import dump_cookie

from app.api.auth import login_client
from app.api.bodies import Reply, also_returns, body, raises, returns
from app.api.mfa import MFA_TOKEN_ERRORS, SECOND_FACTOR_ERRORS, second_factor_rules
from app.api.schemas import CookieSessionResponse, LoginRequest, LoginResponse, MfaLoginRequest
from app.api.security import auth_required, cookie_name, cookie_secure, current_principal
from app.errors import Busy, EmailNotVerified, InvalidCredentials
from app.rate_limits import rate_limited
from app.runtime import runtime
from app.services import auth as auth_service
from app.services import cookie_sessions, devices
from app.services.cookie_sessions import OpenedCookieSession
from app.services.mfa import MfaRequired

ns = Namespace("session", description="Cookie-session mode: login and logout with a cookie")

SET_COOKIE = {
    "Set-Cookie": "The session cookie: `__Host-gatehouse_session` (HttpOnly, Secure, "
    "SameSite=Lax, Path=/)",
    devices.HEADER: "Send it back on this device's next logins",
}


def _cookie_header(value: str, max_age: int) -> str:
    return dump_cookie(
        cookie_name(),
        value,
        max_age=max_age,
        path="/",
        secure=cookie_secure(),
        httponly=True,
        samesite="Lax",
    )


def _with_cookie(opened: OpenedCookieSession) -> tuple[CookieSessionResponse, dict[str, str]]:
    body = CookieSessionResponse(csrf_token=opened.csrf_token, expires_at=opened.expires_at)
    max_age = int((opened.expires_at - runtime().clock.now()).total_seconds())
    headers = {"Set-Cookie": _cookie_header(opened.cookie, max_age)}
    if opened.device_token:
        headers[devices.HEADER] = opened.device_token
    return body, headers


@ns.route("")
class CookieSession(Resource):
    @rate_limited("login_per_ip", "login_per_account")
    @body(LoginRequest)
    @ns.header(devices.HEADER, "The device token an earlier login on this device returned")
    @returns(
        CookieSessionResponse,
        200,
        "Logged in: the session cookie is set; the body holds its CSRF token",
        headers=SET_COOKIE,
    )
    @also_returns(
        LoginResponse,
        202,
        "Two-factor authentication on: no cookie yet; send the mfa_token with a code to "
        "POST /auth/session/mfa",
    )
    @raises(InvalidCredentials, EmailNotVerified, Busy)
    def post(self, body: LoginRequest):
        """Log in with email and password and get a session cookie instead of tokens.

        The same rules as `POST /auth/login` (lockout, rate limits, verified addresses,
        device tokens). With two-factor authentication on, the answer is 202 with
        `mfa_required` and `mfa_token`, and `POST /auth/session/mfa` completes the login.
        """
        opened = auth_service.login(
            email=body.email,
            password=body.password,
            **login_client(),
            cookie=True,
        )
        if isinstance(opened, MfaRequired):
            return Reply(202, opened)
        assert isinstance(opened, OpenedCookieSession)
        return _with_cookie(opened)

    @auth_required()
    @returns(CookieSessionResponse, 200, "The session's CSRF token, again (after a page reload)")
    def get(self):
        """Read the CSRF token of the session the cookie names (after a page reload)."""
        principal = current_principal()
        session = principal.session
        assert session is not None
        return CookieSessionResponse(
            csrf_token=cookie_sessions.csrf_token(session.id), expires_at=session.expires_at
        )

    @auth_required()
    @returns(None, 204, "Logged out: the session ended and the cookie is cleared")
    def delete(self):
        """Log out: end the session the credential belongs to, and clear the cookie."""
        principal = current_principal()
        cookie_hash = principal.session.cookie_hash if principal.session else None
        auth_service.logout(principal)
        if cookie_hash:
            cookie_sessions.forget(cookie_hash)
        return None, {"Set-Cookie": _cookie_header("", 0)}


@ns.route("/mfa")
class CookieSessionMfa(Resource):
    @rate_limited("mfa_per_ip")
    @body(MfaLoginRequest, rules=second_factor_rules)
    @ns.header(devices.HEADER, "The device token an earlier login on this device returned")
    @returns(
        CookieSessionResponse,
        200,
        "Logged in (amr: pwd, otp): the session cookie is set; the body holds its CSRF token",
        headers=SET_COOKIE,
    )
    @raises(*MFA_TOKEN_ERRORS, *SECOND_FACTOR_ERRORS)
    def post(self, body: MfaLoginRequest):
        """Complete a cookie login with TOTP on: the `mfa_token` and a code."""
        opened = auth_service.complete_mfa_login(
            mfa_token=body.mfa_token,
            code=body.code,
            recovery_code=body.recovery_code,
            **login_client(),
            cookie=True,
        )
        assert isinstance(opened, OpenedCookieSession)
        return _with_cookie(opened)
