"""``/accounts``: sign-up and the caller's own account."""

from __future__ import annotations

from flask import url_for
from flask_restx import Namespace, Resource

from app.api.bodies import body, raises, returns
from app.api.schemas import (
    AccountDeleteRequest,
    AccountResponse,
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
    InvalidEmail,
    PasswordBreached,
    PasswordContainsEmail,
    PasswordContainsName,
    PasswordContainsServiceName,
    PasswordMatchesEmail,
    PasswordTooCommon,
    PasswordTooLong,
    PasswordTooShort,
)
from app.rate_limits import rate_limited
from app.services import account as account_service

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


@ns.route("")
class AccountList(Resource):
    @rate_limited("signup_per_ip", "signup_per_account")
    @body(SignupRequest, rules=signup_rules)
    @returns(
        AccountResponse,
        201,
        "Account created",
        headers={"Location": "Where the account is read: /api/v1/accounts/me"},
    )
    @raises(InvalidEmail, EmailMixesScripts, *PASSWORD_RULES, EmailTaken, Busy)
    def post(self, body: SignupRequest):
        """Sign up with an email address and a password.

        Every field that breaks a rule is listed in one answer (`errors`).
        """
        account = account_service.register_account(
            email=body.email, password=body.password, display_name=body.display_name
        )
        return account, {"Location": url_for("api.accounts_current_account")}


@ns.route("/me")
class CurrentAccount(Resource):
    @auth_required()
    @returns(AccountResponse, 200, "The caller's account")
    def get(self):
        """Read the caller's account."""
        return current_principal().account

    @auth_required()
    @body(ProfileUpdateRequest)
    @returns(AccountResponse, 200, "The updated account")
    def patch(self, body: ProfileUpdateRequest):
        """Update the caller's profile; fields left out stay as they are."""
        return account_service.update_profile(
            current_principal(), **body.model_dump(exclude_unset=True)
        )

    @auth_required()
    @rate_limited("password_check_per_ip")
    @body(AccountDeleteRequest)
    @returns(None, 204, "Account deleted; every token of it stops working")
    @raises(CurrentPasswordIncorrect, Busy)
    def delete(self, body: AccountDeleteRequest):
        """Delete the caller's account, confirmed by its password."""
        account_service.delete_account(current_principal(), password=body.password)


@ns.route("/me/password")
class PasswordChange(Resource):
    @auth_required()
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
