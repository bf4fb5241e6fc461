"""Security events: one structured log line each, and the counters that follow them (OPS-02).

Names follow the OWASP Logging Vocabulary (``authn_login_success``, ``authn_login_fail``,
``authn_token_reuse``, ``session_end``, ``user_created``…); the reason a login failed is kept
here, never in the answer. Services emit them after their unit of work commits, so a change that
rolled back is never reported as done. The audit log of the admin issue records the same events
in the database, in the transaction, through ``uow.before_commit``.
"""

from __future__ import annotations

import logging

from app import metrics

log = logging.getLogger("gatehouse.security")


def security_event(
    name: str, *, outcome: str = "success", level: int = logging.INFO, **fields: object
) -> None:
    """Log ``name`` with its outcome and fields (ids and reasons, never secrets); count it."""
    values = {key: str(value) for key, value in fields.items() if value is not None}
    log.log(level, name, extra={"event": name, "outcome": outcome, **values})
    if name in ("authn_login_success", "authn_login_fail"):
        metrics.LOGINS.labels(outcome).inc()
    elif name == "authn_token_reuse":
        metrics.REFRESH_TOKEN_REUSE.inc()
    elif name == "session_end":
        metrics.SESSIONS_REVOKED.labels(values.get("reason", "unknown")).inc()
