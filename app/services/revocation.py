"""Where ended sessions are announced to every instance.

The database is the source of truth: a session row with ``revoked_at`` set (or no row at all)
is dead, and every authenticated request reads that row. With Redis configured, ended sessions
are also written there so every instance can refuse their tokens without a database round trip.
Absence from Redis never counts as "still valid" (Redis may have restarted with old data or been
flushed), so the database check always follows. Without Redis, the null variant does nothing.
"""

from __future__ import annotations

import logging
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

    Redis errors never fail a request: they are logged and the database answers.
    """

    name = "redis"

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_seconds: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds

    def _key(self, session_id: uuid.UUID) -> str:
        return f"{self.prefix}revoked-session:{session_id}"

    def is_revoked(self, session_id: uuid.UUID) -> bool:
        try:
            return bool(self.client.exists(self._key(session_id)))
        except redis.RedisError as exc:
            log.warning("redis unavailable, checking revocation in the database only: %s", exc)
            return False

    def publish(self, session_ids: Iterable[uuid.UUID]) -> None:
        keys = [self._key(session_id) for session_id in session_ids]
        if not keys:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(key, "1", ex=self.ttl_seconds)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning(
                "redis unavailable, %d revocation(s) kept in the database only: %s",
                len(keys),
                exc,
            )

    def check(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError as exc:
            log.warning(
                "redis at start-up unreachable; serving degraded from the database: %s", exc
            )
            return False


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
