"""Every failure the service can answer with: the one catalogue of error codes.

Each domain error carries its HTTP ``status``, a stable snake_case ``code`` (never changed once
shipped) and a ``title``. :func:`problem_from` turns a domain error, a werkzeug HTTP error or
an unexpected crash into a :class:`Problem`, the same whatever part of the service answers;
each surface (``app/surfaces.py``) then renders it in its own format: an RFC 9457
``application/problem+json`` document for the API (:func:`problem_json`), and later RFC 6749
errors for an OAuth endpoint or an HTML page for a browser flow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from flask import Response, g, has_request_context, request
from opentelemetry import trace
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("gatehouse.errors")

PROBLEM_TYPE_PREFIX = "urn:gatehouse:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class FieldError:
    """One invalid field of a request body."""

    field: str
    code: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "detail": self.detail}


class DomainError(Exception):
    """Base of every expected failure; subclasses set ``status``, ``code`` and ``title``."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title

    def headers(self) -> dict[str, str]:
        return {}

    def extra(self) -> dict[str, Any]:
        return {}


# --- Request bodies -----------------------------------------------------------------------


class ValidationFailed(DomainError):
    """One or more fields are invalid; ``errors`` lists each of them."""

    status, code, title = 400, "validation_failed", "The request body is invalid"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        super().__init__(detail or "; ".join(f"{e.field}: {e.detail}" for e in errors))
        self.errors = errors

    def extra(self) -> dict[str, Any]:
        return {"errors": [error.as_dict() for error in self.errors]}


def all_of(problems: list[ValidationFailed]) -> ValidationFailed:
    """One problem as itself (its own code); several as one ``validation_failed`` listing all."""
    if len(problems) == 1:
        return problems[0]
    return ValidationFailed([error for problem in problems for error in problem.errors])


class FieldRuleBroken(ValidationFailed):
    """A single field breaks a rule of its own; the problem's ``code`` is the rule's."""

    def __init__(self, field: str, detail: str | None = None) -> None:
        super().__init__([FieldError(field, self.code, detail or self.title)], detail)


class MalformedJSON(DomainError):
    status, code, title = 400, "malformed_json", "The request body is not valid JSON"


class DuplicateKey(DomainError):
    status, code, title = 400, "duplicate_key", "The JSON body repeats a key"


class InvalidBody(DomainError):
    status, code, title = 400, "invalid_body", "The request body must be a JSON object"


class UnsupportedMediaType(DomainError):
    status, code, title = 415, "unsupported_media_type", "Send the body as application/json"


class InvalidEmail(FieldRuleBroken):
    status, code, title = 400, "invalid_email", "The email address is not valid"


class PasswordTooShort(FieldRuleBroken):
    status, code, title = 400, "password_too_short", "The password is too short"


class PasswordTooLong(FieldRuleBroken):
    status, code, title = 400, "password_too_long", "The password is too long"


class PasswordMatchesEmail(FieldRuleBroken):
    status, code, title = 400, "password_matches_email", "The password must not be the email"


class PasswordTooCommon(FieldRuleBroken):
    status, code, title = 400, "password_too_common", "The password is too common"


class PasswordBreached(FieldRuleBroken):
    status, code, title = 400, "password_breached", "The password appeared in a data breach"


class PasswordContainsEmail(FieldRuleBroken):
    status, code, title = 400, "password_contains_email", "The password must not contain the email"


class PasswordContainsName(FieldRuleBroken):
    status, code, title = 400, "password_contains_name", "The password must not contain the name"


class PasswordContainsServiceName(FieldRuleBroken):
    status, code, title = (
        400,
        "password_contains_service_name",
        "The password must not contain the service's name",
    )


class EmailMixesScripts(InvalidEmail):
    """A local part or a domain label mixes scripts, e.g. Latin with Cyrillic (TR39)."""

    status, code, title = 400, "email_mixed_scripts", "The email address mixes scripts"


# --- Accounts -----------------------------------------------------------------------------


class EmailTaken(DomainError):
    status, code, title = 409, "email_taken", "Email already registered"


class EmailNotVerified(DomainError):
    """Login refused until the address is verified (D-9); only ever after a correct password."""

    status, code, title = 403, "email_not_verified", "Verify the email address first"


class EmailAlreadyVerified(DomainError):
    status, code, title = 409, "email_already_verified", "The email address is already verified"


class EmailUnchanged(FieldRuleBroken):
    status, code, title = 400, "email_unchanged", "That is already the account's address"


