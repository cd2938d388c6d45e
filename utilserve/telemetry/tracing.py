"""OpenTelemetry traces: a server span per request, and a span per batch linked to the requests in it.

OpenTelemetry is optional (the ``[otel]`` extra), and traces only exist
where the user sets a tracer provider. A provider is only ever set by code
that imported ``opentelemetry.trace``, so until some code in this process
has, this module imports nothing and every function is a no-op: a service
that does not trace never pays for OpenTelemetry's import, installed or not.

A batch serves many requests, so its span is no child of any of them: it
starts a trace of its own and links to each request's server span. Their
contexts reach the batch as W3C carriers (:attr:`.context.Origin.trace`),
plain dicts that cross the process pool's wire and Ray as they are. Each
process records with its own provider: for batch spans, the process pool's
model workers and Ray's replicas need one set too (in the model's
``setup()``, say).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from ..http import HeaderMap

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

Headers = HeaderMap | Iterable[tuple[str, str]]
"""The request's headers: a case-insensitive ``get``, or ``(name, value)`` pairs with lower-case names."""

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
"""The methods that name a span as they are; any other is ``_OTHER``, so clients cannot mint span names."""


class ServerSpan:
    """The request's span as the request path sees it: its carrier for the pool, and the status to record."""

    __slots__ = ("_span",)

    def __init__(self, span: Span | None) -> None:
        self._span = span

    def carrier(self) -> dict[str, str]:
        """The W3C trace context of this span, for :attr:`.context.Origin.trace`; empty when nothing records."""
        carrier: dict[str, str] = {}
        if self._span is not None:
            from opentelemetry.trace import set_span_in_context
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            TraceContextTextMapPropagator().inject(carrier, set_span_in_context(self._span))
        return carrier

    def set_status(self, status: int) -> None:
        """Record the response's status; a 5xx marks the span as failed (a 4xx is the client's error, not ours)."""
        if self._span is None:
            return
        self._span.set_attribute("http.response.status_code", status)
        if status >= 500:
            from opentelemetry.trace import StatusCode

            self._span.set_attribute("error.type", str(status))
            self._span.set_status(StatusCode.ERROR)


_UNTRACED_REQUEST = nullcontext(ServerSpan(None))
_UNTRACED_BATCH = nullcontext()
"""What the functions below hand out while nothing records: shared, as they hold no state."""


def server_span(
    method: str,
    route: str | None,
    headers: Headers,
    path: str | None = None,
    provider: TracerProvider | None = None,
) -> AbstractContextManager[ServerSpan]:
    """The current span while a request is served, child of the client's ``traceparent`` when it sent one.

    ``route`` is the endpoint's route template, None where no endpoint
    matched: raw paths never name a span. ``provider`` defaults to the
    global one.
    """
    tracer = _tracer(provider)
    if tracer is None:
        return _UNTRACED_REQUEST
    return _server_span(tracer, method, route, headers, path)


def batch_span(
    model: str, traces: Sequence[Mapping[str, str]], provider: TracerProvider | None = None
) -> AbstractContextManager[None]:
    """The current span while a batch runs, linked to the span of each request in it; an exception fails it.

    ``traces`` holds each item's :attr:`.context.Origin.trace` (empty ones
    are skipped). ``provider`` defaults to the global one.
    """
    tracer = _tracer(provider)
    if tracer is None:
        return _UNTRACED_BATCH
    return _batch_span(tracer, model, traces)


@contextmanager
def _server_span(
    tracer: Tracer, method: str, route: str | None, headers: Headers, path: str | None
) -> Iterator[ServerSpan]:
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    known = method in KNOWN_METHODS
    attributes = {"http.request.method": method if known else "_OTHER"}
    if not known:
        attributes["http.request.method_original"] = method
    if route is not None:
        attributes["http.route"] = route
    if path is not None:
        attributes["url.path"] = path
    name = method if known else "HTTP"
    if route is not None:
        name = f"{name} {route}"
    parent = propagate.extract(_client_carrier(headers, propagate.get_global_textmap().fields))
    with tracer.start_as_current_span(name, parent, kind=SpanKind.SERVER, attributes=attributes) as span:
        yield ServerSpan(span if span.is_recording() else None)


@contextmanager
def _batch_span(tracer: Tracer, model: str, traces: Sequence[Mapping[str, str]]) -> Iterator[None]:
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, SpanKind, get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    w3c = TraceContextTextMapPropagator()
    links: dict[tuple[int, int], Link] = {}
    for carrier in traces:
        if carrier:
            linked = get_current_span(w3c.extract(carrier, Context())).get_span_context()
            if linked.is_valid:
                links.setdefault((linked.trace_id, linked.span_id), Link(linked))
    attributes: dict[str, str | int] = {"utilserve.model": model, "utilserve.batch.size": len(traces)}
    # An empty parent context: a batch task or thread may have inherited some request's span, which is no parent.
    with tracer.start_as_current_span(
        f"batch {model}", Context(), kind=SpanKind.INTERNAL, attributes=attributes, links=list(links.values())
    ):
        yield


def _tracer(provider: TracerProvider | None) -> Tracer | None:
    """The tracer to record with, or None when nothing would record: OpenTelemetry unused here, or no provider set."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    if provider is None:
        provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return _tracer_of(provider)


@functools.cache
def _tracer_of(provider: TracerProvider) -> Tracer:
    """One tracer per provider: the SDK's ``get_tracer`` rewrites the warning filters on every call."""
    return provider.get_tracer("utilserve")


def _client_carrier(headers: Headers, fields: set[str]) -> dict[str, str]:
    """The headers that the configured propagators read, as the plain dict that they accept."""
    if hasattr(headers, "get"):
        return {name: value for name in fields if (value := headers.get(name)) is not None}
    return {name: value for name, value in headers if name in fields}
