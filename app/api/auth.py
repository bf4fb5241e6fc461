"""``/auth``: login, refresh-token rotation and logout."""

from __future__ import annotations

from flask import request
from flask_restx import Namespace, Resource

from app.api.bodies import body, raises, returns
from app.api.schemas import LoginRequest, RefreshRequest, TokenResponse
from app.api.security import auth_required, current_principal
from app.errors import (
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionExpired,
    SessionRevoked,
)
from app.services import auth as auth_service

ns = Namespace("auth", description="Login, token refresh and logout")


@ns.route("/login")
class Login(Resource):
    @body(LoginRequest)
    @returns(TokenResponse, 200, "Logged in: a new session and its first token pair")
    @raises(InvalidCredentials)
    def post(self, body: LoginRequest):
        """Log in with email and password; opens a new session.

        An unknown email and a wrong password get the same answer, after the same work.
        """
        return auth_service.login(
            email=body.email,
            password=body.password,
            ip_address=request.remote_addr,
            user_agent=request.user_agent.string,
        )


@ns.route("/refresh")
class Refresh(Resource):
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
