"""Request and response bodies, named for their direction; the OpenAPI document is built from them.

Requests are strict (no coercion: ``"1"`` is not a number, ``1`` is not a string) and refuse
unknown fields (SECURITY.md ADM-03). Responses list every field they carry as required, so a
client (or schemathesis) can rely on the document.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_serializer,
)

from app.services.permissions import PERMISSIONS
from app.services.scopes import SCOPES

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
    password: str | None = Field(
        default=None,
        description="The current password; may be left out within "
        "`REAUTHENTICATION_WINDOW_SECONDS` of the login",
    )


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
    password: str | None = Field(
        default=None,
        description="The account's current password; may be left out within "
        "`REAUTHENTICATION_WINDOW_SECONDS` of the login",
    )


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


# --- Sessions -----------------------------------------------------------------------------


class SessionResponse(ResponseBody):
    id: uuid.UUID
    created_at: Timestamp
    last_used_at: Timestamp = Field(
        description="Last accepted access token or refresh, to the minute"
    )
    expires_at: Timestamp = Field(description="Absolute end of the session, whatever its use")
    ip_address: str | None = Field(description="The address the session was opened from")
    user_agent: str | None = Field(description="The User-Agent it was opened with, as sent")
    device: str = Field(
        description="A readable summary of the User-Agent", examples=["Firefox 133 on Windows"]
    )
    current: bool = Field(description="True for the session of the credential asking")


class SessionListResponse(ResponseBody):
    sessions: list[SessionResponse] = Field(description="Live sessions, most recently used first")


class SessionsEndedResponse(ResponseBody):
    ended: int = Field(description="How many sessions were ended")


# --- Personal access tokens ---------------------------------------------------------------

Scope = Annotated[
    str,
    Field(
        examples=["profile:read"],
        json_schema_extra={"enum": list(SCOPES)},
        description="One of the documented scopes; any other answers 400 `unknown_scope`",
    ),
]


class PersonalAccessTokenCreateRequest(RequestBody):
    name: str = Field(
        description="What the token is for: 1 to 100 characters, spaces around it trimmed",
        examples=["CI deploy"],
    )
    scopes: list[Scope] = Field(
        max_length=len(SCOPES), description="At least one; what the token may do"
    )
    expires_in: int | None = Field(
        default=None,
        description="Seconds until it expires: at least 60, at most `PAT_MAX_LIFETIME_SECONDS` "
        "(365 days by default), which is also its life when left out",
        json_schema_extra={"minimum": 60},
        examples=[2592000],
    )


class PersonalAccessTokenResponse(ResponseBody):
    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(description="Last accepted, to the minute")
    expires_at: Timestamp | None = Field(description="Null: never (`PAT_MAX_LIFETIME_SECONDS` 0)")


class PersonalAccessTokenCreatedResponse(PersonalAccessTokenResponse):
    token: str = Field(
        description="The secret, `gh_pat_` and 43 more characters: shown this once, never again",
        examples=["gh_pat_" + "x" * 43],
    )


class PersonalAccessTokenListResponse(ResponseBody):
    tokens: list[PersonalAccessTokenResponse] = Field(
        description="Live tokens (not revoked, not expired), newest first; never their secrets"
    )


# --- Two-factor authentication ----------------------------------------------------------------

TotpCode = Annotated[
    str,
    Field(max_length=64, description="6 digits from the authenticator app", examples=["123456"]),
]
RecoveryCodeText = Annotated[
    str,
    Field(
        max_length=64,
        description="One of the account's recovery codes (case, spaces and hyphens ignored)",
        examples=["abcd-efgh-ijkl-mnop"],
    ),
]


class TotpConfirmRequest(RequestBody):
    code: TotpCode


class RecoveryCodesRequest(RequestBody):
    password: str = Field(description="The account's current password")


class MfaDisableRequest(RequestBody):
    """The password, and either ``code`` or ``recovery_code``."""

    password: str = Field(description="The account's current password")
    code: TotpCode | None = None
    recovery_code: RecoveryCodeText | None = None


class MfaLoginRequest(RequestBody):
    """The ``mfa_token`` a login answered with, and either ``code`` or ``recovery_code``."""

    mfa_token: str = Field(max_length=4096, description="From the login's answer; single use")
    code: TotpCode | None = None
    recovery_code: RecoveryCodeText | None = None


class TotpEnrolmentResponse(ResponseBody):
    secret: str = Field(description="Base32 TOTP secret, for typing in by hand; shown this once")
    otpauth_uri: str = Field(
        description="The `otpauth://totp/…` URI authenticator apps read (what the QR code holds)"
    )
    qr_code_svg: str = Field(description="The URI as a QR code: an SVG document")


class RecoveryCodesResponse(ResponseBody):
    recovery_codes: list[str] = Field(
        description="10 single-use codes, shown this once; each completes one login",
        examples=[["abcd-efgh-ijkl-mnop"]],
    )


def _no_defaults(schema: dict) -> None:
    """Fields left out of an answer are absent, never null: the schema shows no default."""
    for field_schema in schema.get("properties", {}).values():
        field_schema.pop("default", None)


class LoginResponse(ResponseBody):
    """Either the token pair (every field of `TokenResponse`) or, when the account has
    two-factor authentication on, only `mfa_required: true` and `mfa_token`: send that with a
    code to `POST /auth/mfa`. Swagger 2.0 has no `oneOf`, so both sets are listed here."""

    model_config = ConfigDict(json_schema_extra=_no_defaults)

    access_token: str = Field(
        default=None, description="JWT; verify it with /.well-known/jwks.json"
    )
    token_type: Literal["Bearer"] = Field(default=None)
    expires_in: int = Field(default=None, description="Access-token lifetime in seconds")
    refresh_token: str = Field(default=None, description="Opaque; single use")
    refresh_expires_in: int = Field(default=None, description="Refresh-token lifetime in seconds")
    mfa_required: Literal[True] = Field(
        default=None, description="Only with two-factor authentication on: no tokens yet"
    )
    mfa_token: str = Field(
        default=None,
        description="Only with two-factor authentication on: completes this login at "
        "`POST /auth/mfa` within `MFA_TOKEN_LIFETIME_SECONDS`; not a Bearer token",
    )

    @model_serializer(mode="wrap")
    def _present_only(self, handler):
        return {name: value for name, value in handler(self).items() if value is not None}


# --- Cookie sessions ----------------------------------------------------------------------


class CookieSessionResponse(ResponseBody):
    """The session is in the `Set-Cookie` header (HttpOnly: scripts never see it)."""

    csrf_token: str = Field(
        description="Send it as the `X-CSRF-Token` header with every request that changes "
        "something (POST, PUT, PATCH, DELETE) made with the cookie"
    )
    expires_at: Timestamp = Field(description="When the session ends, whatever its use")


# --- Administration -------------------------------------------------------------------------

RoleName = Annotated[
    str,
    Field(
        min_length=2,
        max_length=50,
        pattern=r"^[a-z][a-z0-9_-]{1,49}$",
        examples=["support"],
        description="Lower-case letters, digits, `_` and `-`, starting with a letter",
    ),
]
Permission = Annotated[
    str,
    Field(
        examples=["users:read"],
        json_schema_extra={"enum": list(PERMISSIONS)},
        description="One of the documented permissions; any other answers 400 `unknown_permission`",
    ),
]


class QueryParameters(BaseModel):
    """Base of query-string models: values arrive as text and are converted; extras refused."""

    model_config = ConfigDict(extra="forbid")


class AdminUserListQuery(QueryParameters):
    # Lengths keep the worst-case percent-encoded query string under a server's request-line
    # limit (gunicorn: 4094 bytes), so a long one is refused by us, with a problem document.
    email_contains: str | None = Field(
        default=None, max_length=100, description="Part of the address (case-insensitive)"
    )
    role: RoleName | None = Field(default=None, description="Accounts holding it")
    status: Literal["active", "disabled", "locked"] | None = Field(default=None)
    verified: bool | None = Field(default=None, description="Whether the address is verified")
    created_after: AwareDatetime | None = Field(
        default=None, description="Created at or after (ISO 8601 with offset)"
    )
    created_before: AwareDatetime | None = Field(
        default=None, description="Created before (ISO 8601 with offset)"
    )
    sort: Literal["created_at", "-created_at", "email", "-email"] = Field(
        default="created_at", description="`-` for descending; ties broken by id"
    )
    cursor: str | None = Field(
        default=None,
        max_length=1400,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="`next_cursor` of the previous page",
    )
    limit: int = Field(default=50, ge=1, le=100, description="Page size, at most 100")


class AdminUserCreateRequest(RequestBody):
    email: Email
    display_name: str | None = Field(default=None, max_length=100, examples=["Ada"])
    roles: list[RoleName] | None = Field(
        default=None, max_length=20, description='Default: `["user"]`'
    )


class AdminUserUpdateRequest(RequestBody):
    """Only the fields sent change."""

    display_name: str | None = Field(
        default=None, max_length=100, description="Blank or null clears it"
    )
    email: Email = Field(
        default=None,
        description="A new address is unverified unless `email_verified: true` comes with it",
    )
    email_verified: bool = Field(default=None)
    roles: list[RoleName] = Field(
        default=None, max_length=20, description="Replaces the account's roles"
    )


class AdminUserResponse(ResponseBody):
    id: uuid.UUID
    email: str
    display_name: str | None
    email_verified: bool
    roles: list[str]
    permissions: list[str] = Field(description="Every permission its roles hold")
    status: Literal["active", "disabled", "locked"]
    created_at: Timestamp
    updated_at: Timestamp
    disabled_at: Timestamp | None


class AdminUserListResponse(ResponseBody):
    items: list[AdminUserResponse]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last")


class RoleCreateRequest(RequestBody):
    name: RoleName
    description: str = Field(default="", max_length=200)
    permissions: list[Permission] = Field(default_factory=list, max_length=len(PERMISSIONS))


class RoleUpdateRequest(RequestBody):
    """Only the fields sent change; `permissions` replaces the list."""

    description: str = Field(default=None, max_length=200)
    permissions: list[Permission] = Field(default=None, max_length=len(PERMISSIONS))


class RoleDeleteQuery(QueryParameters):
    reassign_to: RoleName | None = Field(
        default=None, description="Move the role's accounts to this role first"
    )


class RoleResponse(ResponseBody):
    name: str
    description: str
    permissions: list[str]
    built_in: bool = Field(description="`admin` and `user`: cannot be changed or deleted")
    members: int = Field(description="How many accounts hold it")


class RoleListResponse(ResponseBody):
    roles: list[RoleResponse]


class PermissionResponse(ResponseBody):
    name: str
    description: str


class PermissionListResponse(ResponseBody):
    permissions: list[PermissionResponse]


# --- The audit log --------------------------------------------------------------------------

# A page's position: the sequence of the last record shown, as text.
AuditCursor = Annotated[
    str,
    Field(
        max_length=19,
        pattern=r"^[0-9]{1,19}$",
        description="`next_cursor` of the previous page",
    ),
]
AuditPageSize = Annotated[int, Field(ge=1, le=100, description="Page size, at most 100")]


class AuditEventListQuery(QueryParameters):
    event: str | None = Field(
        default=None, max_length=64, description="Event type, e.g. `authn_login_fail`"
    )
    actor_id: uuid.UUID | None = Field(default=None, description="The account that acted")
    subject_id: uuid.UUID | None = Field(default=None, description="The account acted on")
    since: AwareDatetime | None = Field(
        default=None, description="At or after (ISO 8601 with offset)"
    )
    until: AwareDatetime | None = Field(default=None, description="Before (ISO 8601 with offset)")
    cursor: AuditCursor | None = None
    limit: AuditPageSize = 50


class ActivityQuery(QueryParameters):
    cursor: AuditCursor | None = None
    limit: AuditPageSize = 50


class AuditEventResponse(ResponseBody):
    sequence: int = Field(description="Position in the hash chain: 1, 2, 3… without gaps")
    occurred_at: Timestamp
    event: str = Field(description="Vocabulary name, e.g. `authn_login_success`")
    actor_id: uuid.UUID | None = Field(description="The account that acted; null: nobody proven")
    subject_id: uuid.UUID | None = Field(description="The account acted on")
    outcome: str = Field(description="`success`, `failure`, …")
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    details: Annotated[
        dict,
        WithJsonSchema(
            {
                "type": "object",
                "additionalProperties": True,
                "description": "Event-specific ids and reasons; never a secret or address",
            }
        ),
    ]
    prev_hash: str = Field(description="SHA-256 (hex) of the record before")
    hash: str = Field(description="SHA-256 (hex) of this record's canonical form")


class AuditEventListResponse(ResponseBody):
    items: list[AuditEventResponse] = Field(description="Newest (highest sequence) first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last")


class ActivityEventResponse(ResponseBody):
    occurred_at: Timestamp
    event: str = Field(description="Vocabulary name, e.g. `authn_login_success`")
    outcome: str = Field(description="`success`, `failure`, …")
    client_ip: str | None
    user_agent: str | None


class ActivityListResponse(ResponseBody):
    items: list[ActivityEventResponse] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last")