# --- Mailed tokens (verification, reset, email change): each failure its own code ----------


class TokenMalformed(DomainError):
    status, code, title = 400, "token_malformed", "The token is not one of ours"


class TokenUnknown(DomainError):
    """No token like it for this purpose: never issued, or issued for another flow."""

    status, code, title = 400, "token_unknown", "The token is not valid"


class TokenExpired(DomainError):
    status, code, title = 400, "token_expired", "The token has expired; ask for a new one"


class TokenUsed(DomainError):
    status, code, title = 400, "token_used", "The token was already used"


class TokenSuperseded(DomainError):
    """A newer token was sent since, or the password or address changed since."""

    status, code, title = 400, "token_superseded", "A newer token replaced this one"


class CurrentPasswordIncorrect(FieldRuleBroken):
    """The password given to confirm a change is wrong: 400, never 401 (the caller is known)."""

    status, code, title = 400, "current_password_incorrect", "The current password is incorrect"


# --- Authentication -----------------------------------------------------------------------


class Unauthenticated(DomainError):
    """Base of every 401. RFC 9110 wants each to carry a ``WWW-Authenticate`` challenge; the
    API layer picks it for the credential that failed (``app/api/security.py``)."""

    status = 401


class InvalidCredentials(Unauthenticated):
    """The one answer to every failed login, whatever the reason."""

    status, code, title = 401, "invalid_credentials", "Invalid email or password"


class AuthenticationRequired(Unauthenticated):
    status, code, title = 401, "authentication_required", "A Bearer access token is required"


class InvalidToken(Unauthenticated):
    """Any access token that is malformed, forged, expired or of an ended session."""

    status, code, title = 401, "invalid_token", "The access token is invalid"


class InvalidRefreshToken(Unauthenticated):
    status, code, title = 401, "invalid_refresh_token", "The refresh token is invalid"


class RefreshTokenReused(Unauthenticated):
    status, code, title = 401, "refresh_token_reused", "The refresh token was already used"


class SessionExpired(Unauthenticated):
    status, code, title = 401, "session_expired", "The session has expired"


class SessionRevoked(Unauthenticated):
    status, code, title = 401, "session_revoked", "The session has ended"


class SessionNotFound(DomainError):
    """Unknown, ended, or another account's: the same answer, so ids cannot be probed."""

    status, code, title = 404, "session_not_found", "No such session"


class CsrfTokenMissing(DomainError):
    """A state-changing request made with the session cookie, without the CSRF header."""

    status, code, title = 403, "csrf_token_missing", "Send the session's X-CSRF-Token header"


class CsrfTokenInvalid(DomainError):
    """The CSRF header is not the session's token."""

    status, code, title = 403, "csrf_token_invalid", "The X-CSRF-Token header is not valid"


class MultipleCredentials(DomainError):
    """Two credentials in one request (two Authorization headers, or a token and a cookie):
    which one speaks for the caller would be a guess, so neither does (RFC 6750 §3.1)."""

    status, code, title = 400, "multiple_credentials", "More than one credential was sent"


# --- Authorisation ------------------------------------------------------------------------


class Forbidden(DomainError):
    """The caller is known but lacks a role or permission the operation needs."""

    status, code, title = 403, "forbidden", "Not allowed"


class SecondFactorRequired(DomainError):
    """An administrative operation by a login that did not use a second factor (MFA-06)."""

    status, code, title = (
        403,
        "mfa_required",
        "Administration needs a login with two-factor authentication",
    )


class InsufficientScope(DomainError):
    """The credential is restricted to scopes that do not cover the operation (RFC 6750)."""

    status, code, title = 403, "insufficient_scope", "The credential's scopes do not allow this"

    def __init__(self, required: tuple[str, ...]) -> None:
        super().__init__(f"Needs the scopes: {' '.join(required)}.")
        self.required = required

    def extra(self) -> dict[str, Any]:
        return {"required_scopes": list(self.required)}


class ReauthenticationRequired(DomainError):
    """A sensitive operation needs a recent login (SECURITY.md SES-09)."""

    status, code, title = 403, "reauthentication_required", "Log in again to do this"


class InteractiveLoginRequired(DomainError):
    """A personal access token on an operation no scope allows (logout, password and email
    changes, deletion, token management, MFA): only an interactive login may do it."""

    status, code, title = (
        403,
        "interactive_login_required",
        "A personal access token cannot do this; log in",
    )


# --- Personal access tokens ---------------------------------------------------------------


