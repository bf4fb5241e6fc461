"""``/accounts``: sign-up and the caller's own account."""

from __future__ import annotations

from flask import url_for
from flask_restx import Namespace, Resource

from app.api.bodies import Reply, also_returns, body, raises, returns
from app.api.schemas import (
    Accepted,
    AccountDeleteRequest,
    AccountResponse,
    EmailChangeConfirmRequest,
    EmailChangeRequest,
    PasswordChangeRequest,
    ProfileUpdateRequest,
    SignupRequest,
)
from app.api.security import auth_required, current_principal
from app.errors import (
    Busy,
    CurrentPasswordIncorrect,
    EmailMixesScripts,
    EmailTaken,
    EmailUnchanged,
    InvalidEmail,
    LastAdmin,
    PasswordBreached,
    PasswordContainsEmail,
    PasswordContainsName,
    PasswordContainsServiceName,
    PasswordMatchesEmail,
    PasswordTooCommon,
    PasswordTooLong,
    PasswordTooShort,
    RateLimited,
    ReauthenticationRequired,
    TokenExpired,
    TokenMalformed,
    TokenSuperseded,
    TokenUnknown,
    TokenUsed,
)
from app.rate_limits import rate_limited
from app.runtime import runtime
from app.services import account as account_service
from app.services import email_change

ns = Namespace("accounts", description="Sign-up and the caller's own account")

PASSWORD_RULES = (
    PasswordTooShort,
    PasswordTooLong,
    PasswordMatchesEmail,
    PasswordTooCommon,
    PasswordBreached,
    PasswordContainsEmail,
    PasswordContainsName,
    PasswordContainsServiceName,
)


def signup_rules(document: dict) -> list:
    """The account service's rules, on whatever of the sign-up's fields were sent."""
    return account_service.signup_problems(
        email=document.get("email"),
        password=document.get("password"),
        display_name=document.get("display_name"),
    )


SIGNUP_ACCEPTED = {
    "detail": "A message with a link to verify the address is on its way to it; follow the "
    "link, then log in."
}
EMAIL_CHANGE_ACCEPTED = {
    "detail": "A message with a link to confirm the change is on its way to the new address; "
    "the address changes when the link is followed."
}
# Mailed tokens: each failure its own code, all 400, none changes anything.
TOKEN_ERRORS = (TokenMalformed, TokenUnknown, TokenUsed, TokenSuperseded, TokenExpired)


@ns.route("")
class AccountList(Resource):
    @rate_limited("signup_per_ip", "signup_per_account")
    @body(SignupRequest, rules=signup_rules)
    @returns(
        AccountResponse,
        201,
        "Account created (`SIGNUP_GENERIC_ANSWER` off); a verification link is mailed",
        headers={"Location": "Where the account is read: /api/v1/accounts/me"},
    )
    @also_returns(
        Accepted,
        202,
        "With `SIGNUP_GENERIC_ANSWER` on (production): the one answer to every sign-up, "
        "whether the address was free or already had an account",
    )
    @raises(InvalidEmail, EmailMixesScripts, *PASSWORD_RULES, EmailTaken, Busy)
    def post(self, body: SignupRequest):
        """Sign up with an email address and a password; a verification link is mailed.

        Every field that breaks a rule is listed in one answer (`errors`). An address that has
        an account answers 409 `email_taken`, or, with `SIGNUP_GENERIC_ANSWER` on (production),
        202 exactly as a new sign-up does, and its owner is told by mail.
        """
        account = account_service.register_account(
            email=body.email, password=body.password, display_name=body.display_name
        )
        if runtime().settings.signup_generic_answer:
            return Reply(202, SIGNUP_ACCEPTED)
        return account, {"Location": url_for("api.accounts_current_account")}


@ns.route("/me")
class CurrentAccount(Resource):
    @auth_required(scopes=("profile:read",))
    @returns(AccountResponse, 200, "The caller's account")
    def get(self):
        """Read the caller's account."""
        return current_principal().account

    @auth_required(scopes=("profile:write",))
    @body(ProfileUpdateRequest)
    @returns(AccountResponse, 200, "The updated account")
    def patch(self, body: ProfileUpdateRequest):
        """Update the caller's profile; fields left out stay as they are."""
        return account_service.update_profile(
            current_principal(), **body.model_dump(exclude_unset=True)
        )

    @auth_required(interactive_only=True)
    @rate_limited("password_check_per_ip")
    @body(AccountDeleteRequest)
    @returns(None, 204, "Account deleted; every token of it stops working")
    @raises(CurrentPasswordIncorrect, ReauthenticationRequired, LastAdmin, Busy)
    def delete(self, body: AccountDeleteRequest):
        """Delete the caller's account, confirmed by its password or a login of the last
        `REAUTHENTICATION_WINDOW_SECONDS` (else 403 `reauthentication_required`)."""
        account_service.delete_account(current_principal(), password=body.password)


@ns.route("/me/password")
class PasswordChange(Resource):
    @auth_required(interactive_only=True)
    @rate_limited("password_check_per_ip")
    @body(PasswordChangeRequest)
    @returns(None, 204, "Password changed; every other session ended")
    @raises(CurrentPasswordIncorrect, *PASSWORD_RULES, Busy)
    def post(self, body: PasswordChangeRequest):
        """Change the password; other sessions end, this one survives."""
        account_service.change_password(
            current_principal(),
            current_password=body.current_password,
            new_password=body.new_password,
        )


@ns.route("/me/email")
class EmailChange(Resource):
    @auth_required(interactive_only=True)
    @rate_limited("email_per_ip", "password_check_per_ip")
    @body(EmailChangeRequest)
    @returns(Accepted, 202, "A confirmation link is on its way to the new address")
    @raises(
        InvalidEmail,
        EmailMixesScripts,
        EmailUnchanged,
        CurrentPasswordIncorrect,
        ReauthenticationRequired,
        EmailTaken,
        RateLimited,
        Busy,
    )
    def post(self, body: EmailChangeRequest):
        """Ask to change the address, confirmed by the password or a recent login.

        The new address gets a link to confirm the change; the current one gets a notice.
        Nothing changes until the link is followed. An address another account has answers
        409 `email_taken`, or, with `SIGNUP_GENERIC_ANSWER` on (production), 202 as any other.
        """
        email_change.request_email_change(
            current_principal(), new_email=body.new_email, password=body.password
        )
        return EMAIL_CHANGE_ACCEPTED


@ns.route("/me/email/confirm")
class EmailChangeConfirm(Resource):
    @rate_limited("email_per_ip")
    @body(EmailChangeConfirmRequest)
    @returns(None, 204, "The account has the new address, verified; the old one is told")
    @raises(*TOKEN_ERRORS, EmailTaken)
    def post(self, body: EmailChangeConfirmRequest):
        """Confirm an address change with the token from the link mailed to the new address.

        No login is needed: the token is the proof, and the link may be opened on another
        device. If another account took the address meanwhile, the answer is 409 `email_taken`
        and nothing changes.
        """
        email_change.confirm_email_change(token=body.token)
