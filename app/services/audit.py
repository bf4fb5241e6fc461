"""The audit log: one hash-chained record per security event and admin action (ADM-06, ADM-07).

Being written by the audit engineer. The interface other services call is fixed now:

    audit.record(uow, "admin_user_disable", actor_id=..., subject_id=..., outcome="success",
                 details={...})

It adds the record to ``uow``'s transaction (a rolled-back change leaves none) and emits the
structured log line once the transaction commits. Until the implementation lands it records
nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from app.services.unit_of_work import UnitOfWork


def record(
    uow: UnitOfWork,
    event: str,
    *,
    actor_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = None,
    outcome: str = "success",
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record ``event`` in ``uow``'s transaction (placeholder: records nothing yet)."""