class InvalidTokenName(FieldRuleBroken):
    status, code, title = 400, "invalid_token_name", "The name must be 1 to 100 characters"


class ScopesRequired(FieldRuleBroken):
    status, code, title = 400, "scopes_required", "Name at least one scope"


class UnknownScope(FieldRuleBroken):
    status, code, title = 400, "unknown_scope", "A scope is not one of the documented ones"


class InvalidTokenLifetime(FieldRuleBroken):
    status, code, title = 400, "invalid_expires_in", "expires_in is out of the allowed range"


class TokenLimitReached(DomainError):
    status, code, title = 409, "token_limit_reached", "The account has its maximum of tokens"


class TokenNotFound(DomainError):
    """Unknown, revoked, expired or another account's: one answer, so ids cannot be probed."""

    status, code, title = 404, "token_not_found", "No such token"


# --- Two-factor authentication (each failure its own code; a wrong code is 400, the caller
# is known or holds an mfa_token; a bad mfa_token is 401) -----------------------------------


class MfaCodeMalformed(FieldRuleBroken):
    status, code, title = 400, "mfa_code_malformed", "The code must be 6 digits"


class MfaCodeInvalid(FieldRuleBroken):
    """Not the authenticator's code for this time (±1 step), or the account is locked."""

    status, code, title = 400, "mfa_code_invalid", "The code is not valid"


class MfaCodeReused(FieldRuleBroken):
    """The code of a time step already accepted: a code is accepted once (MFA-03)."""

    status, code, title = 400, "mfa_code_reused", "The code was already used; wait for the next"


class RecoveryCodeMalformed(FieldRuleBroken):
    status, code, title = (
        400,
        "recovery_code_malformed",
        "A recovery code is 16 letters and digits, e.g. abcd-efgh-ijkl-mnop",
    )


class RecoveryCodeInvalid(FieldRuleBroken):
    status, code, title = 400, "recovery_code_invalid", "The recovery code is not valid"


class RecoveryCodeUsed(FieldRuleBroken):
    status, code, title = 400, "recovery_code_used", "The recovery code was already used"


class MfaTokenInvalid(Unauthenticated):
    """Not an mfa_token we issued: malformed, unknown, or another kind of token."""

    status, code, title = 401, "mfa_token_invalid", "The mfa_token is invalid"


class MfaTokenExpired(Unauthenticated):
    status, code, title = 401, "mfa_token_expired", "The mfa_token has expired; log in again"


class MfaTokenUsed(Unauthenticated):
    status, code, title = 401, "mfa_token_used", "The mfa_token was already used; log in again"


class MfaTokenExhausted(Unauthenticated):
    status, code, title = (
        401,
        "mfa_token_exhausted",
        "Too many wrong codes for this mfa_token; log in again",
    )


class MfaAlreadyEnabled(DomainError):
    status, code, title = 409, "mfa_already_enabled", "Two-factor authentication is already on"


class MfaNotEnabled(DomainError):
    status, code, title = 409, "mfa_not_enabled", "Two-factor authentication is not on"


class MfaEnrolmentNotStarted(DomainError):
    status, code, title = (
        409,
        "mfa_enrolment_not_started",
        "No TOTP enrolment is waiting for confirmation; start one first",
    )


# --- Administration (ADM-*) ----------------------------------------------------------------


class UserNotFound(DomainError):
    status, code, title = 404, "user_not_found", "No such user"


class RoleNotFound(DomainError):
    status, code, title = 404, "role_not_found", "No such role"


class UnknownRole(FieldRuleBroken):
    status, code, title = 400, "unknown_role", "A role named is not one that exists"


class UnknownPermission(FieldRuleBroken):
    status, code, title = 400, "unknown_permission", "A permission is not a documented one"


class InvalidCursor(FieldRuleBroken):
    status, code, title = 400, "invalid_cursor", "The cursor is not one this listing gave out"


class RoleExists(DomainError):
    status, code, title = 409, "role_exists", "A role with that name exists"


class RoleInUse(DomainError):
    """A role still held by accounts; ``?reassign_to=`` moves them first."""

    status, code, title = 409, "role_in_use", "The role is assigned to accounts"


class BuiltInRole(DomainError):
    status, code, title = 409, "built_in_role", "Built-in roles cannot be changed or deleted"


class LastAdmin(DomainError):
    """The change would leave no enabled account with the ``admin`` role (ADM-04)."""

    status, code, title = 409, "last_admin", "The last enabled administrator must stay"


