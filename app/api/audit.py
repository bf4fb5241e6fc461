"""The audit log over HTTP: ``/admin/audit-events`` for administrators, and
``/accounts/me/activity``, an account's own security events (ADM-06)."""

from __future__ import annotations

from flask_restx import Namespace, Resource

from app.api.bodies import query, returns
from app.api.schemas import (
    ActivityListResponse,
    ActivityQuery,
    AuditEventListQuery,
    AuditEventListResponse,
)
from app.api.security import auth_required, current_principal
from app.services import audit

ns = Namespace("audit", description="The audit log (administrators)")
activity_ns = Namespace("activity", description="The caller's own security events")


def _page(page: audit.AuditPage) -> dict[str, object]:
    cursor = page.next_cursor
    return {"items": page.events, "next_cursor": None if cursor is None else str(cursor)}


@ns.route("")
class AuditEventList(Resource):
    @auth_required(permissions=("audit:read",))
    @query(AuditEventListQuery)
    @returns(AuditEventListResponse, 200, "One page of records, newest first, and the next cursor")
    def get(self, query: AuditEventListQuery):
        """Read the audit log: every filter given must match (`audit:read`).

        Ordered by sequence, newest first; `cursor` pages back through older records, stable
        while new ones are written.
        """
        filters = query.model_dump(exclude={"cursor"})
        cursor = int(query.cursor) if query.cursor is not None else None
        return _page(audit.list_events(**filters, cursor=cursor))


@activity_ns.route("")
class ActivityList(Resource):
    @auth_required(scopes=("activity:read",))
    @query(ActivityQuery)
    @returns(ActivityListResponse, 200, "The account's security events, newest first")
    def get(self, query: ActivityQuery):
        """List the caller's own security events, newest first.

        Logins, refreshes, password and address changes, MFA, ended sessions, tokens: the
        time, event, outcome, address and device of each; reasons and details stay internal.
        """
        cursor = int(query.cursor) if query.cursor is not None else None
        page = audit.list_activity(current_principal().account_id, cursor=cursor, limit=query.limit)
        return _page(page)
