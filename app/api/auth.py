"""``/auth``: login, refresh-token rotation and logout."""

from __future__ import annotations

from flask import request
from flask_restx import Namespace, Resource

from app.api.bodies import body, raises, returns
from app.api.schemas import LoginRequest, RefreshRequest, TokenResponse
from app.api.security import auth_required, current_principal
from app.errors import (
    Busy,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionExpired,
    SessionRevoked,
)
from app.rate_limits import rate_limited
from app.services import auth as auth_service
from app.services import devices

ns = Namespace("auth", description="Login, token refresh and logout")


@ns.route("/login")
class Login(Resource):
    @rate_limited("login_per_ip", "login_per_account")
    @body(LoginRequest)
    @ns.header(devices.HEADER, "The device token an earlier login on this device returned")
    @returns(
        TokenResponse,
        200,
        "Logged in: a new session and its first token pair",
        headers={devices.HEADER: "Send it back on this device's next logins"},
    )
    @raises(InvalidCredentials, Busy)
    def post(self, body: LoginRequest):
        """Log in with email and password; opens a new session.

        An unknown email, a wrong password and a locked account get the same answer, after the
        same work. The answer's `Gatehouse-Device-Token` header holds a token to send back (same
        header) on this device's next logins: a device that logged in before is not locked out
        by failures from elsewhere.
        """
        pair = auth_service.login(
            email=body.email,
            password=body.password,
            ip_address=request.remote_addr,
            user_agent=request.user_agent.string,
            device_token=request.headers.get(devices.HEADER),
        )
        return pair, {devices.HEADER: pair.device_token}


@ns.route("/refresh")
class Refresh(Resource):
    @rate_limited("refresh_per_ip")
    @body(RefreshRequest)
    @returns(TokenResponse, 200, "A new token pair; the presented refresh token is spent")
    @raises(InvalidRefreshToken, RefreshTokenReused, SessionRevoked, SessionExpired)
    def post(self, body: RefreshRequest):
        """Exchange a refresh token for a new access and refresh token.

        A refresh token presented twice ends its whole session (`refresh_token_reused`).
        """
        return auth_service.refresh(refresh_token=body.refresh_token)


@ns.route("/logout")
class Logout(Resource):
    @auth_required()
    @returns(None, 204, "Session ended: its refresh and access tokens stop working")
    def post(self):
        """End the current session."""
        auth_service.logout(current_principal())
