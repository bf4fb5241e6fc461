"""The per-app collaborators the services use, built once by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from app.clock import SystemClock
from app.services.passwords import PasswordHasher
from app.services.revocation import RevocationCache, build_revocation_cache
from app.services.tokens import AccessTokenCodec, KeySet, load_retired_keys, load_signing_key

EXTENSION_KEY = "gatehouse"


@dataclass
class Runtime:
    clock: Any
    hasher: PasswordHasher
    tokens: AccessTokenCodec
    revocations: RevocationCache


def build_runtime(app: Flask) -> Runtime:
    config = app.config
    keys = KeySet(load_signing_key(config), load_retired_keys(config))
    runtime = Runtime(
        clock=SystemClock(),
        hasher=PasswordHasher(
            time_cost=config["ARGON2_TIME_COST"],
            memory_cost=config["ARGON2_MEMORY_COST"],
            parallelism=config["ARGON2_PARALLELISM"],
        ),
        tokens=AccessTokenCodec(
            keys,
            issuer=config["JWT_ISSUER"],
            audience=config["JWT_AUDIENCE"],
            lifetime_seconds=config["ACCESS_TOKEN_LIFETIME_SECONDS"],
            leeway_seconds=config["JWT_LEEWAY_SECONDS"],
        ),
        revocations=build_revocation_cache(config),
    )
    app.extensions[EXTENSION_KEY] = runtime
    return runtime


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION_KEY]
