"""``/accounts``: sign-up and the caller's own account."""

from __future__ import annotations

from flask import Response
from flask_restx import Namespace, Resource, fields

from app.api.schemas import problem_response
from app.api.security import bearer_required, current_principal
from app.api.validation import NullableString, parse_json_body
from app.services import account as account_service

ns = Namespace("accounts", description="Sign-up and the caller's own account")
ns.add_model(problem_response.name, problem_response)

signup_request = ns.model(
    "SignupRequest",
    {
        "email": fields.String(required=True, max_length=254, example="ada@example.com"),
        "password": fields.String(
            required=True, description="8 to 256 characters (Unicode, NFKC-normalised)"
        ),
        "display_name": NullableString(max_length=100, example="Ada"),
    },
    strict=True,
)
profile_update_request = ns.model(
    "ProfileUpdateRequest",
    {"display_name": NullableString(max_length=100, description="Blank or null clears it")},
    strict=True,
)
password_change_request = ns.model(
    "PasswordChangeRequest",
    {
        "current_password": fields.String(required=True),
        "new_password": fields.String(required=True),
    },
    strict=True,
)
account_delete_request = ns.model(
    "AccountDeleteRequest", {"password": fields.String(required=True)}, strict=True
)
account_response = ns.model(
    "AccountResponse",
    {
        "id": fields.String(description="Immutable account UUID"),
        "email": fields.String,
        "display_name": fields.String,
        "email_verified": fields.Boolean,
        "roles": fields.List(fields.String, attribute="role_names"),
        "created_at": fields.DateTime(dt_format="iso8601"),
    },
)



@ns.route("")
class AccountList(Resource):
    @ns.expect(signup_request)
    @ns.response(201, "Account created", account_response)
    @ns.response(400, "Invalid body, email or password", problem_response)
    @ns.response(409, "Email already registered (`email_taken`)", problem_response)
    @ns.response(415, "Body is not JSON", problem_response)
    @ns.marshal_with(account_response, code=201)
    def post(self):
        """Sign up with an email address and a password."""
        data = parse_json_body(signup_request)
        account = account_service.register_account(
            email=data["email"], password=data["password"], display_name=data.get("display_name")
        )
        return account, 201


@ns.route("/me")
@ns.doc(security="Bearer")
@ns.response(401, "Missing, invalid or revoked access token", problem_response)
class CurrentAccount(Resource):
    method_decorators = [bearer_required]

    @ns.marshal_with(account_response)
    def get(self):
        """Read the caller's account."""
        return current_principal().account

    @ns.expect(profile_update_request)
    @ns.response(400, "Invalid body", problem_response)
    @ns.marshal_with(account_response)
    def patch(self):
        """Update the caller's profile."""
        data = parse_json_body(profile_update_request)
        return account_service.update_profile(current_principal().account, **data)

    @ns.expect(account_delete_request)
    @ns.response(204, "Account deleted; every token of it stops working")
    @ns.response(400, "Wrong password (`current_password_incorrect`)", problem_response)
    def delete(self):
        """Delete the caller's account, confirmed by its password."""
        data = parse_json_body(account_delete_request)
        account_service.delete_account(current_principal().account, password=data["password"])
        return Response(status=204)


@ns.route("/me/password")
@ns.doc(security="Bearer")
@ns.response(401, "Missing, invalid or revoked access token", problem_response)
class PasswordChange(Resource):
    method_decorators = [bearer_required]

    @ns.expect(password_change_request)
    @ns.response(204, "Password changed; every other session ended")
    @ns.response(400, "Wrong current password or weak new password", problem_response)
    def post(self):
        """Change the password; other sessions end, this one survives."""
        data = parse_json_body(password_change_request)
        principal = current_principal()
        account_service.change_password(
            principal.account,
            current_session_id=principal.session.id,
            current_password=data["current_password"],
            new_password=data["new_password"],
        )
        return Response(status=204)
