"""ORM models: data and constraints, no workflows."""

from app.models.account import Account, Role, RolePermission, account_roles
from app.models.account_token import AccountToken
from app.models.audit import AuditChainHead, AuditCheckpoint, AuditEvent
from app.models.mfa import MfaChallenge, RecoveryCode, TotpFactor
from app.models.outbox import OutboxMessage
from app.models.personal_access_token import PersonalAccessToken
from app.models.session import AuthSession, RefreshToken

__all__ = [
    "Account",
    "AccountToken",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditEvent",
    "AuthSession",
    "MfaChallenge",
    "OutboxMessage",
    "PersonalAccessToken",
    "RecoveryCode",
    "RefreshToken",
    "Role",
    "RolePermission",
    "TotpFactor",
    "account_roles",
]
