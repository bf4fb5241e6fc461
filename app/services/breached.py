"""Password screening beyond length: common and breached passwords, context words (PWD-05).

NIST SP 800-63B-4 §3.1.1.2 asks verifiers to refuse passwords "known to be commonly used,
expected, or compromised" and context-specific words (the service's name, the user's name and
derivatives). This module holds those rules; :class:`app.services.passwords.PasswordPolicy`
calls :meth:`PasswordScreen.check` after its length rules, with the NFKC-normalised password.

- :class:`CommonPasswordList`: the shipped list ``app/data/common-passwords.txt.gz`` (100,000
  entries, source and licence in ``app/data/README.md``), matched case-insensitively (NFKC then
  case folding: "PASSWORD", "Password" and its full-width form are all "password").
  Loaded lazily, once per process (shared by every app built in it), under a lock. Each
  entry is kept as an 8-byte BLAKE2b digest in one sorted ``array('Q')`` searched by bisection;
  a false positive needs a 64-bit collision (about 100,000 / 2**64 ≈ 5e-15 per lookup).
  Measured on this service's machine (Python 3.11, 2 shared cores, other work running):
  ``tracemalloc`` counts 802,360 bytes kept after loading (the 800,000-byte array and its
  cache entry) and a 6.5 MiB peak while the file is read and sorted; the process's RSS grows
  by 3.3 to 4.2 MiB (the freed peak stays in the allocator's arenas). Loading takes 0.22 to
  0.47 s, once per process; one lookup (NFKC, case folding, hashing, bisection) 3 to 4.5 µs.
- :class:`BreachRangeClient`: the optional k-anonymity check against a Pwned Passwords style
  range API (only the first 5 hex characters of the password's SHA-1 leave the process, with
  ``Add-Padding: true``). Any failure or timeout fails open (SECURITY.md D-10) and is logged at
  WARNING on ``gatehouse.passwords`` once per outage, not once per call.
- :func:`check_context`: the password must not contain the email's local part, the display name
  or the service's name (each folded, and only when at least 4 code points long).

The error classes below are ``FieldRuleBroken`` subclasses with stable codes; they belong in
``app/errors.py`` and live here until they are moved there.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import logging
import re
import threading
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from app.errors import (
    PasswordBreached,
    PasswordContainsEmail,
    PasswordContainsName,
    PasswordContainsServiceName,
    PasswordTooCommon,
)

log = logging.getLogger("gatehouse.passwords")

COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt.gz"
SERVICE_NAMES: tuple[str, ...] = ("gatehouse",)
# Shorter local parts, names and words are too likely inside unrelated passwords to forbid.
MIN_CONTEXT_WORD_LENGTH = 4
DEFAULT_BREACH_API_URL = "https://api.pwnedpasswords.com"
DEFAULT_BREACH_API_TIMEOUT_SECONDS = 1.5
# A padded Pwned Passwords answer is about 40 KB; anything far larger is not one.
MAX_RANGE_ANSWER_BYTES = 1024 * 1024
_DIGEST_BYTES = 8
_WORD_SEPARATORS = re.compile(r"[\W_]+")


# --- Folding and context words ------------------------------------------------------------


def fold(text: str) -> str:
    """NFKC, case folding, NFKC again (Unicode's NFKC_Casefold, less default ignorables).

    Case folding can undo NFKC for a few characters, hence the second pass; for text that is
    already NFKC and ASCII this is ``str.lower``.
    """
    if text.isascii():  # NFKC leaves ASCII alone, and its case folding is lower-casing
        return text.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def context_words(value: str | None) -> frozenset[str]:
    """The folded forms of ``value`` a password must not contain.

    The whole value, the value without its separators ("Ada Lovelace" → "adalovelace") and each
    of its words ("lovelace"), each only when it is at least ``MIN_CONTEXT_WORD_LENGTH`` code
    points long: a 3-letter local part such as "bob" forbids nothing.
    """
    if not value:
        return frozenset()
    folded = fold(value).strip()
    words = [word for word in _WORD_SEPARATORS.split(folded) if word]
    candidates = {folded, "".join(words), *words}
    return frozenset(c for c in candidates if len(c) >= MIN_CONTEXT_WORD_LENGTH)


def check_context(
    normalised_password: str,
    *,
    email: str,
    display_name: str | None = None,
    field: str = "password",
    service_names: Iterable[str] = SERVICE_NAMES,
) -> None:
    """Refuse a password containing the email's local part, the display name or the service name.

    Compared case-insensitively after NFKC. Raises PasswordContainsEmail, PasswordContainsName
    or PasswordContainsServiceName naming ``field``; the detail never repeats the password.
    """
    password = fold(normalised_password)
    local_part = email.rsplit("@", 1)[0]
    if any(word in password for word in context_words(local_part)):
        raise PasswordContainsEmail(field, "must not contain the email address's local part")
    if any(word in password for word in context_words(display_name)):
        raise PasswordContainsName(field, "must not contain your name")
    if any(fold(name) in password for name in service_names if name):
        raise PasswordContainsServiceName(field, "must not contain the name of this service")


# --- The shipped list ---------------------------------------------------------------------


class CommonPasswordChecker(Protocol):
    def is_common(self, normalised_password: str) -> bool: ...


class BreachChecker(Protocol):
    def is_breached(self, normalised_password: str) -> bool: ...


def _digest(folded: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(
            folded.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_BYTES
        ).digest(),
        "big",
    )


# Every list read in this process, by file: apps built in one process (tests, a CLI that builds
# an app per command) share one copy instead of reading and holding the file once each.
_LOADED: dict[Path, array[int]] = {}
_LOADED_LOCK = threading.Lock()


class CommonPasswordList:
    """The shipped list of common passwords, as a sorted array of 8-byte digests.

    Nothing is read until the first :meth:`is_common` (or :meth:`load`); then the file is read
    once per process, however many threads ask at once and however many objects name it. A
    missing or corrupt file raises on that first use: the list ships with the service, so its
    absence is a broken deployment, not a reason to accept every password.
    """

    def __init__(self, path: Path | str = COMMON_PASSWORDS_FILE) -> None:
        self.path = Path(path).absolute()
        self._digests: array[int] | None = None

    @property
    def loaded(self) -> bool:
        return self._digests is not None

    def load(self) -> CommonPasswordList:
        """Read the list now (idempotent); a server may call it at start to fail early."""
        self._loaded_digests()
        return self

    def __len__(self) -> int:
        """Distinct entries of the list (one per line, after folding)."""
        return len(self._loaded_digests())

    def is_common(self, normalised_password: str) -> bool:
        """Whether the (NFKC-normalised) password is in the list, case-insensitively."""
        digests = self._loaded_digests()
        key = _digest(fold(normalised_password))
        index = bisect.bisect_left(digests, key)
        return index < len(digests) and digests[index] == key

    def _loaded_digests(self) -> array[int]:
        digests = self._digests
        if digests is None:
            with _LOADED_LOCK:
                digests = _LOADED.get(self.path)
                if digests is None:
                    digests = _LOADED[self.path] = self._read()
            self._digests = digests
        return digests

    def _read(self) -> array[int]:
        started = time.perf_counter()
        digests: array[int] = array("Q")
        # newline="\n": lines end at "\n" only, never at \x0b, \x1c, U+2028 and the like.
        with gzip.open(self.path, "rt", encoding="utf-8", newline="\n") as source:
            for line in source:
                entry = line.rstrip("\n")
                if entry:
                    digests.append(_digest(fold(entry)))
        ordered = sorted(digests)
        distinct = [d for i, d in enumerate(ordered) if i == 0 or d != ordered[i - 1]]
        digests = array("Q", distinct)
        del ordered, distinct
        log.debug(
            "loaded %d common passwords from %s in %.3f s",
            len(digests),
            self.path.name,
            time.perf_counter() - started,
        )
        return digests


class NullCommonPasswordList:
    """The list check turned off (PASSWORD_BREACHED_LIST_ENABLED=false): nothing is common."""

    loaded = True

    def load(self) -> NullCommonPasswordList:
        return self

    def __len__(self) -> int:
        return 0

    def is_common(self, normalised_password: str) -> bool:
        return False


# --- The optional online range check ------------------------------------------------------


class BreachRangeClient:
    """k-anonymity check against a Pwned Passwords style ``GET {base_url}/range/{prefix}``.

    The password's SHA-1 (upper-case hex of the UTF-8 of the NFKC-normalised password, exactly
    as typed: Pwned Passwords is case-sensitive) is split into a 5-character prefix, sent, and a
    35-character suffix compared locally with the ``SUFFIX:COUNT`` lines of the answer. The
    ``Add-Padding: true`` header asks for decoy lines (count 0) so the answer's size says
    nothing about the prefix. Fails open: an error, a non-2xx answer, a malformed or oversized
    answer or a timeout means "not breached"; the first failure of an outage is logged at
    WARNING, the next success at INFO, and the failures in between not at all.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BREACH_API_URL,
        *,
        timeout_seconds: float = DEFAULT_BREACH_API_TIMEOUT_SECONDS,
        user_agent: str = "gatehouse-password-check",
        max_answer_bytes: int = MAX_RANGE_ANSWER_BYTES,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError("the breach API URL must be an http(s) URL")
        if timeout_seconds <= 0:
            raise ValueError("the breach API timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._user_agent = user_agent
        self._max_answer_bytes = max_answer_bytes
        self._opener = urllib.request.build_opener()
        self._lock = threading.Lock()
        self._outage = False

    @property
    def in_outage(self) -> bool:
        return self._outage

    def is_breached(self, normalised_password: str) -> bool:
        return self.breach_count(normalised_password) >= 1

    def breach_count(self, normalised_password: str) -> int:
        """How often the password appears in the corpus; 0 when absent or on any failure."""
        digest = (
            hashlib.sha1(
                normalised_password.encode("utf-8", "surrogatepass"), usedforsecurity=False
            )
            .hexdigest()
            .upper()
        )
        prefix, suffix = digest[:5], digest[5:]
        try:
            count = _count_of(suffix, self._fetch_range(prefix))
        except Exception as error:  # fail open on anything (SECURITY.md D-10)
            self._record_failure(error)
            return 0
        self._record_success()
        return count

    def _fetch_range(self, prefix: str) -> str:
        request = urllib.request.Request(  # noqa: S310 - scheme checked to be http(s) above
            f"{self.base_url}/range/{prefix}",
            headers={
                "Add-Padding": "true",
                "Accept": "text/plain",
                "User-Agent": self._user_agent,
            },
        )
        # The socket timeout bounds the connection and each read; the deadline bounds the body.
        deadline = time.monotonic() + self.timeout_seconds
        chunks: list[bytes] = []
        size = 0
        try:
            answer = self._opener.open(request, timeout=self.timeout_seconds)
        except urllib.error.HTTPError as error:
            error.close()  # a non-2xx answer: release its connection, then fail open
            raise
        with answer:
            while chunk := answer.read(16 * 1024):
                size += len(chunk)
                if size > self._max_answer_bytes:
                    raise ValueError("the range answer is too large")
                if time.monotonic() > deadline:
                    raise TimeoutError("the range answer took too long")
                chunks.append(chunk)
        return b"".join(chunks).decode("ascii")

    def _record_failure(self, error: BaseException) -> None:
        with self._lock:
            first = not self._outage
            self._outage = True
        if first:
            log.warning(
                "breached-password API unavailable (%s): failing open until it answers again",
                _describe(error),
            )

    def _record_success(self) -> None:
        if not self._outage:
            return
        with self._lock:
            ended, self._outage = self._outage, False
        if ended:
            log.info("breached-password API answering again")


def _count_of(suffix: str, answer: str) -> int:
    """The count on the answer's line for ``suffix``, 0 if none; a malformed line raises."""
    for raw in answer.splitlines():
        line = raw.strip()
        if not line:
            continue
        candidate, separator, count = line.partition(":")
        if not separator:
            raise ValueError("malformed range answer")
        if candidate.strip().upper() == suffix:
            return int(count)
    return 0


def _describe(error: BaseException) -> str:
    """A secret-free description: never the URL, which carries the hash prefix."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        return type(reason).__name__ if isinstance(reason, BaseException) else "URLError"
    return type(error).__name__


class NullBreachClient:
    """The online check turned off (the default): nothing is reported breached."""

    in_outage = False

    def is_breached(self, normalised_password: str) -> bool:
        return False


# --- Everything together ------------------------------------------------------------------


class PasswordScreen:
    """The PWD-05 rules in one call, built once per app (``app/runtime.py``).

    Order: context words (cheap, most specific reason), the shipped list, then the online
    check (the only one that may wait on the network).
    """

    def __init__(
        self,
        *,
        common: CommonPasswordChecker,
        breach_api: BreachChecker,
        service_names: Iterable[str] = SERVICE_NAMES,
    ) -> None:
        self.common = common
        self.breach_api = breach_api
        self.service_names = tuple(service_names)

    def check(
        self,
        normalised_password: str,
        *,
        email: str,
        display_name: str | None = None,
        field: str = "password",
    ) -> None:
        """Raise the first rule the (NFKC-normalised) password breaks, naming ``field``."""
        check_context(
            normalised_password,
            email=email,
            display_name=display_name,
            field=field,
            service_names=self.service_names,
        )
        if self.common.is_common(normalised_password):
            raise PasswordTooCommon(field, "is in a list of commonly used passwords")
        if self.breach_api.is_breached(normalised_password):
            raise PasswordBreached(field, "has appeared in a data breach of another service")


def build_password_screen(
    *,
    list_enabled: bool = True,
    api_enabled: bool = False,
    api_url: str = DEFAULT_BREACH_API_URL,
    api_timeout_seconds: float = DEFAULT_BREACH_API_TIMEOUT_SECONDS,
    list_path: Path | str = COMMON_PASSWORDS_FILE,
) -> PasswordScreen:
    """Build the screen from the settings; reads no file and opens no connection."""
    common: CommonPasswordChecker = (
        CommonPasswordList(list_path) if list_enabled else NullCommonPasswordList()
    )
    breach_api: BreachChecker = (
        BreachRangeClient(api_url, timeout_seconds=api_timeout_seconds)
        if api_enabled
        else NullBreachClient()
    )
    return PasswordScreen(common=common, breach_api=breach_api)
