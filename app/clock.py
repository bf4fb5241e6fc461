"""The one source of "now" for the service, so tests can move time instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that stands still until moved; for tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


class Clock(Protocol):
    def now(self) -> datetime: ...
