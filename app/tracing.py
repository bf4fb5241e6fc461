"""OpenTelemetry traces, off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` names a collector.

When on, each request is a span (Flask), with child spans for its SQL statements (SQLAlchemy)
and Redis calls (redis-py); an incoming W3C ``traceparent`` header continues the caller's trace.
The trace id then appears in every log line (``app/logging.py``) and problem document of the
request, so a failed answer can be followed into the traces. Spans leave through a batching
OTLP/HTTP exporter, whose thread the SDK restarts in each forked gunicorn worker.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from app.extensions import db

_EXTENSION_KEY = "gatehouse.tracing"


def init_app(app: Flask, exporter: SpanExporter | None = None) -> TracerProvider | None:
    """Trace ``app`` when a collector is configured, or into ``exporter`` (tests)."""
    settings = app.extensions["gatehouse"].settings
    if exporter is None:
        if not settings.otel_exporter_otlp_endpoint:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor: Any = BatchSpanProcessor(
            OTLPSpanExporter(endpoint=_traces_url(settings.otel_exporter_otlp_endpoint))
        )
    else:
        processor = SimpleSpanProcessor(exporter)
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name})
    )
    provider.add_span_processor(processor)
    # Flask spans name the route template, never the raw path or its query string.
    FlaskInstrumentor().instrument_app(
        app, tracer_provider=provider, excluded_urls="healthz,readyz"
    )
    with app.app_context():
        _trace_engine(db.engine, provider)
    instrumentor = RedisInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
    app.extensions[_EXTENSION_KEY] = provider
    return provider


def _trace_engine(engine: Any, provider: TracerProvider) -> None:
    """Spans for this engine's statements.

    ``SQLAlchemyInstrumentor().instrument(engine=…)`` would also patch ``create_engine``
    process-wide, works once per process only (the test suite builds many apps), and declares
    SQLAlchemy < 2.1; its per-engine tracer hooks engine events that 2.1 keeps unchanged, and
    tests/test_tracing.py checks its spans on every run.
    """
    tracer = trace.get_tracer("gatehouse.sqlalchemy", tracer_provider=provider)
    meter = metrics.get_meter("gatehouse.sqlalchemy")
    usage = meter.create_up_down_counter(
        "db.client.connections.usage", unit="connections", description="Connections in use"
    )
    EngineTracer(tracer, engine, usage)


def _traces_url(endpoint: str) -> str:
    """The collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT gives it, to its traces path."""
    return (
        endpoint
        if endpoint.rstrip("/").endswith("/v1/traces")
        else endpoint.rstrip("/") + "/v1/traces"
    )
