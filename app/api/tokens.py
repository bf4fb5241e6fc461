"""``/accounts/me/tokens``: the caller's personal access tokens, for scripts and CI."""

from __future__ import annotations

import uuid

from flask import url_for
from flask_restx import Namespace, Resource

from app.api.bodies import body, raises, returns
from app.api.schemas import (
    PersonalAccessTokenCreatedResponse,
    PersonalAccessTokenCreateRequest,
    PersonalAccessTokenListResponse,
)
from app.api.security import auth_required, current_principal
from app.errors import (
    InvalidTokenLifetime,
    InvalidTokenName,
    ReauthenticationRequired,
    ScopesRequired,
    TokenLimitReached,
    TokenNotFound,
    UnknownScope,
)
from app.rate_limits import rate_limited
from app.services import personal_tokens

ns = Namespace("tokens", description="Personal access tokens: scoped credentials for scripts")


def creation_rules(document: dict) -> list:
    """The token service's rules, on whatever of the fields were sent."""
    return personal_tokens.creation_problems(
        name=document.get("name"),
        scopes=document.get("scopes"),
        expires_in=document.get("expires_in"),
    )


@ns.route("")
class TokenList(Resource):
    @auth_required(scopes=("tokens:read",))
    @returns(PersonalAccessTokenListResponse, 200, "The caller's live tokens, without secrets")
    def get(self):
        """List the caller's personal access tokens (never their secrets)."""
        return {"tokens": personal_tokens.list_tokens(current_principal())}

    @auth_required(interactive_only=True)
    @rate_limited("pat_create_per_ip")
    @body(PersonalAccessTokenCreateRequest, rules=creation_rules)
    @returns(
        PersonalAccessTokenCreatedResponse,
        201,
        "Token created; its secret is in the answer this once, never again",
        headers={"Location": "The token's address, for DELETE"},
    )
    @raises(
        InvalidTokenName,
        ScopesRequired,
        UnknownScope,
        InvalidTokenLifetime,
        ReauthenticationRequired,
        TokenLimitReached,
    )
    def post(self, body: PersonalAccessTokenCreateRequest):
        """Create a personal access token: a Bearer credential limited to its scopes.

        The answer is the only place the secret ever appears; store it then. Needs an
        interactive login at most `REAUTHENTICATION_WINDOW_SECONDS` old (a token cannot make a
        token, and a session kept alive by refreshes cannot mint a long-lived credential).
        """
        created = personal_tokens.create_token(
            current_principal(), name=body.name, scopes=body.scopes, expires_in=body.expires_in
        )
        return created, {"Location": url_for("api.tokens_token", token_id=created.id)}


@ns.route("/<uuid:token_id>")
@ns.param("token_id", "A token id from the list")
class Token(Resource):
    @auth_required(interactive_only=True)
    @returns(None, 204, "Revoked: the token stops working at once")
    @raises(TokenNotFound)
    def delete(self, token_id: uuid.UUID):
        """Revoke one of the caller's personal access tokens.

        An id that is unknown, already revoked, expired or another account's answers 404
        `token_not_found`, the same for each.
        """
        personal_tokens.revoke_token(current_principal(), token_id)
