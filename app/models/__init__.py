"""ORM models: data and constraints, no workflows."""

from app.models.account import Account, Role, account_roles
from app.models.account_token import AccountToken
from app.models.outbox import OutboxMessage
from app.models.session import AuthSession, RefreshToken

__all__ = [
    "Account",
    "AccountToken",
    "AuthSession",
    "OutboxMessage",
    "RefreshToken",
    "Role",
    "account_roles",
]
