"""Two-factor authentication: ``/accounts/me/mfa`` (enrolment, recovery codes, disabling) and
``/auth/mfa``, the second step of a login with TOTP on (SECURITY.md MFA-01…MFA-05).

A wrong TOTP or recovery code is 400 with its own code, naming the field (the caller is known,
or holds an ``mfa_token``); a bad ``mfa_token`` is 401 with its own code. Disabling is
``DELETE /accounts/me/mfa/totp`` with a JSON body, as account deletion is.
"""

from __future__ import annotations

from typing import Any

from flask_restx import Namespace, Resource

from app.api.auth import login_client
from app.api.auth import ns as auth_ns
from app.api.bodies import body, raises, returns
from app.api.schemas import (
    MfaDisableRequest,
    MfaLoginRequest,
    RecoveryCodesRequest,
    RecoveryCodesResponse,
    TokenResponse,
    TotpConfirmRequest,
    TotpEnrolmentResponse,
)
from app.api.security import auth_required, current_principal
from app.errors import (
    Busy,
    CurrentPasswordIncorrect,
    FieldError,
    MfaAlreadyEnabled,
    MfaCodeInvalid,
    MfaCodeMalformed,
    MfaCodeReused,
    MfaEnrolmentNotStarted,
    MfaNotEnabled,
    MfaTokenExhausted,
    MfaTokenExpired,
    MfaTokenInvalid,
    MfaTokenUsed,
    RecoveryCodeInvalid,
    RecoveryCodeMalformed,
    RecoveryCodeUsed,
    ValidationFailed,
)
from app.rate_limits import rate_limited
from app.services import auth as auth_service
from app.services import devices, mfa

ns = Namespace("mfa", description="Two-factor authentication (TOTP) of the caller's account")

# What a code or recovery code sent with a second factor can be refused for, each its own code.
SECOND_FACTOR_ERRORS = (
    MfaCodeMalformed,
    MfaCodeInvalid,
    MfaCodeReused,
    RecoveryCodeMalformed,
    RecoveryCodeInvalid,
    RecoveryCodeUsed,
)
MFA_TOKEN_ERRORS = (MfaTokenInvalid, MfaTokenExpired, MfaTokenUsed, MfaTokenExhausted)


def code_rules(document: dict[str, Any]) -> list[ValidationFailed]:
    """A code must be 6 digits, a recovery code 16 base32 characters (hyphens and spaces
    aside)."""
    code = document.get("code")
    if isinstance(code, str) and len(code) <= 64 and not mfa.CODE_PATTERN.fullmatch(code):
        return [MfaCodeMalformed("code")]
    return []


def second_factor_rules(document: dict[str, Any]) -> list[ValidationFailed]:
    """Exactly one of ``code`` and ``recovery_code``, each well formed."""
    code, recovery = document.get("code"), document.get("recovery_code")
    if code is None and recovery is None:
        return [
            ValidationFailed(
                [FieldError("code", "missing", "is required (or recovery_code)")],
            )
        ]
    if code is not None and recovery is not None:
        return [
            ValidationFailed(
                [FieldError("recovery_code", "conflict", "send code or recovery_code, not both")]
            )
        ]
    problems = code_rules(document)
    if (
        isinstance(recovery, str)
        and len(recovery) <= 64
        and mfa.canonical_recovery_code(recovery) is None
    ):
        problems.append(RecoveryCodeMalformed("recovery_code"))
    return problems


@ns.route("/totp")
class Totp(Resource):
    @auth_required(interactive_only=True)
    @returns(
        TotpEnrolmentResponse,
        201,
        "A pending enrolment: add it to an authenticator app, then confirm it with a code",
    )
    @raises(MfaAlreadyEnabled)
    def post(self):
        """Start a TOTP enrolment: a new secret, its `otpauth://` URI and a QR code.

        Nothing is guarded until `POST /accounts/me/mfa/totp/confirm` receives a code from
        the app. A pending enrolment is replaced by the next; with TOTP already on, 409
        `mfa_already_enabled`. The secret is shown this once.
        """
        return mfa.enrol(current_principal())

    @auth_required(interactive_only=True)
    @rate_limited("password_check_per_ip")
    @body(MfaDisableRequest, rules=second_factor_rules)
    @returns(None, 204, "TOTP off: the factor and its recovery codes are gone")
    @raises(MfaNotEnabled, CurrentPasswordIncorrect, *SECOND_FACTOR_ERRORS, Busy)
    def delete(self, body: MfaDisableRequest):
        """Turn TOTP off, with the password and a current code (or a recovery code).

        A wrong password, code or recovery code counts towards the lockout like a wrong
        password at login.
        """
        mfa.disable(
            current_principal(),
            password=body.password,
            code=body.code,
            recovery_code=body.recovery_code,
        )


@ns.route("/totp/confirm")
class TotpConfirm(Resource):
    @auth_required(interactive_only=True)
    @rate_limited("password_check_per_ip")
    @body(TotpConfirmRequest, rules=code_rules)
    @returns(RecoveryCodesResponse, 200, "TOTP on; the recovery codes, shown this once")
    @raises(MfaEnrolmentNotStarted, MfaAlreadyEnabled, MfaCodeMalformed, MfaCodeInvalid)
    def post(self, body: TotpConfirmRequest):
        """Turn TOTP on with a code from the pending enrolment; answers 10 recovery codes.

        From now on a login answers an `mfa_token` instead of tokens. The confirming code
        cannot be used again. Keep the recovery codes: each completes one login without the
        app.
        """
        return mfa.confirm(current_principal(), code=body.code)


@ns.route("/recovery-codes")
class RecoveryCodes(Resource):
    @auth_required(interactive_only=True)
    @rate_limited("password_check_per_ip")
    @body(RecoveryCodesRequest)
    @returns(RecoveryCodesResponse, 200, "New recovery codes; every earlier one stops working")
    @raises(MfaNotEnabled, CurrentPasswordIncorrect, Busy)
    def post(self, body: RecoveryCodesRequest):
        """Replace the recovery codes, confirmed by the password; shown this once.

        A wrong password counts towards the lockout.
        """
        return mfa.regenerate_recovery_codes(current_principal(), password=body.password)


@auth_ns.route("/mfa")
class MfaLogin(Resource):
    @rate_limited("mfa_per_ip")
    @body(MfaLoginRequest, rules=second_factor_rules)
    @auth_ns.header(devices.HEADER, "The device token an earlier login on this device returned")
    @returns(
        TokenResponse,
        200,
        "Logged in: a new session (amr: pwd, otp) and its first token pair",
        headers={devices.HEADER: "Send it back on this device's next logins"},
    )
    @raises(*MFA_TOKEN_ERRORS, *SECOND_FACTOR_ERRORS)
    def post(self, body: MfaLoginRequest):
        """Complete a login with TOTP on: the login's `mfa_token` and a code.

        `code` is the authenticator app's current code, or `recovery_code` one of the
        account's recovery codes (spent). A code is accepted once, within one 30-second step
        of the server's clock. Each wrong code counts towards the account's lockout, and an
        `mfa_token` takes `MFA_TOKEN_MAX_ATTEMPTS` of them (5) before it dies; it lives
        `MFA_TOKEN_LIFETIME_SECONDS` (5 minutes) and completes one login.
        """
        pair = auth_service.complete_mfa_login(
            mfa_token=body.mfa_token,
            code=body.code,
            recovery_code=body.recovery_code,
            **login_client(),
        )
        return pair, {devices.HEADER: pair.device_token}
