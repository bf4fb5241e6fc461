"""``/accounts``: sign-up and the caller's own account."""

from __future__ import annotations

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
    CurrentPasswordIncorrect,
    EmailTaken,
    InvalidEmail,
    PasswordMatchesEmail,
    PasswordTooLong,
    PasswordTooShort,
)
from app.services import account as account_service

ns = Namespace("accounts", description="Sign-up and the caller's own account")

PASSWORD_RULES = (PasswordTooShort, PasswordTooLong, PasswordMatchesEmail)


@ns.route("")
class AccountList(Resource):
    @body(SignupRequest)
    @returns(AccountResponse, 201, "Account created")
    @raises(InvalidEmail, *PASSWORD_RULES, EmailTaken)
    def post(self, body: SignupRequest):
        """Sign up with an email address and a password."""
        return account_service.register_account(
            email=body.email, password=body.password, display_name=body.display_name
        )


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
    @body(AccountDeleteRequest)
    @returns(None, 204, "Account deleted; every token of it stops working")
    @raises(CurrentPasswordIncorrect)
    def delete(self, body: AccountDeleteRequest):
        """Delete the caller's account, confirmed by its password."""
        account_service.delete_account(current_principal(), password=body.password)


@ns.route("/me/password")
class PasswordChange(Resource):
    @auth_required()
    @body(PasswordChangeRequest)
    @returns(None, 204, "Password changed; every other session ended")
    @raises(CurrentPasswordIncorrect, *PASSWORD_RULES)
    def post(self, body: PasswordChangeRequest):
        """Change the password; other sessions end, this one survives."""
        account_service.change_password(
            current_principal(),
            current_password=body.current_password,
            new_password=body.new_password,
        )
