"""Password policy (NIST SP 800-63B) and Argon2id hashing."""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import Busy, PasswordMatchesEmail, PasswordTooLong, PasswordTooShort

if TYPE_CHECKING:
    from app.services.breached import PasswordScreen


def normalise_password(password: str) -> str:
    """NFKC-normalise, so the same password typed on any keyboard or OS is the same bytes."""
    return unicodedata.normalize("NFKC", password)


class PasswordPolicy:
    """NIST SP 800-63B rules, the same at sign-up, password change and (later) reset.

    ``screen`` adds PWD-05 (``services/breached.py``): the shipped list of common passwords,
    passwords containing the email, the name or the service's name, and optionally an online
    breach check.
    """

    def __init__(
        self, *, min_length: int, max_length: int, screen: PasswordScreen | None = None
    ) -> None:
        self.min_length = min_length
        self.max_length = max_length
        self.screen = screen

    def check(
        self,
        password: str,
        *,
        email: str,
        display_name: str | None = None,
        field: str = "password",
    ) -> str:
        """Return the normalised password if it meets the policy.

        Length is counted in code points after NFKC; there are no composition rules.
        Raises PasswordTooShort, PasswordTooLong, PasswordMatchesEmail and the screen's errors
        (PasswordTooCommon, PasswordContainsEmail, …), naming ``field``.
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
        if self.screen is not None:
            self.screen.check(normalised, email=email, display_name=display_name, field=field)
        return normalised


class PasswordHasher:
    """Argon2id hashing with the configured parameters, at most ``max_concurrent`` at once.

    Each hash takes a core and ``memory_cost`` KiB for its whole run; more hashes in flight
    than cores only make every one slower and the process bigger. So a process hashes at most
    ``max_concurrent`` passwords at once; a request that cannot start within ``queue_timeout``
    seconds is answered 503 ``busy`` (with Retry-After) instead of waiting behind a flood, and
    cheap requests keep their threads and cores (SECURITY.md REL-10).

    ``verify_dummy`` does the work of a real verification for a login that has no account,
    so the answer's timing does not tell whether the account exists.
    """

    def __init__(
        self,
        *,
        time_cost: int,
        memory_cost: int,
        parallelism: int,
        max_concurrent: int = 1,
        queue_timeout: float = 2.0,
    ) -> None:
        self._hasher = Argon2Hasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=Type.ID,
        )
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self.max_concurrent = max_concurrent
        self.queue_timeout = queue_timeout
        self._in_flight = 0
        self.peak_in_flight = 0
        self._counter = threading.Lock()
        self._dummy_hash = self._hasher.hash("gatehouse-dummy-password")

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self.queue_timeout):
            raise Busy()
        with self._counter:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._counter:
                self._in_flight -= 1
            self._slots.release()

    def hash(self, normalised_password: str) -> str:
        """Raises Busy when no hashing slot frees up in time."""
        with self._slot():
            return self._hasher.hash(normalised_password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Check ``password`` (normalised here) against ``password_hash``. Raises Busy."""
        with self._slot():
            try:
                return self._hasher.verify(password_hash, normalise_password(password))
            except (VerificationError, InvalidHashError):
                return False

    def verify_dummy(self, password: str) -> None:
        self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
