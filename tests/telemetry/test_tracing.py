"""Traces: the server span of a request, the batch span linked to the requests in it, and no-ops without OTel.

The global tracer provider can be set once per process, so the tests here
hand each call a provider of their own; those about the global provider, or
about OpenTelemetry being unused or absent, run in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from utilserve.telemetry.tracing import batch_span, server_span

from ..support.servers import ROOT

CLIENT_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
CLIENT_SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{CLIENT_TRACE_ID:032x}-{CLIENT_SPAN_ID:016x}-01"


class _GetOnly:
    """Headers with nothing but a case-insensitive ``get``, as the Falcon adapter hands them over."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = {name.lower(): value for name, value in headers.items()}

    def get(self, key: str) -> str | None:
        return self._headers.get(key.lower())


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def finished(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [span for span in exporter.get_finished_spans() if span.name == name]
    return span


def test_a_request_gets_a_current_server_span_named_after_its_route(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with server_span("GET", "/items/{id}", {}, path="/items/7", provider=provider) as span:
        current = trace.get_current_span()
        span.set_status(200)

    served = finished(exporter, "GET /items/{id}")
    assert served.kind is SpanKind.SERVER
    assert served.context is not None and served.context == current.get_span_context()
    assert served.parent is None
    assert dict(served.attributes or {}) == {
        "http.request.method": "GET",
        "http.route": "/items/{id}",
        "url.path": "/items/7",
        "http.response.status_code": 200,
    }
    assert served.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize(("status", "failed"), [(404, False), (503, True)])
def test_only_a_5xx_fails_the_server_span(
    provider: TracerProvider, exporter: InMemorySpanExporter, status: int, failed: bool
) -> None:
    with server_span("POST", "/items", {}, provider=provider) as span:
        span.set_status(status)

    served = finished(exporter, "POST /items")
    assert (served.status.status_code is StatusCode.ERROR) is failed
    assert (served.attributes or {}).get("error.type") == (str(status) if failed else None)


def test_an_unmatched_path_or_unknown_method_never_names_a_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with server_span("GET", None, {}, path="/no/such/thing", provider=provider):
        pass
    with server_span("BREW", "/coffee", {}, provider=provider):
        pass

    assert "http.route" not in (finished(exporter, "GET").attributes or {})
    brewed = finished(exporter, "HTTP /coffee")
    assert brewed.attributes is not None
    assert brewed.attributes["http.request.method"] == "_OTHER"
    assert brewed.attributes["http.request.method_original"] == "BREW"


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": TRACEPARENT},
        [("accept", "*/*"), ("traceparent", TRACEPARENT)],
        _GetOnly({"Traceparent": TRACEPARENT}),
    ],
    ids=["mapping", "pairs", "get-only"],
)
def test_the_clients_traceparent_becomes_the_parent(
    provider: TracerProvider, exporter: InMemorySpanExporter, headers: Any
) -> None:
    with server_span("GET", "/items", headers, provider=provider):
        pass

    served = finished(exporter, "GET /items")
    assert served.context is not None and served.parent is not None
    assert served.context.trace_id == CLIENT_TRACE_ID
    assert (served.parent.trace_id, served.parent.span_id) == (CLIENT_TRACE_ID, CLIENT_SPAN_ID)
    assert served.parent.is_remote


def test_the_carrier_holds_the_server_spans_w3c_context(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with server_span(
        "GET", "/items", {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}, provider=provider
    ) as span:
        carrier = span.carrier()

    served = finished(exporter, "GET /items").context
    assert served is not None
    assert carrier == {"traceparent": f"00-{served.trace_id:032x}-{served.span_id:016x}-01", "tracestate": "vendor=1"}


def test_a_batch_span_links_to_the_span_of_each_request_in_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    carriers = []
    for headers in ({}, {"traceparent": TRACEPARENT}):
        with server_span("POST", "/predict", headers, provider=provider) as span:
            carriers.append(span.carrier())
    requests = [(span.context.trace_id, span.context.span_id) for span in exporter.get_finished_spans() if span.context]
    items = [carriers[0], {}, carriers[1], carriers[0]]

    with server_span("GET", "/other", {}, provider=provider), batch_span("echo", items, provider=provider):
        batch_context = trace.get_current_span().get_span_context()

    batch = finished(exporter, "batch echo")
    assert batch.context == batch_context
    assert batch.kind is SpanKind.INTERNAL
    assert batch.parent is None, "a batch is no child of the span that happened to be current"
    assert [(link.context.trace_id, link.context.span_id) for link in batch.links] == requests
    assert dict(batch.attributes or {}) == {"utilserve.model": "echo", "utilserve.batch.size": 4}


def test_an_exception_in_a_batch_fails_its_span_and_goes_on(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(ValueError, match="bad input"), batch_span("echo", [{}], provider=provider):
        raise ValueError("bad input")

    batch = finished(exporter, "batch echo")
    assert batch.status.status_code is StatusCode.ERROR
    (event,) = batch.events
    assert event.name == "exception"
    assert event.attributes is not None and event.attributes["exception.type"] == "ValueError"


FRESH_PRELUDE = """
import json, sys
exporter = None
"""

FRESH_REQUEST = f"""
import utilserve
from utilserve.telemetry.tracing import batch_span, server_span

with server_span("GET", "/items", {{"traceparent": {TRACEPARENT!r}}}) as span:
    span.set_status(500)
    carrier = span.carrier()
try:
    with batch_span("echo", [carrier, {{"traceparent": {TRACEPARENT!r}}}]):
        raise ValueError("bad input")
except ValueError:
    raised = True
otel = sorted(name for name, module in sys.modules.items() if name.startswith("opentelemetry") and module)
spans = [span.name for span in exporter.get_finished_spans()] if exporter else []
print(json.dumps({{"carrier": carrier, "raised": raised, "otel": otel, "spans": spans}}))
"""


def in_fresh_interpreter(setup: str) -> dict[str, Any]:
    """Serve a request and run its batch in a new interpreter after ``setup``; what came out, as JSON."""
    script = FRESH_PRELUDE + textwrap.dedent(setup) + FRESH_REQUEST
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


@pytest.mark.parametrize(
    "setup",
    ["sys.modules['opentelemetry'] = None", "", "import opentelemetry.trace"],
    ids=["absent", "unused", "no-provider"],
)
def test_without_a_tracer_provider_both_are_no_ops(setup: str) -> None:
    out = in_fresh_interpreter(setup)
    assert out["carrier"] == {}
    assert out["raised"]
    if setup != "import opentelemetry.trace":
        assert out["otel"] == [], "nothing of OpenTelemetry is imported until the user imports it"


def test_the_global_tracer_provider_is_the_default() -> None:
    out = in_fresh_interpreter(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        trace.set_tracer_provider(TracerProvider())
        trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
        """
    )
    assert out["carrier"]["traceparent"].startswith(f"00-{CLIENT_TRACE_ID:032x}-")
    assert out["spans"] == ["GET /items", "batch echo"]
    assert out["raised"]
