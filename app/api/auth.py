"""``/auth``: login, refresh-token rotation, logout, email verification and password reset."""

from __future__ import annotations

from flask import request
from flask_restx import Namespace, Resource

from app.api.accounts import PASSWORD_RULES
from app.api.bodies import body, raises, returns
from app.api.schemas import (
    Accepted,
    EmailVerificationRequest,
    LoginRequest,
    LoginResponse,
    PasswordResetConfirmRequest,
    PasswordResetRequest,
    RefreshRequest,
    TokenResponse,
)
from app.api.security import auth_required, current_principal
from app.errors import (
    Busy,
    EmailAlreadyVerified,
    EmailNotVerified,
    InvalidCredentials,
    InvalidEmail,
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionExpired,
    SessionRevoked,
    TokenExpired,
    TokenMalformed,
    TokenSuperseded,
    TokenUnknown,
    TokenUsed,
)
from app.rate_limits import rate_limited
from app.services import auth as auth_service
from app.services import devices, password_reset, verification
from app.services.mfa import MfaRequired

# Every way a mailed token can fail; each its own code, all 400, none changes anything.
TOKEN_ERRORS = (TokenMalformed, TokenUnknown, TokenUsed, TokenSuperseded, TokenExpired)
RESET_ACCEPTED = {
    "detail": "If an account has this address, a message with a link to reset its password "
    "is on its way to it."
}

ns = Namespace("auth", description="Login, token refresh and logout")


def login_client() -> dict[str, str | None]:
    """What a login records of the client: its address, its User-Agent, and the device token
    an earlier login on it returned (lockout's denial-of-service guard, RL-03)."""
    return {
        "ip_address": request.remote_addr,
        "user_agent": request.user_agent.string,
        "device_token": request.headers.get(devices.HEADER),
    }


@ns.route("/login")
class Login(Resource):
    @rate_limited("login_per_ip", "login_per_account")
    @body(LoginRequest)
    @ns.header(devices.HEADER, "The device token an earlier login on this device returned")
    @returns(
        LoginResponse,
        200,
        "Logged in: a new session and its first token pair; or, with two-factor "
        "authentication on, mfa_required and the mfa_token to send to POST /auth/mfa",
        headers={devices.HEADER: "Send it back on this device's next logins"},
    )
    @raises(InvalidCredentials, EmailNotVerified, Busy)
    def post(self, body: LoginRequest):
        """Log in with email and password; opens a new session.

        An unknown email, a wrong password and a locked account get the same answer, after the
        same work. Where logins need a verified address (`LOGIN_REQUIRES_VERIFIED_EMAIL`, on in
        production), an unverified account gets 403 `email_not_verified`, only after the right
        password, and a fresh verification link by mail.

        The answer's `Gatehouse-Device-Token` header holds a token to send back (same header)
        on this device's next logins: a device that logged in before is not locked out by
        failures from elsewhere.

        With two-factor authentication (TOTP) on, the right password answers no tokens but
        `{"mfa_required": true, "mfa_token": …}`: send the `mfa_token` with a code to
        `POST /auth/mfa` to complete the login.
        """
        pair = auth_service.login(
            email=body.email,
            password=body.password,
            **login_client(),
        )
        if isinstance(pair, MfaRequired):
            return pair
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
    @auth_required(interactive_only=True)
    @returns(None, 204, "Session ended: its refresh and access tokens stop working")
    def post(self):
        """End the current session."""
        auth_service.logout(current_principal())


@ns.route("/verify-email")
class VerifyEmail(Resource):
    @rate_limited("email_per_ip")
    @body(EmailVerificationRequest)
    @returns(None, 204, "Address verified; new access tokens say `email_verified: true`")
    @raises(*TOKEN_ERRORS)
    def post(self, body: EmailVerificationRequest):
        """Verify the account's address with the token from the emailed link.

        A token is single use, lives 30 minutes (`EMAIL_VERIFICATION_TOKEN_LIFETIME_SECONDS`)
        and dies when a newer one is sent or the address changes.
        """
        verification.verify_email(token=body.token)


@ns.route("/verify-email/resend")
class ResendVerification(Resource):
    @auth_required(interactive_only=True)
    @rate_limited("email_per_ip")
    @returns(Accepted, 202, "A new link is on its way; earlier ones stop working")
    @raises(EmailAlreadyVerified)
    def post(self):
        """Mail a fresh verification link to the caller's address."""
        verification.resend_verification(current_principal())
        return {"detail": "A message with a link to verify the address is on its way to it."}


@ns.route("/password-reset")
class PasswordReset(Resource):
    @rate_limited("password_reset_per_ip")
    @body(PasswordResetRequest)
    @returns(Accepted, 202, "The same answer whether or not an account has the address")
    @raises(InvalidEmail)
    def post(self, body: PasswordResetRequest):
        """Ask for a password-reset link by mail.

        The answer, and the time it takes, are the same for every address that could be one,
        with or without an account, and for requests beyond an account's mail budget, which
        send nothing. Only an account's own address receives a link.
        """
        password_reset.request_password_reset(email=body.email)
        return RESET_ACCEPTED


@ns.route("/password-reset/confirm")
class PasswordResetConfirm(Resource):
    @rate_limited("password_reset_per_ip")
    @body(PasswordResetConfirmRequest)
    @returns(None, 204, "Password set; every session of the account ended")
    @raises(*TOKEN_ERRORS, *PASSWORD_RULES, Busy)
    def post(self, body: PasswordResetConfirmRequest):
        """Set a new password with the token from the emailed link.

        Every session of the account ends and no tokens are returned: log in with the new
        password. A lockout is lifted, and the account is told by mail. The token is single
        use, lives 30 minutes (`PASSWORD_RESET_TOKEN_LIFETIME_SECONDS`) and dies when a newer
        one is sent or the password changes.
        """
        password_reset.reset_password(token=body.token, new_password=body.new_password)
