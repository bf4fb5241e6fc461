"""Password policy (NIST SP 800-63B) and Argon2id hashing."""

from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import PasswordMatchesEmail, PasswordTooLong, PasswordTooShort


def normalise_password(password: str) -> str:
    """NFKC-normalise, so the same password typed on any keyboard or OS is the same bytes."""
    return unicodedata.normalize("NFKC", password)


class PasswordPolicy:
    """NIST SP 800-63B rules, the same at sign-up, password change and (later) reset."""

    def __init__(self, *, min_length: int, max_length: int) -> None:
        self.min_length = min_length
        self.max_length = max_length

    def check(self, password: str, *, email: str, field: str = "password") -> str:
        """Return the normalised password if it meets the policy.

        Length is counted in code points after NFKC; there are no composition rules.
        Raises PasswordTooShort, PasswordTooLong, PasswordMatchesEmail (naming ``field``).
        """
        normalised = normalise_password(password)
        if len(normalised) < self.min_length:
            raise PasswordTooShort(field, f"must be at least {self.min_length} characters")
        if len(normalised) > self.max_length:
            raise PasswordTooLong(field, f"must be at most {self.max_length} characters")
        folded = normalised.casefold()
        local_part = email.rsplit("@", 1)[0]
        if folded in {email.casefold(), local_part.casefold()}:
            raise PasswordMatchesEmail(field, "must not be the email address or its local part")
        return normalised


class PasswordHasher:
    """Argon2id hashing with the configured parameters.

    ``verify_dummy`` does the work of a real verification for a login that has no account,
    so the answer's timing does not tell whether the account exists.
    """

    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self._hasher = Argon2Hasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=Type.ID,
        )
        self._dummy_hash = self._hasher.hash("gatehouse-dummy-password")

    def hash(self, normalised_password: str) -> str:
        return self._hasher.hash(normalised_password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Check ``password`` (normalised here) against ``password_hash``."""
        try:
            return self._hasher.verify(password_hash, normalise_password(password))
        except (VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
