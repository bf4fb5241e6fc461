"""Log configuration: one handler on the ``gatehouse`` logger, every line with its request id."""

from __future__ import annotations

import logging

from flask import Flask, g, has_request_context

FORMAT = "%(asctime)s %(levelname)s %(name)s [request_id=%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(g, "request_id", "-") if has_request_context() else "-"
        return True


def init_app(app: Flask) -> None:
    logger = logging.getLogger("gatehouse")
    logger.setLevel(app.extensions["gatehouse"].settings.log_level)
    if not any(getattr(h, "_gatehouse", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler._gatehouse = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RequestIdFilter())
        logger.addHandler(handler)
