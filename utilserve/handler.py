"""The core request path that every adapter calls: route, bind, call, render.

Two entry points share one pipeline: :meth:`Handler.handle` for sync
(WSGI) servers and :meth:`Handler.ahandle` for async ones.  Sync endpoints
never run on an event loop; async endpoints run on a per-thread loop when
the server is sync.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import threading
import traceback
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from .api.builtin import HEALTH_PATHS, METRICS_PATH
from .api.routing import Endpoint, Router
from .concurrency import current_pid, run_sync
from .errors import HTTPError
from .http import Request, Response, render
from .lifecycle import finish_when_terminated, stop_at_signal, when_worker_starts
from .middleware import Chain, Middleware
from .streams import async_stream, for_async_server, for_sync_server, is_stream, sync_stream
from .telemetry.context import current as current_origin

Hook = Callable[[], Coroutine[Any, Any, None]]
"""Runs a service's startup or shutdown hooks (and starts or stops its models)."""

logger = logging.getLogger("utilserve")


@dataclass(frozen=True)
class Settings:
    """What the request path and the adapters know of a service: plain values."""

    name: str
    route: str = "/"
    """Where the API tree is mounted; the health paths stay at the root."""
    max_body_size: int = 10 * 1024 * 1024
    production: bool = False
    """No traceback in a 500's body."""
    asynchronous: bool = False
    """ASGI rather than WSGI, for frameworks that offer both."""
    sync_threads: int = 40
    """Threads that run sync endpoints on async servers."""
    metrics: bool = True
    """Prometheus metrics, and ``/metrics`` at the app root."""


