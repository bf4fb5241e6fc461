"""ORM models: data and constraints, no workflows."""

from app.models.account import Account, Role, account_roles
from app.models.session import AuthSession, RefreshToken

__all__ = ["Account", "AuthSession", "RefreshToken", "Role", "account_roles"]
