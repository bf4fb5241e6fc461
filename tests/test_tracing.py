"""OpenTelemetry: off by default; on, a request's span continues the caller's W3C trace, SQL
statements are its children, and the trace id is in the problem document and the log lines."""

import http.server
import io
import json
import logging
import threading

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app import tracing
from tests.helpers import ApiActions, assert_problem

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def traced(make_app):
    app = make_app("production")
    exporter = InMemorySpanExporter()
    tracing.init_app(app, exporter=exporter)
    return app, exporter


def test_tracing_is_off_without_a_collector(make_app):
    app = make_app("production")

    response = app.test_client().get("/api/v1/accounts/me", headers={"traceparent": TRACEPARENT})

    assert "gatehouse.tracing" not in app.extensions
    assert "trace_id" not in response.get_json()


def test_request_span_continues_the_callers_trace(traced):
    app, exporter = traced

    app.test_client().get("/api/v1/accounts/me", headers={"traceparent": TRACEPARENT})

    (span,) = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.attributes["http.route"] == "/api/v1/accounts/me"


def test_problem_document_and_log_lines_name_the_trace(traced):
    app, _ = traced
    stream = io.StringIO()
    handler = next(
        h for h in logging.getLogger("gatehouse").handlers if getattr(h, "_gatehouse", 0)
    )
    handler.setStream(stream)

    response = app.test_client().get("/api/v1/accounts/me", headers={"traceparent": TRACEPARENT})

    assert assert_problem(response, 401, "authentication_required")["trace_id"] == TRACE_ID
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all(line["trace_id"] == TRACE_ID for line in lines)


def test_sql_statements_are_children_of_the_request_span(traced):
    app, exporter = traced
    api = ApiActions(app.test_client())
    api.signup()
    exporter.clear()

    api.client.post(
        "/api/v1/auth/login",
        json={"email": "ada@example.com", "password": "correct horse battery staple"},
        headers={"traceparent": TRACEPARENT},
    )

    spans = exporter.get_finished_spans()
    (server,) = [s for s in spans if s.kind.name == "SERVER"]
    queries = [s for s in spans if s.attributes.get("db.system")]
    assert queries
    assert all(s.context.trace_id == server.context.trace_id for s in queries)
    assert all("correct horse" not in str(s.attributes) for s in spans)


class Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str]] = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        Collector.received.append((self.path, self.headers["Content-Type"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_spans_are_exported_over_otlp_http_to_the_configured_collector(make_app):
    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Collector.received.clear()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        app = make_app("production", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)

        app.test_client().get("/api/v1/accounts/me")
        app.extensions["gatehouse.tracing"].force_flush()

        assert ("/v1/traces", "application/x-protobuf") in Collector.received
    finally:
        app.extensions["gatehouse.tracing"].shutdown()
        server.shutdown()
        server.server_close()
