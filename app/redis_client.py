"""The process's one Redis client, for the features that share state between instances.

Redis is optional and never on the path of an authenticated request: the database alone says
whether a session is live (SECURITY.md REL-05 forbids trusting Redis's "not revoked", and a
look-up that cannot be trusted saves no database read; the figures are in docs/architecture.md).
Its users are the shared rate-limit counters and later the cookie-session store.

The client is built lazily: ``create_app`` does no network I/O, so gunicorn's preload and a
Redis outage at start are both fine. ``ping`` answers the readiness check; failures are logged
once per outage, not once per call. Without ``REDIS_URL`` the null variant answers instead.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import redis

from app import metrics

log = logging.getLogger("gatehouse.redis")


class SharedRedis(Protocol):
    configured: bool
    prefix: str

    def key(self, *parts: str) -> str: ...

    def ping(self) -> bool: ...


class NoRedis:
    """No ``REDIS_URL``: every instance keeps its own state; nothing to ping."""

    configured = False
    prefix = ""

    def key(self, *parts: str) -> str:
        return ":".join(parts)

    def ping(self) -> bool:
        return True


class RedisConnection:
    """One lazily created ``redis.Redis`` (with its connection pool) per process.

    ``available`` is False for ``retry_after_seconds`` after a failure, so a dead or black-holed
    Redis costs its users one timeout per interval rather than one per request.
    """

    configured = True

    def __init__(
        self, url: str, *, prefix: str, socket_timeout: float, retry_after_seconds: float = 5.0
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.socket_timeout = socket_timeout
        self.retry_after_seconds = retry_after_seconds
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()
        self._down_until = 0.0

    @property
    def client(self) -> redis.Redis:
        """The shared client; building it opens no connection (that happens on first use)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = redis.Redis.from_url(
                        self.url,
                        socket_timeout=self.socket_timeout,
                        socket_connect_timeout=self.socket_timeout,
                        health_check_interval=30,
                    )
        return self._client

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def report_failure(self, action: str, error: Exception) -> None:
        """Note a failed call; the first of an outage is logged, the rest are not."""
        metrics.REDIS_ERRORS.inc()
        if self._down_until == 0.0:
            log.warning("redis unavailable (%s: %s); serving degraded", action, error)
        self._down_until = time.monotonic() + self.retry_after_seconds

    def report_success(self) -> None:
        if self._down_until != 0.0:
            log.warning("redis reachable again")
            self._down_until = 0.0

    def ping(self) -> bool:
        """True when Redis answers now (the readiness check); never raises."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            self.report_failure("ping", exc)
            return False
        self.report_success()
        return True


def build_shared_redis(url: str | None, *, prefix: str, socket_timeout: float) -> SharedRedis:
    """Pick the variant once, at start-up; no connection is made here."""
    if not url:
        return NoRedis()
    return RedisConnection(url, prefix=prefix, socket_timeout=socket_timeout)
