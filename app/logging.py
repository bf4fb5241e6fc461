"""Logs: one handler on the ``gatehouse`` logger, JSON lines in production, text in development.

Every line carries the request id, and once known the account and session ids and the trace id;
``LOG_FORMAT`` (json | text) overrides the environment's default. One access-log line per
request is written here too (method, path without its query string, status, duration, client
IP), for answers refused before any view as for the rest; gunicorn's own access log stays off.
Secrets never reach a log line: bodies are never logged, query strings (where a client may put a
token) are dropped, and no header is logged.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

from app.errors import current_trace_id

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [request_id=%(request_id)s] %(message)s"
# Fields a line may carry beyond the standard ones, in the order text lines show them.
CONTEXT_FIELDS = ("request_id", "account_id", "session_id", "trace_id")
EVENT_FIELDS = (
    "event",
    "outcome",
    "reason",
    "method",
    "path",
    "status",
    "duration_ms",
    "client_ip",
)
# Probes and scrapes would drown the access log; they are logged at DEBUG.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

access_log = logging.getLogger("gatehouse.access")


class RequestContextFilter(logging.Filter):
    """Adds the request id, the caller's account and session, and the trace id to each line."""

    def filter(self, record: logging.LogRecord) -> bool:
        in_request = has_request_context()
        record.request_id = getattr(g, "request_id", "-") if in_request else "-"
        principal = getattr(g, "principal", None) if in_request else None
        if principal is not None and not hasattr(record, "account_id"):
            record.account_id = str(principal.account_id)
            if principal.session_id is not None:
                record.session_id = str(principal.session_id)
        trace_id = current_trace_id()
        if trace_id:
            record.trace_id = trace_id
        return True


class GatehouseJsonFormatter(JsonFormatter):
    """One JSON object per line: UTC time, level, logger, message and the fields above."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["time"] = (
            datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        ).replace("+00:00", "Z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        if log_data.get("request_id") == "-":
            del log_data["request_id"]


class TextFormatter(logging.Formatter):
    """Readable lines; the structured fields follow the message as ``key=value``.

    CR and LF in values are escaped, so no one can forge a log line through a field.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extras = [
            f"{name}={getattr(record, name)}"
            for name in (*EVENT_FIELDS, "account_id", "session_id", "trace_id")
            if getattr(record, name, None) not in (None, "")
        ]
        if extras:
            line += " " + " ".join(extras)
        return line.replace("\r", "\\r").replace("\n", "\\n")


def init_app(app: Flask) -> None:
    settings = app.extensions["gatehouse"].settings
    logger = logging.getLogger("gatehouse")
    logger.setLevel(settings.log_level)
    for handler in [h for h in logger.handlers if getattr(h, "_gatehouse", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler()
    handler._gatehouse = True  # type: ignore[attr-defined]
    handler.setFormatter(json_formatter() if settings.log_format == "json" else text_formatter())
    handler.addFilter(RequestContextFilter())
    logger.addHandler(handler)
    app.before_request(_start_timer)
    app.after_request(_log_access)


def json_formatter() -> logging.Formatter:
    return GatehouseJsonFormatter("%(message)s")


def text_formatter() -> logging.Formatter:
    return TextFormatter(TEXT_FORMAT)


def _start_timer() -> None:
    g.request_started = time.perf_counter()


def _log_access(response: Response) -> Response:
    started = getattr(g, "request_started", None)
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    level = logging.DEBUG if request.path in QUIET_PATHS else logging.INFO
    access_log.log(
        level,
        "request",
        extra={
            "event": "http_request",
            "method": request.method,
            "path": request.path,  # never the query string: it may carry a token
            "status": response.status_code,
            "duration_ms": duration_ms,
            "client_ip": request.remote_addr,
        },
    )
    return response
