"""Rate limits (Flask-Limiter), per client address and per target account, shared by instances.

Each limited operation names its limits with ``@rate_limited("login")``; ``RATE_LIMITS`` says
what each name counts (the client's address, or the account the body names: its case-folded
email, digested) and which setting holds its rate (``LOGIN_RATE_LIMIT_PER_IP``, …). The counts
live in Redis when ``REDIS_URL`` is set, so every instance shares them, and in the process
otherwise. When Redis fails, the limiter carries on in memory (limits then hold per process),
says so once in the log, and goes back to Redis when it answers again: availability over
strictness, never a 5xx (SECURITY.md REL-04, D-10). ``RATELIMIT_ENABLED`` turns every limit off
(benchmarks). Over a limit: 429 ``rate_limited`` with ``Retry-After``; every limited answer
carries the draft-ietf-httpapi-ratelimit-headers fields (``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset``, ``RateLimit-Policy``).

The client's address is the socket's peer unless ``TRUSTED_PROXY_HOPS`` says proxies of ours
stand in front (``app/__init__.py`` applies ProxyFix): a forged ``X-Forwarded-For`` moves no
count by default.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_restx.utils import merge
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.errors import RateLimited, register_translation

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("gatehouse.rate_limits")
_EXTENSION_KEY = "gatehouse.limiter"
_COUNTERS_KEY = "gatehouse.counters"


def client_address() -> str:
    return request.remote_addr or "unknown"


def account_named_in_body() -> str:
    """The account a login or sign-up is about: its case-folded email, as a digest.

    Read leniently here (the body is validated strictly afterwards): a body that names no
    email is its own, shared bucket. The digest keeps addresses out of Redis, and unknown
    addresses are limited exactly like known ones (SECURITY.md RL-04).
    """
    from app.services.emails import email_lookup_key

    try:
        document = json.loads(request.get_data(cache=True) or b"{}")
        email = document.get("email") if isinstance(document, dict) else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        email = None
    key = email_lookup_key(email) if isinstance(email, str) else None
    material = key if key is not None else f"unparsable:{email!r}"
    return "account:" + hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class LimitRule:
    setting: str  # the Settings field holding the rate, e.g. "login_rate_limit_per_ip"
    key: Callable[[], str]


# What each name counts.
RATE_LIMITS: dict[str, LimitRule] = {
    "login_per_ip": LimitRule("login_rate_limit_per_ip", client_address),
    "login_per_account": LimitRule("login_rate_limit_per_account", account_named_in_body),
    "signup_per_ip": LimitRule("signup_rate_limit_per_ip", client_address),
    "signup_per_account": LimitRule("signup_rate_limit_per_account", account_named_in_body),
    "refresh_per_ip": LimitRule("refresh_rate_limit_per_ip", client_address),
    "password_check_per_ip": LimitRule("password_check_rate_limit_per_ip", client_address),
    "pat_create_per_ip": LimitRule("pat_create_rate_limit_per_ip", client_address),
    "password_reset_per_ip": LimitRule("password_reset_rate_limit_per_ip", client_address),
    "email_per_ip": LimitRule("email_rate_limit_per_ip", client_address),
    "mfa_per_ip": LimitRule("mfa_rate_limit_per_ip", client_address),
}


def rate_limited(*names: str) -> Callable[[F], F]:
    """Mark an operation as limited by the named rules; ``init_app`` applies them per app.

    Also documents 429 ``rate_limited`` for the operation in the OpenAPI document.
    """
    unknown = set(names) - set(RATE_LIMITS)
    if unknown:
        raise ValueError(f"unknown rate limits: {sorted(unknown)}")

    def decorator(method: F) -> F:
        method.__apidoc__ = merge(  # type: ignore[attr-defined]
            getattr(method, "__apidoc__", {}),
            {
                "gatehouse": {
                    "rate_limits": {name: True for name in names},
                    "errors": {RateLimited.code: (RateLimited.status, RateLimited.title)},
                }
            },
        )
        return method

    return decorator


def init_app(app: Flask) -> Limiter:
    """Build this app's limiter and put each operation's limits on its view."""
    runtime = app.extensions["gatehouse"]
    settings = runtime.settings
    options: dict[str, Any] = {}
    storage_uri = "memory://"
    if runtime.redis.configured:
        storage_uri = settings.redis_url
        options = {"connection_pool": runtime.redis.client.connection_pool}
    limiter = Limiter(
        key_func=client_address,
        app=app,
        storage_uri=storage_uri,
        storage_options=options,
        strategy="moving-window",
        in_memory_fallback_enabled=True,
        key_prefix=f"{settings.redis_key_prefix}rl",
        headers_enabled=False,  # the draft's header names are written below
        enabled=settings.ratelimit_enabled,
        on_breach=_log_breach,
    )
    app.extensions[_EXTENSION_KEY] = limiter
    app.extensions[_COUNTERS_KEY] = Counters(storage_uri, options, f"{settings.redis_key_prefix}rl")
    logging.getLogger("flask-limiter").setLevel(logging.WARNING)
    _limit_views(app, limiter)
    app.after_request(_add_headers)
    return limiter


def current_limiter() -> Limiter:
    return current_app.extensions[_EXTENSION_KEY]


class Counters:
    """Counts outside the request limits (a device's wrong passwords), on the same storage.

    Always on, whatever ``RATELIMIT_ENABLED`` says, since what they guard is not a rate but a
    security rule. When Redis fails they carry on in this process's memory, said once.
    """

    def __init__(self, storage_uri: str, options: dict[str, Any], prefix: str) -> None:
        self._primary = MovingWindowRateLimiter(
            storage_from_string(storage_uri, key_prefix=prefix, **options)
            if storage_uri.startswith("redis")
            else storage_from_string(storage_uri)
        )
        self._fallback = MovingWindowRateLimiter(storage_from_string("memory://"))
        self._failing = False

    def _call(self, action: str, item: RateLimitItem, *identifiers: str) -> bool:
        try:
            result = getattr(self._primary, action)(item, *identifiers)
        except Exception as exc:
            if not self._failing:
                log.warning("counter storage unreachable (%s); counting in memory", exc)
                self._failing = True
            return getattr(self._fallback, action)(item, *identifiers)
        if self._failing:
            log.warning("counter storage reachable again")
            self._failing = False
        return result

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        return self._call("hit", item, *identifiers)

    def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        return self._call("test", item, *identifiers)


def current_counters() -> Counters:
    return current_app.extensions[_COUNTERS_KEY]


def take_mail_budget(kind: str, recipient_key: str) -> int | None:
    """Count one mail of ``kind`` to ``recipient_key`` (an account id, an email key).

    Returns None when it may be sent; once ``MAIL_RATE_LIMIT_PER_ACCOUNT`` is spent, nothing is
    counted and the answer is the length in seconds of the window that is full. Callers then
    send nothing; where the request must look like any other (EM-01) they answer the same.
    Keys are digested, so no address reaches Redis.
    """
    settings = current_app.extensions["gatehouse"].settings
    digest = hashlib.sha256(recipient_key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    counters = current_counters()
    items = parse_many(settings.mail_rate_limit_per_account)
    for item in items:
        if not counters.test(item, "mail", kind, digest):
            return item.get_expiry()
    for item in items:
        counters.hit(item, "mail", kind, digest)
    return None


def _limit_views(app: Flask, limiter: Limiter) -> None:
    """Wrap each limited API view of this app (views are built per app, so limits are too)."""
    from app.api.bodies import documented

    settings = app.extensions["gatehouse"].settings
    for endpoint, view in list(app.view_functions.items()):
        resource = getattr(view, "view_class", None)
        limited = view
        for method in sorted(getattr(resource, "methods", None) or ()):
            handler = getattr(resource, method.lower(), None)
            for name in documented(handler).get("rate_limits", {}) if handler else ():
                rule = RATE_LIMITS[name]
                limited = limiter.limit(
                    getattr(settings, rule.setting),
                    key_func=rule.key,
                    methods=[method],
                    scope=name,
                )(limited)
        app.view_functions[endpoint] = limited


def _add_headers(response: Response) -> Response:
    """draft-ietf-httpapi-ratelimit-headers: the most constraining limit of this request."""
    limiter = current_app.extensions.get(_EXTENSION_KEY)
    try:
        current = limiter.current_limit if limiter is not None else None
        if current is None:
            return response
        window = current.limit.get_expiry()
        reset = min(window, max(0, math.ceil(current.reset_at - time.time())))
        remaining = current.remaining
    except Exception:  # storage trouble: the limiter has already fallen back and said so
        return response
    response.headers["RateLimit-Limit"] = str(current.limit.amount)
    response.headers["RateLimit-Remaining"] = str(max(0, remaining))
    response.headers["RateLimit-Reset"] = str(reset)
    response.headers["RateLimit-Policy"] = f"{current.limit.amount};w={window}"
    return response


def _log_breach(breached: Any) -> None:
    """OPS-02: a client over a limit is a security event (spraying, stuffing)."""
    from app.services.events import security_event

    security_event(
        "excess_rate_limit_exceeded",
        outcome="failure",
        level=logging.WARNING,
        limit=str(breached.limit),
        client_ip=client_address(),
    )


def _as_domain_error(error: BaseException) -> RateLimited | None:
    if not isinstance(error, RateLimitExceeded):
        return None
    retry_after = 1
    try:
        current = current_limiter().current_limit
        if current is not None:
            # reset_at is rounded up to a whole second: never more than the window itself.
            window = current.limit.get_expiry()
            retry_after = min(window, max(1, math.ceil(current.reset_at - time.time())))
    except Exception:  # storage trouble; a second's wait is a safe answer
        log.debug("no reset time for a rate-limited answer", exc_info=True)
    return RateLimited(retry_after)


register_translation(_as_domain_error)
