"""The per-app collaborators the services use, built once by ``create_app`` without network I/O."""

from __future__ import annotations

import os
from dataclasses import dataclass

from flask import Flask, current_app

from app.clock import Clock, SystemClock
from app.redis_client import SharedRedis, build_shared_redis
from app.services.breached import build_password_screen
from app.services.devices import DeviceTokens
from app.services.passwords import PasswordHasher, PasswordPolicy
from app.services.tokens import (
    AccessTokenCodec,
    KeySet,
    load_retired_keys,
    load_secret_key,
    load_signing_key,
)
from config import ConfigurationError, Settings

EXTENSION_KEY = "gatehouse"


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    hasher: PasswordHasher
    password_policy: PasswordPolicy
    token_codec: AccessTokenCodec | None
    devices: DeviceTokens | None
    redis: SharedRedis

    @property
    def tokens(self) -> AccessTokenCodec:
        """The access-token codec; an app built for the command line has none."""
        if self.token_codec is None:
            raise ConfigurationError("this app was built for the command line: it has no keys")
        return self.token_codec


def build_runtime(app: Flask, settings: Settings, *, serving: bool = True) -> Runtime:
    """Build the collaborators; ``serving=False`` (the command line) loads no signing key."""
    runtime = Runtime(
        settings=settings,
        clock=SystemClock(),
        hasher=PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
            max_concurrent=settings.argon2_max_concurrent or available_cores(),
            queue_timeout=settings.argon2_queue_timeout_seconds,
        ),
        password_policy=PasswordPolicy(
            min_length=settings.password_min_length,
            max_length=settings.password_max_length,
            screen=build_password_screen(
                list_enabled=settings.password_breached_list_enabled,
                api_enabled=settings.password_breach_api_enabled,
                api_url=settings.password_breach_api_url,
                api_timeout_seconds=settings.password_breach_api_timeout_seconds,
            ),
        ),
        token_codec=_token_codec(settings) if serving else None,
        devices=_device_tokens(settings) if serving else None,
        redis=build_shared_redis(
            settings.redis_url,
            prefix=settings.redis_key_prefix,
            socket_timeout=settings.redis_socket_timeout,
        ),
    )
    app.extensions[EXTENSION_KEY] = runtime
    return runtime


def _token_codec(settings: Settings) -> AccessTokenCodec:
    return AccessTokenCodec(
        KeySet(load_signing_key(settings), load_retired_keys(settings)),
        issuer=settings.jwt_issuer or "",
        audience=settings.jwt_audience,
        lifetime_seconds=settings.access_token_lifetime_seconds,
        leeway_seconds=settings.jwt_leeway_seconds,
    )


def _device_tokens(settings: Settings) -> DeviceTokens:
    return DeviceTokens(
        load_secret_key(settings),
        lifetime_seconds=settings.device_token_lifetime_seconds,
        failures=settings.device_failures,
    )


def available_cores() -> int:
    """Cores this process may use (its CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION_KEY]


def settings() -> Settings:
    """The current app's typed settings."""
    return runtime().settings
