"""Where ended sessions are announced to every instance.

The database is the source of truth: a session row with ``revoked_at`` set (or no row at all)
is dead, and every authenticated request reads that row. With Redis configured, ended sessions
are also written there so every instance can refuse their tokens without a database round trip.
Absence from Redis never counts as "still valid" (Redis may have restarted with old data or been
flushed), so the database check always follows. Without Redis, the null variant does nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from typing import Protocol

import redis

log = logging.getLogger("gatehouse.revocation")


class RevocationCache(Protocol):
    name: str

    def is_revoked(self, session_id: uuid.UUID) -> bool: ...

    def publish(self, session_ids: Iterable[uuid.UUID]) -> None: ...

    def check(self) -> bool: ...


class NullRevocationCache:
    """No Redis: the database alone decides."""

    name = "database"

    def is_revoked(self, session_id: uuid.UUID) -> bool:
        return False

    def publish(self, session_ids: Iterable[uuid.UUID]) -> None:
        return None

    def check(self) -> bool:
        return True


class RedisRevocationCache:
    """Ended sessions as Redis keys that expire once every token of theirs has expired.

    Redis errors never fail a request: they are logged and the database answers. After a
    failure Redis is left alone for ``retry_after_seconds``, so a dead or black-holed Redis
    costs one timeout per interval, not one per request, and one log line per outage.
    """

    name = "redis"

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        ttl_seconds: int,
        retry_after_seconds: float = 5.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.retry_after_seconds = retry_after_seconds
        self._down_until = 0.0

    def _key(self, session_id: uuid.UUID) -> str:
        return f"{self.prefix}revoked-session:{session_id}"

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, action: str, exc: Exception) -> None:
        if self._down_until == 0.0:
            log.warning(
                "redis unavailable (%s: %s); serving degraded from the database", action, exc
            )
        self._down_until = time.monotonic() + self.retry_after_seconds

    def _recovered(self) -> None:
        if self._down_until != 0.0:
            log.warning("redis reachable again; revocation cache back in use")
            self._down_until = 0.0

    def is_revoked(self, session_id: uuid.UUID) -> bool:
        if not self.available:
            return False
        try:
            revoked = bool(self.client.exists(self._key(session_id)))
        except redis.RedisError as exc:
            self._failed("lookup", exc)
            return False
        self._recovered()
        return revoked

    def publish(self, session_ids: Iterable[uuid.UUID]) -> None:
        keys = [self._key(session_id) for session_id in session_ids]
        if not keys:
            return
        if not self.available:
            log.info("redis down: %d revocation(s) kept in the database only", len(keys))
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(key, "1", ex=self.ttl_seconds)
                pipe.execute()
        except redis.RedisError as exc:
            self._failed("publish", exc)
            return
        self._recovered()

    def check(self) -> bool:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            self._failed("start-up", exc)
            return False
        return True


def build_revocation_cache(config: dict) -> RevocationCache:
    """Pick the variant once, at start-up."""
    url = config.get("REDIS_URL")
    if not url:
        return NullRevocationCache()
    timeout = config["REDIS_SOCKET_TIMEOUT"]
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
    )
    ttl = config["ACCESS_TOKEN_LIFETIME_SECONDS"] + config["JWT_LEEWAY_SECONDS"]
    cache = RedisRevocationCache(client, prefix=config["REDIS_KEY_PREFIX"], ttl_seconds=ttl)
    cache.check()
    return cache
