"""The core request path that every adapter calls: route, bind, call, render.

Two entry points share one pipeline: :meth:`Handler.handle` for sync
(WSGI) servers and :meth:`Handler.ahandle` for async ones.  Sync endpoints
never run on an event loop; async endpoints run on a per-thread loop when
the server is sync.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import traceback
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .api.builtin import HEALTH_PATHS
from .api.routing import Endpoint, Router
from .concurrency import run_sync
from .errors import HTTPError
from .http import Request, Response, render

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


class Handler:
    """What an adapter talks to: the compiled routes and plain settings, with no framework in sight.

    ``startup`` and ``shutdown`` run the service's lifecycle; the handler
    runs ``startup`` once per process (see :meth:`start_once`).
    """

    def __init__(self, router: Router, settings: Settings, startup: Hook, shutdown: Hook) -> None:
        self.router = router
        self.settings = settings
        self._startup = startup
        self._shutdown = shutdown
        self._executor = ThreadPoolExecutor(max_workers=settings.sync_threads, thread_name_prefix="utilserve")
        self._started_pid: int | None = None
        self._start_lock = threading.Lock()
        self._starting: tuple[int, asyncio.Future[None]] | None = None

    def handle(self, request: Request) -> Response:
        """Serve one request on a sync server thread."""
        try:
            endpoint, request.path_params = self.router.lookup(request.method, request.path)
            if endpoint.signature.reads_body:
                request.read_body(self.settings.max_body_size)
            kwargs = endpoint.signature.bind(request)
            if endpoint.blocking is not None:
                result = endpoint.blocking(**kwargs)
            elif endpoint.is_async:
                result = run_sync(endpoint.func(**kwargs))
            else:
                result = endpoint.func(**kwargs)
            return _respond(endpoint, request, result)
        except HTTPError as error:
            return Response.error(error)
        except Exception as error:  # noqa: BLE001 - any endpoint failure becomes the 500 of the error contract
            return self._internal_error(request, error)

    async def ahandle(self, request: Request) -> Response:
        """Serve one request on an event loop; sync endpoints go to a thread."""
        try:
            if self._started_pid != os.getpid():
                await self._start_here()
            endpoint, request.path_params = self.router.lookup(request.method, request.path)
            if endpoint.signature.reads_body:
                await request.aread_body(self.settings.max_body_size)
            kwargs = endpoint.signature.bind(request)
            if endpoint.is_async:
                result = await endpoint.func(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._executor, lambda: endpoint.func(**kwargs))
            return _respond(endpoint, request, result)
        except HTTPError as error:
            return Response.error(error)
        except Exception as error:  # noqa: BLE001 - any endpoint failure becomes the 500 of the error contract
            return self._internal_error(request, error)

    def owns(self, path: str) -> bool:
        """Whether ``path`` is utilserve's when mounted inside a native app."""
        route = self.settings.route.rstrip("/")
        return path in HEALTH_PATHS or not route or path == route or path.startswith(route + "/")

    def start_once(self) -> None:
        """Run startup hooks once in this process (WSGI servers have no startup event)."""
        if self._started_pid == os.getpid():
            return
        with self._start_lock:
            if self._started_pid != os.getpid():
                run_sync(self._startup())
                self._started_pid = os.getpid()

    async def astart(self) -> None:
        await self._startup()
        self._started_pid = os.getpid()

    async def _start_here(self) -> None:
        """Start at the first request where no lifespan startup came (daphne, ``uvicorn --lifespan off``).

        Requests that arrive meanwhile wait for the same start.
        """
        pid = os.getpid()
        if self._starting is None or self._starting[0] != pid:
            self._starting = (pid, asyncio.ensure_future(self.astart()))
        await asyncio.shield(self._starting[1])

    async def astop(self) -> None:
        await self._shutdown()

    def _internal_error(self, request: Request, error: Exception) -> Response:
        logger.exception("unhandled error in %s %s", request.method, request.path)
        detail = None
        if not self.settings.production:
            detail = {
                "exception": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exception(error),
            }
        return Response.error(HTTPError(500, "Internal Server Error", detail=detail))


def _respond(endpoint: Endpoint, request: Request, result: Any) -> Response:
    if isinstance(result, Response):
        response = result
    else:
        body, media_type = render(result)
        response = Response.__new__(Response)
        response.status, response.body = endpoint.status, body
        response.headers = [("content-type", media_type)] if media_type else []
    if request.method == "HEAD":
        response.body = b""
    return response
