"""Sanic: utilserve answers on streaming catch-all routes; server listeners run the hooks in each worker."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote

from sanic import Request as SanicRequest
from sanic import Sanic
from sanic.compat import Header
from sanic.constants import HTTP_METHODS
from sanic.exceptions import MethodNotAllowed
from sanic.response import HTTPResponse

from ..api.builtin import HEALTH_PATHS
from ..handler import Handler
from ..http import Request

METHODS = [str(method) for method in HTTP_METHODS]


class NativeResponse(HTTPResponse):
    """Sends utilserve's headers as given: Sanic's own would add ``content-type: None`` to a typeless body."""

    @property
    def processed_headers(self) -> Iterator[tuple[bytes, bytes]]:
        if "content-type" in self.headers:
            return super().processed_headers
        sanitize = self._sanitize_header_value
        return (
            (sanitize(name).encode("ascii"), sanitize(value).encode(errors="surrogateescape"))
            for name, value in self.headers.items()
        )


def application(handler: Handler, native: Sanic[Any, Any] | None) -> Sanic[Any, Any]:
    app = native if native is not None else Sanic(app_name(handler.settings.name))

    async def view(request: SanicRequest, path: str = "") -> HTTPResponse:
        # A streaming route leaves the body unread: the core reads it lazily and owns the size limit (413).
        neutral = Request(
            request.method,
            unquote(request.path),
            request.query_string,
            request.headers,
            _body(request.stream) if request.stream is not None else request.body,
            request.ip or None,
            native=request,
        )
        response = await handler.ahandle(neutral)
        if request.stream is not None and _has_body(request):
            await _discard(request.stream, handler.settings.max_body_size)
        return NativeResponse(response.body, response.status, Header(response.headers))

    prefix = handler.settings.route.rstrip("/") if native is not None else ""
    uris = [prefix or "/", prefix + "/<path:path>", *(HEALTH_PATHS if prefix else ())]
    for index, uri in enumerate(uris):
        app.add_route(view, uri, methods=METHODS, name=f"utilserve_{index}", stream=True, strict_slashes=False)
    if native is None:

        async def other_method(request: SanicRequest, error: MethodNotAllowed) -> HTTPResponse:
            """Methods Sanic's router cannot register (TRACE, ...) still get utilserve's answer."""
            return await view(request)

        app.exception(MethodNotAllowed)(other_method)

    async def start(app: Sanic[Any, Any]) -> None:
        await handler.astart()

    async def stop(app: Sanic[Any, Any]) -> None:
        await handler.astop()

    app.before_server_start(start)
    app.after_server_stop(stop)
    return app


async def _body(stream: Any) -> AsyncIterator[bytes]:
    """Sanic's body stream as a plain async iterator: under ASGI it is also callable, not a read(n)."""
    async for chunk in stream:
        yield chunk


def _has_body(request: SanicRequest) -> bool:
    return "transfer-encoding" in request.headers or request.headers.get("content-length", "0") != "0"


async def _discard(stream: Any, limit: int) -> None:
    """Read what the core left of a body, up to ``limit``: Sanic logs an error for every body left unread."""
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            return


def app_name(service_name: str) -> str:
    """A valid Sanic app name, unique in this process: Sanic refuses to register one name twice.

    The suffix depends only on creation order, so worker processes that re-import
    the app module derive the same name as the main process.
    """
    base = re.sub(r"[^A-Za-z0-9_-]", "_", service_name)
    if not re.match(r"[A-Za-z_]", base):
        base = "_" + base
    name, count = base, 1
    while name in Sanic._app_registry:
        count += 1
        name = f"{base}_{count}"
    return name


def run(app: Sanic[Any, Any], handler: Handler, host: str, port: int) -> None:
    app.run(host=host, port=port, single_process=True)
