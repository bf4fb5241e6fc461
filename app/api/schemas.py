"""Request and response bodies, named for their direction; the OpenAPI document is built from them.

Requests are strict (no coercion: ``"1"`` is not a number, ``1`` is not a string) and refuse
unknown fields (SECURITY.md ADM-03). Responses list every field they carry as required, so a
client (or schemathesis) can rely on the document.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

# ISO 8601 with a numeric offset ("+00:00"), as the API has always written times.
Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
# Checked (and normalised) by the account service with email-validator; the format is documented.
Email = Annotated[
    str, Field(max_length=254, examples=["ada@example.com"], json_schema_extra={"format": "email"})
]


class RequestBody(BaseModel):
    """Base of every request body: strict types, unknown fields refused."""

    model_config = ConfigDict(strict=True, extra="forbid")


class ResponseBody(BaseModel):
    """Base of every response body."""

    model_config = ConfigDict(from_attributes=True)


# --- Requests -----------------------------------------------------------------------------


class SignupRequest(RequestBody):
    email: Email
    password: str = Field(description="8 to 256 characters (Unicode, NFKC-normalised)")
    display_name: str | None = Field(default=None, max_length=100, examples=["Ada"])


class ProfileUpdateRequest(RequestBody):
    display_name: str | None = Field(
        default=None, max_length=100, description="Blank or null clears it"
    )


class PasswordChangeRequest(RequestBody):
    current_password: str
    new_password: str


class AccountDeleteRequest(RequestBody):
    password: str


class LoginRequest(RequestBody):
    email: Email
    password: str


class RefreshRequest(RequestBody):
    refresh_token: str


# A mailed token: 43 base64url characters. Anything else is answered `token_malformed`.
MailedToken = Annotated[
    str,
    Field(
        max_length=512,
        description="The token from the emailed link",
        examples=["j0QhuGGS7HOr2KdXmyy2vs3eIhM0mhtCQinPjgjjczI"],
    ),
]


class EmailVerificationRequest(RequestBody):
    token: MailedToken


class PasswordResetRequest(RequestBody):
    email: Email


class PasswordResetConfirmRequest(RequestBody):
    token: MailedToken
    new_password: str = Field(description="Under the same policy as at sign-up")


class EmailChangeRequest(RequestBody):
    new_email: Email
    password: str = Field(description="The account's current password")


class EmailChangeConfirmRequest(RequestBody):
    token: MailedToken


# --- Responses ----------------------------------------------------------------------------


class AccountResponse(ResponseBody):
    id: uuid.UUID = Field(description="Immutable account UUID")
    email: str
    display_name: str | None
    email_verified: bool
    roles: list[str] = Field(validation_alias=AliasChoices("role_names", "roles"))
    created_at: Timestamp


class TokenResponse(ResponseBody):
    access_token: str = Field(description="JWT; verify it with /.well-known/jwks.json")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Access-token lifetime in seconds")
    refresh_token: str = Field(description="Opaque; single use")
    refresh_expires_in: int = Field(description="Refresh-token lifetime in seconds")


class Accepted(ResponseBody):
    """A request taken on; what follows arrives by mail. The same for every address."""

    detail: str


class FieldProblem(ResponseBody):
    field: str = Field(description="Dotted path of the field, e.g. `password` or `items.0.name`")
    code: str = Field(description="Stable per-field code, e.g. `missing`, `too_long`")
    detail: str


class ProblemResponse(ResponseBody):
    """An RFC 9457 problem document (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(examples=["urn:gatehouse:problem:validation_failed"])
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code; match on this")
    instance: str | None = Field(default=None, description="The path that was requested")
    request_id: str | None = Field(default=None, description="Also in the server's log lines")
    trace_id: str | None = Field(
        default=None, description="W3C trace id, when tracing is on (also in the log lines)"
    )
    errors: list[FieldProblem] | None = Field(
        default=None, description="Per-field errors of a `validation_failed` body"
    )
