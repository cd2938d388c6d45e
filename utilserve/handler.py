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
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .api.errors import HTTPError
from .api.routing import Endpoint, Router
from .concurrency import run_sync
from .http import Request, Response, render

if TYPE_CHECKING:
    from .service import Service

logger = logging.getLogger("utilserve")

HEALTH_PATHS = ("/livez", "/readyz")


class Handler:
    """What an adapter talks to: the compiled service, with no framework in sight."""

    def __init__(self, service: Service, router: Router) -> None:
        self.service = service
        self.router = router
        self.route = service.route
        self.max_body_size = service.max_body_size
        self.production = service.production
        self._executor = ThreadPoolExecutor(max_workers=service.sync_threads, thread_name_prefix="utilserve")
        self._started_pid: int | None = None
        self._start_lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        """Serve one request on a sync server thread."""
        try:
            endpoint, request.path_params = self.router.lookup(request.method, request.path)
            if endpoint.signature.reads_body:
                request.read_body(self.max_body_size)
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
            endpoint, request.path_params = self.router.lookup(request.method, request.path)
            if endpoint.signature.reads_body:
                await request.aread_body(self.max_body_size)
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
        route = self.route.rstrip("/")
        return path in HEALTH_PATHS or not route or path == route or path.startswith(route + "/")

    def start_once(self) -> None:
        """Run startup hooks once in this process (WSGI servers have no startup event)."""
        if self._started_pid == os.getpid():
            return
        with self._start_lock:
            if self._started_pid != os.getpid():
                self.service.startup()
                self._started_pid = os.getpid()

    async def astart(self) -> None:
        await self.service.astartup()
        self._started_pid = os.getpid()

    async def astop(self) -> None:
        await self.service.ashutdown()

    def _internal_error(self, request: Request, error: Exception) -> Response:
        logger.exception("unhandled error in %s %s", request.method, request.path)
        detail = None
        if not self.production:
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


