"""Device tokens: how a client that logged in before is told apart from everyone else.

OWASP's Authentication Cheat Sheet ("device cookies") answers the lockout's denial-of-service
lever: failures from elsewhere lock an account, but not for a device that has logged in to it
successfully before. After each successful login the answer carries a token in the
``Gatehouse-Device-Token`` header; the client sends it back in the same header on its next
logins. The token is signed with ``SECRET_KEY`` (nobody can make one), names the account and a
random device id, and expires after ``DEVICE_TOKEN_LIFETIME_SECONDS``. A recognised device's
wrong passwords count against that device alone (``DEVICE_FAILURES``, in the rate limiter's
storage, shared by instances); past them it is treated like any other client.
"""

from __future__ import annotations

import secrets
import uuid

from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import parse

HEADER = "Gatehouse-Device-Token"
_SALT = "gatehouse.device-token"


class DeviceTokens:
    def __init__(self, secret_key: bytes, *, lifetime_seconds: int, failures: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
        self.lifetime_seconds = lifetime_seconds
        self.failures = parse(failures)

    def issue(self, account_id: uuid.UUID) -> str:
        """A new token for the device that just logged in to ``account_id``."""
        return self._serializer.dumps({"a": str(account_id), "d": secrets.token_urlsafe(16)})

    def device_id(self, token: str | None, account_id: uuid.UUID) -> str | None:
        """The device id if ``token`` is ours, unexpired and for this account; else None."""
        if not token or len(token) > 512:
            return None
        try:
            claims = self._serializer.loads(token, max_age=self.lifetime_seconds)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(claims, dict) or claims.get("a") != str(account_id):
            return None
        device = claims.get("d")
        return device if isinstance(device, str) else None

    def trusted(self, device_id: str | None) -> bool:
        """A recognised device still within its own failure budget."""
        if device_id is None:
            return False
        from app.rate_limits import current_counters

        return current_counters().test(self.failures, "device", device_id)

    def record_failure(self, device_id: str) -> None:
        from app.rate_limits import current_counters

        current_counters().hit(self.failures, "device", device_id)
