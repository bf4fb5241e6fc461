"""``/accounts/me/sessions``: the caller's login sessions, seen and ended (SES-08)."""

from __future__ import annotations

import uuid

from flask_restx import Namespace, Resource

from app.api.bodies import raises, returns
from app.api.schemas import SessionListResponse, SessionsEndedResponse
from app.api.security import auth_required, current_principal
from app.errors import SessionNotFound
from app.services import sessions

ns = Namespace("sessions", description="The caller's login sessions")


@ns.route("")
class SessionList(Resource):
    @auth_required(scopes=("sessions:read",))
    @returns(SessionListResponse, 200, "Every live session of the account")
    def get(self):
        """List the account's live sessions; `current` marks the one asking."""
        return {"sessions": sessions.list_sessions(current_principal())}

    @auth_required(scopes=("sessions:write",))
    @returns(SessionsEndedResponse, 200, "Every other session ended; their tokens stop at once")
    def delete(self):
        """End every session of the account but the one asking (all of them for a token
        that has no session, such as a personal access token)."""
        return {"ended": sessions.end_other_sessions(current_principal())}


@ns.route("/<uuid:session_id>")
@ns.param("session_id", "A session id from the list")
class SessionItem(Resource):
    @auth_required(scopes=("sessions:write",))
    @returns(None, 204, "Session ended; its access and refresh tokens stop working at once")
    @raises(SessionNotFound)
    def delete(self, session_id: uuid.UUID):
        """End one session of the account (the current one too: that is a logout).

        An id that is not a live session of the caller's account answers 404, whoever owns
        it, so ids cannot be probed.
        """
        sessions.end_own_session(current_principal(), session_id)