class OwnAccount(DomainError):
    """An administrator acting on their own account through the admin API."""

    status, code, title = (
        409,
        "own_account",
        "Change your own account through /accounts/me, or ask another administrator",
    )


class PermissionNotHeld(DomainError):
    """Granting, or acting on an account holding, a permission the caller does not hold."""

    status, code, title = (
        403,
        "permission_not_held",
        "You cannot grant or act on permissions you do not hold",
    )


# --- Infrastructure -----------------------------------------------------------------------


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "The service is temporarily unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class Busy(ServiceUnavailable):
    """Every password-hashing slot of this process stayed taken: try again in a moment."""

    status, code, title = 503, "busy", "The service is busy"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class NotReady(ServiceUnavailable):
    """A readiness check failed; ``checks`` names each check and its result."""

    status, code, title = 503, "not_ready", "The service is not ready"

    def __init__(self, checks: dict[str, str]) -> None:
        failed = sorted(name for name, result in checks.items() if result not in ("ok", "skipped"))
        super().__init__(f"Failing: {', '.join(failed)}.")
        self.checks = checks

    def extra(self) -> dict[str, Any]:
        return {"checks": self.checks}


class RateLimited(DomainError):
    """Too many requests from this client, or for this account (SECURITY.md RL-05)."""

    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Try again in {retry_after} seconds.")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


# Stable codes for werkzeug's HTTP errors.
HTTP_CODES = {
    400: "bad_request",
    401: "authentication_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "too_many_requests",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
    503: "service_unavailable",
}
# Headers of a werkzeug error worth passing on (the rest describe its HTML page).
HTTP_HEADERS_KEPT = ("Allow", "Retry-After")
HTTP_DETAILS = {
    404: "No resource at this address.",
    405: "This method is not allowed here.",
    413: "The request body is too large.",
}


@dataclass(frozen=True)
class Problem:
    """A failure as every surface sees it, before it is rendered in that surface's format."""

    status: int
    code: str
    title: str
    detail: str
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def with_header(self, name: str, value: str) -> Problem:
        return replace(self, headers={**self.headers, name: value})


INTERNAL_ERROR = Problem(
    500, "internal_error", "Internal server error", "An unexpected error occurred."
)


# Functions that turn a library's exception into one of ours (e.g. Flask-Limiter's 429).
_TRANSLATIONS: list[Callable[[BaseException], DomainError | None]] = []


def register_translation(translate: Callable[[BaseException], DomainError | None]) -> None:
    """Have ``problem_from`` answer a library's exception as the domain error it stands for."""
    if translate not in _TRANSLATIONS:
        _TRANSLATIONS.append(translate)


def problem_from(error: BaseException) -> Problem:
    """Classify any exception; crashes are logged with the request id, never described."""
    for translate in _TRANSLATIONS:
        translated = translate(error)
        if translated is not None:
            error = translated
            break
    if isinstance(error, DomainError):
        return Problem(
            error.status, error.code, error.title, error.detail, error.headers(), error.extra()
        )
    if isinstance(error, HTTPException) and error.code:
        status = error.code
        headers = {name: value for name, value in error.get_headers() if name in HTTP_HEADERS_KEPT}
        detail = HTTP_DETAILS.get(status, error.name + ".")
        return Problem(status, HTTP_CODES.get(status, "http_error"), error.name, detail, headers)
    if _is_database_unavailable(error):
        log.error("database unavailable: %s", type(error).__name__, exc_info=error)
        return problem_from(ServiceUnavailable())
    log.error("unhandled error (request_id=%s)", getattr(g, "request_id", None), exc_info=error)
    return INTERNAL_ERROR


def problem_json(problem: Problem) -> Response:
    """Render ``problem`` as an RFC 9457 ``application/problem+json`` response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + problem.code,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if has_request_context():
        body["instance"] = request.path
        request_id = getattr(g, "request_id", None)
        if request_id:
            body["request_id"] = request_id
    trace_id = current_trace_id()
    if trace_id:
        body["trace_id"] = trace_id
    body.update(problem.extra)
    response = Response(json.dumps(body), status=problem.status, mimetype=PROBLEM_MEDIA_TYPE)
    response.headers.update(problem.headers)
    return response


def _is_database_unavailable(error: BaseException) -> bool:
    if isinstance(error, PoolTimeoutError):
        return True
    return isinstance(error, OperationalError) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    )


def current_trace_id() -> str | None:
    """The W3C trace id of the span in progress, when tracing is on (``app/tracing.py``)."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
