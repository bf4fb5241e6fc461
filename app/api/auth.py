"""``/auth``: login, refresh-token rotation and logout."""

from __future__ import annotations

from dataclasses import asdict

from flask import Response, request
from flask_restx import Namespace, Resource, fields

from app.api.schemas import problem_response
from app.api.security import bearer_required, current_principal
from app.api.validation import parse_json_body
from app.services import auth as auth_service

ns = Namespace("auth", description="Login, token refresh and logout")
ns.add_model(problem_response.name, problem_response)

login_request = ns.model(
    "LoginRequest",
    {
        "email": fields.String(required=True, max_length=254, example="ada@example.com"),
        "password": fields.String(required=True),
    },
    strict=True,
)
refresh_request = ns.model(
    "RefreshRequest", {"refresh_token": fields.String(required=True)}, strict=True
)
token_response = ns.model(
    "TokenResponse",
    {
        "access_token": fields.String(description="JWT; verify it with /.well-known/jwks.json"),
        "token_type": fields.String(example="Bearer"),
        "expires_in": fields.Integer(description="Access-token lifetime in seconds"),
        "refresh_token": fields.String(description="Opaque; single use"),
        "refresh_expires_in": fields.Integer(description="Refresh-token lifetime in seconds"),
    },
)


def _tokens(pair: auth_service.TokenPair):
    return asdict(pair), 200, {"Cache-Control": "no-store", "Pragma": "no-cache"}


@ns.route("/login")
class Login(Resource):
    @ns.expect(login_request)
    @ns.response(200, "Logged in", token_response)
    @ns.response(400, "Invalid body", problem_response)
    @ns.response(401, "Invalid email or password (`invalid_credentials`)", problem_response)
    def post(self):
        """Log in with email and password; opens a new session."""
        data = parse_json_body(login_request)
        pair = auth_service.login(
            email=data["email"],
            password=data["password"],
            ip_address=request.remote_addr,
            user_agent=request.user_agent.string,
        )
        return _tokens(pair)


@ns.route("/refresh")
class Refresh(Resource):
    @ns.expect(refresh_request)
    @ns.response(200, "A new token pair; the presented refresh token is spent", token_response)
    @ns.response(400, "Invalid body", problem_response)
    @ns.response(
        401,
        "Unknown (`invalid_refresh_token`), reused (`refresh_token_reused`: the session is "
        "ended), revoked (`session_revoked`) or expired (`session_expired`)",
        problem_response,
    )
    def post(self):
        """Exchange a refresh token for a new access and refresh token."""
        data = parse_json_body(refresh_request)
        return _tokens(auth_service.refresh(refresh_token=data["refresh_token"]))


@ns.route("/logout")
@ns.doc(security="Bearer")
class Logout(Resource):
    method_decorators = [bearer_required]

    @ns.response(204, "Session ended: its refresh and access tokens stop working")
    @ns.response(401, "Missing, invalid or revoked access token", problem_response)
    def post(self):
        """End the current session."""
        auth_service.logout(current_principal())
        return Response(status=204)