class Handler:
    """What an adapter talks to: the compiled routes and plain settings, with no framework in sight.

    ``startup`` and ``shutdown`` run the service's lifecycle; the handler
    runs ``startup`` once per process (see :meth:`start_once`).
    """

    def __init__(
        self, router: Router, settings: Settings, startup: Hook, shutdown: Hook, middleware: Sequence[Middleware] = ()
    ) -> None:
        self.router = router
        self.settings = settings
        self._startup = startup
        self._shutdown = shutdown
        self._executor = ThreadPoolExecutor(max_workers=settings.sync_threads, thread_name_prefix="utilserve")
        self._started_pid: int | None = None
        self._start_lock = threading.Lock()
        self._starting: tuple[int, asyncio.Future[None]] | None = None
        layers = ThreadPoolExecutor(max_workers=settings.sync_threads, thread_name_prefix="utilserve-middleware")
        to_async = partial(for_async_server, executor=self._executor)
        self._chain = Chain(middleware, self._error_response, layers, for_sync_server, to_async)

    def handle(self, request: Request) -> Response:
        """Serve one request on a sync server thread."""
        return self._chain.call(request, *self._innermost(request, self._match(request)))

    async def ahandle(self, request: Request) -> Response:
        """Serve one request on an event loop; sync endpoints go to a thread."""
        endpoint: Endpoint | Exception
        try:
            if self._started_pid != current_pid():
                await self._start_here()
            endpoint = self._match(request)
        except Exception as error:  # noqa: BLE001 - a failed start is this request's 500, and the next one tries again
            endpoint = error
        return await self._chain.acall(request, *self._innermost(request, endpoint))

    def _innermost(
        self, request: Request, endpoint: Endpoint | Exception
    ) -> tuple[Callable[[Request], Response], Callable[[Request], Coroutine[Any, Any, Response]]]:
        """The endpoint's call, on a thread and on a loop, for the request as the last middleware passes it on.

        The request was matched before the middleware ran, so that each layer
        sees its route; one that passes on another request, or changes its
        method or path, has it matched again.
        """
        method, path = request.method, request.path

        def matched(passed: Request) -> Endpoint | Exception:
            if passed is request and passed.method == method and passed.path == path:
                return endpoint
            return self._match(passed)

        return (lambda passed: self._serve(passed, matched(passed))), (
            lambda passed: self._aserve(passed, matched(passed))
        )

    def _match(self, request: Request) -> Endpoint | HTTPError:
        """The request's endpoint, its route template set on the request; or the 404/405/400 to answer.

        A 405's path has a route: its template labels the request too (a CORS
        preflight is an ``OPTIONS`` that the router does not serve).
        """
        try:
            endpoint = _lookup(self.router, request)
        except HTTPError as error:
            if error.status == 405:
                request.route = self.router.template(request.path)
            return error.with_traceback(None)  # kept, its traceback would hold the caller's frame, which holds it
        request.route = endpoint.template
        return endpoint

    def _serve(self, request: Request, endpoint: Endpoint | Exception) -> Response:
        if isinstance(endpoint, Exception):
            return self._error_response(request, endpoint)  # not raised: its traceback would hold this frame
        try:
            if endpoint.signature.reads_body:
                request.read_body(self.settings.max_body_size)
            kwargs = endpoint.signature.bind(request)
            if endpoint.blocking is not None:
                result = endpoint.blocking(**kwargs)
            elif endpoint.is_async:
                result = run_sync(endpoint.func(**kwargs))
            else:
                result = endpoint.func(**kwargs)
            if is_stream(result):
                return _head_only(request, sync_stream(result, f"{request.method} {request.path}"))
            return for_sync_server(_respond(endpoint, request, result))
        except Exception as error:  # noqa: BLE001 - any failure becomes the error contract's answer
            return self._error_response(request, error)

    async def _aserve(self, request: Request, endpoint: Endpoint | Exception) -> Response:
        if isinstance(endpoint, Exception):
            return self._error_response(request, endpoint)
        try:
            if endpoint.signature.reads_body:
                await request.aread_body(self.settings.max_body_size)
            kwargs = endpoint.signature.bind(request)
            if endpoint.is_async:
                result = await endpoint.func(**kwargs)
            elif inspect.isasyncgenfunction(endpoint.func):
                result = endpoint.func(**kwargs)
            else:
                call = partial(contextvars.copy_context().run, endpoint.func, **kwargs)
                result = await asyncio.get_running_loop().run_in_executor(self._executor, call)
            if is_stream(result):
                where = f"{request.method} {request.path}"
                return _head_only(request, await async_stream(result, self._executor, where))
            return await for_async_server(_respond(endpoint, request, result), self._executor)
        except Exception as error:  # noqa: BLE001 - any failure becomes the error contract's answer
            return self._error_response(request, error)

    def _error_response(self, request: Request, error: Exception) -> Response:
        if isinstance(error, HTTPError):
            return Response.error(error)
        return self._internal_error(request, error)

    @property
    def root_paths(self) -> tuple[str, ...]:
        """The built-in paths at the app root whatever the service route: health probes, and metrics when on."""
        return (*HEALTH_PATHS, METRICS_PATH) if self.settings.metrics else HEALTH_PATHS

    def owns(self, path: str) -> bool:
        """Whether ``path`` is utilserve's when mounted inside a native app."""
        route = self.settings.route.rstrip("/")
        return path in self.root_paths or not route or path == route or path.startswith(route + "/")

    def start_once(self) -> None:
        """Run startup hooks once in this process (WSGI servers have no startup event)."""
        if self._started_pid == os.getpid():
            return
        with self._start_lock:
            if self._started_pid != os.getpid():
                run_sync(self._startup())
                self._started_pid = os.getpid()

    def follow_process(self) -> None:
        """For a WSGI app, which has no lifecycle events: start as its pre-fork worker starts, and stop before
        a signal that nobody handles ends the process (see ``lifecycle``)."""
        when_worker_starts(self.start_once)
        stop_at_signal(self.stop)

    def stop(self) -> None:
        """Run the shutdown hooks now, from sync code."""
        run_sync(self._shutdown())

    async def astart(self) -> None:
        """Start from an event loop: at lifespan startup, or at the first request where none came."""
        await self._startup()
        self._started_pid = os.getpid()
        finish_when_terminated()

    async def _start_here(self) -> None:
        """Start at the first request where no lifespan startup came (daphne, ``uvicorn --lifespan off``).

        Requests that arrive meanwhile wait for the same start; after one
        that failed, the next request tries again.
        """
        pid = os.getpid()
        starting = self._starting
        if starting is None or starting[0] != pid or (starting[1].done() and starting[1].exception()):
            self._starting = starting = (pid, asyncio.ensure_future(self.astart()))
        await asyncio.shield(starting[1])

    async def astop(self) -> None:
        await self._shutdown()

    def _internal_error(self, request: Request, error: Exception) -> Response:
        origin = current_origin()
        request_id = origin.request_id if origin is not None else "-"
        logger.error("unhandled error in %s %s (request %s)", request.method, request.path, request_id, exc_info=error)
        detail = None
        if not self.settings.production:
            detail = {
                "exception": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exception(error),
            }
        return Response.error(HTTPError(500, "Internal Server Error", detail=detail))


def _lookup(router: Router, request: Request) -> Endpoint:
    """The request's endpoint, with its path parameters set on the request.

    Path bytes that are not UTF-8 reach the core as surrogate escapes (see
    ``backends.path_text``): refused here, the same on every backend.
    """
    if not request.path.isascii():
        try:
            request.path.encode()
        except UnicodeEncodeError:
            raise HTTPError(400, "the request path is not valid UTF-8") from None
    endpoint, request.path_params = router.lookup(request.method, request.path)
    return endpoint


def _respond(endpoint: Endpoint, request: Request, result: Any) -> Response:
    if isinstance(result, Response):
        response = result
    else:
        body, media_type = render(result)
        response = Response.__new__(Response)
        response.status, response.body = endpoint.status, body
        response.chunks = None
        response.headers = [("content-type", media_type)] if media_type else []
    return _head_only(request, response)


def _head_only(request: Request, response: Response) -> Response:
    """A HEAD request gets the headers alone; a stream's generator is left for the collector to close."""
    if request.method == "HEAD":
        response.body, response.chunks = b"", None
    return response
