"""The built-in middleware that every request passes first: its id, its span, its metrics, its access log line."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable

from ..http import Request, Response
from ..middleware import Middleware
from . import context, logs, metrics
from .tally import RequestTally, tally
from .tracing import ServerSpan, server_span

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods kept as a metrics label; any other counts as ``OTHER``, so clients cannot add labels at will."""


def observing(with_metrics: bool) -> Middleware:
    """The outermost layer: sets the request's origin for the work it starts (the pool reads it), echoes its id."""
    counted = tally if with_metrics else None

    def enter(request_id: str, span: ServerSpan) -> contextvars.Token[context.Origin | None]:
        if counted is not None:
            counted.started()
        return context.enter(context.Origin(request_id, span.carrier()))

    def leave(token: contextvars.Token[context.Origin | None], response: Response | None) -> None:
        """A streamed body is made after this layer returns: its steps keep the request's origin."""
        if response is None or response.chunks is None:
            context.leave(token)
        if response is None and counted is not None:
            counted.left()  # raised through: no answer to count

    def sync(request: Request, call_next: Callable[[Request], Response]) -> Response:
        started, request_id = (
            time.perf_counter(),
            context.request_id_from(request.headers.get(context.REQUEST_ID_HEADER)),
        )
        with server_span(request.method, request.route, request.headers, request.path) as span:
            token = enter(request_id, span)
            try:
                response = call_next(request)
            except BaseException:
                leave(token, None)
                raise
            leave(token, response)
            span.set_status(response.status)
        return _finish(request, response, request_id, started, counted)

    async def asynchronous(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started, request_id = (
            time.perf_counter(),
            context.request_id_from(request.headers.get(context.REQUEST_ID_HEADER)),
        )
        with server_span(request.method, request.route, request.headers, request.path) as span:
            token = enter(request_id, span)
            try:
                response = await call_next(request)
            except BaseException:
                leave(token, None)
                raise
            leave(token, response)
            span.set_status(response.status)
        return _finish(request, response, request_id, started, counted)

    return Middleware(sync, asynchronous)


def _finish(
    request: Request, response: Response, request_id: str, started: float, counted: RequestTally | None
) -> Response:
    response.headers.append((context.REQUEST_ID_HEADER, request_id))
    seconds = time.perf_counter() - started
    route = request.route or metrics.UNMATCHED_ROUTE
    if counted is not None:
        counted.finished(request.method if request.method in METHODS else "OTHER", route, response.status, seconds)
    size = None if response.chunks is not None else len(response.body)
    logs.log_request(request.method, route, request.path, response.status, seconds * 1000, size, request_id)
    return response
