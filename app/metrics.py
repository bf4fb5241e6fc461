"""Prometheus metrics, correct across gunicorn workers, served at ``/metrics``.

With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py empties it at start), every worker
writes its samples there and a scrape sums them (prometheus_client's multiprocess mode);
without it, the process's own registry answers. ``METRICS_ENABLED`` turns the endpoint off;
``METRICS_TOKEN`` makes it ask for that bearer token. Requests are labelled by route template
(``/api/v1/accounts/me``), never by raw path, so label values stay few.
"""

from __future__ import annotations

import hmac
import os
import time
from pathlib import Path

# prometheus_client picks its storage when first imported, from this variable: an empty value
# would scatter files into the working directory, a missing directory crash every command.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == "":
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]
elif os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.errors import AuthenticationRequired, problem_from, problem_json

HTTP_REQUESTS = Counter(
    "gatehouse_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["endpoint", "method", "status"],
)
HTTP_DURATION = Histogram(
    "gatehouse_http_request_duration_seconds",
    "Time to answer a request, by route template and method",
    ["endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LOGINS = Counter("gatehouse_logins", "Password logins, by outcome", ["outcome"])
REFRESH_TOKEN_REUSE = Counter(
    "gatehouse_refresh_token_reuse", "Refresh tokens presented again (sessions ended for it)"
)
SESSIONS_REVOKED = Counter("gatehouse_sessions_revoked", "Sessions ended, by reason", ["reason"])
REDIS_ERRORS = Counter("gatehouse_redis_errors", "Redis calls that failed")
DB_POOL_IN_USE = Gauge(
    "gatehouse_db_pool_connections_in_use",
    "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)

blueprint = Blueprint("metrics", __name__)


def init_app(app: Flask) -> None:
    settings = app.extensions["gatehouse"].settings
    app.before_request(_start)
    app.after_request(_observe)
    if settings.metrics_enabled:
        app.register_blueprint(blueprint)


def watch_pool(engine: Engine) -> None:
    """Count checked-out connections (the pool in use, per process, summed on scrape)."""

    @event.listens_for(engine, "checkout")
    def _checked_out(*_args) -> None:
        DB_POOL_IN_USE.inc()

    @event.listens_for(engine, "checkin")
    def _checked_in(*_args) -> None:
        DB_POOL_IN_USE.dec()


@blueprint.get("/metrics")
def metrics() -> Response:
    """The current samples, in Prometheus's text format."""
    from app.runtime import settings

    token = settings().metrics_token
    if token:
        presented = request.headers.get("Authorization", "")
        if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
            problem = problem_from(AuthenticationRequired("The metrics need their bearer token."))
            return problem_json(problem.with_header("WWW-Authenticate", 'Bearer realm="metrics"'))
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def _start() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    rule = request.url_rule
    endpoint = rule.rule if rule is not None else "unmatched"
    if endpoint == "/metrics":
        return response
    HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
    started = getattr(g, "metrics_started", None)
    if started is not None:
        HTTP_DURATION.labels(endpoint, request.method).observe(time.perf_counter() - started)
    return response
