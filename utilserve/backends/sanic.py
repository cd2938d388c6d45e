"""Sanic: utilserve answers on streaming catch-all routes; server listeners run the hooks in each worker."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from sanic import Request as SanicRequest
from sanic import Sanic
from sanic.compat import Header
from sanic.constants import HTTP_METHODS
from sanic.exceptions import MethodNotAllowed
from sanic.response import HTTPResponse

from ..handler import Handler
from ..http import Request
from ..lifecycle import HeldTerminate
from . import path_text

METHODS = [str(method) for method in HTTP_METHODS]
RUNNING_POLL_S = 0.01


class NativeResponse(HTTPResponse):
    """Sends utilserve's headers as given: Sanic's own would add ``content-type: None`` to a typeless body.

    Sanic adds ``content-length`` as an int, hence the ``str`` of each value.
    """

    @property
    def processed_headers(self) -> Iterator[tuple[bytes, bytes]]:
        if "content-type" in self.headers:
            return super().processed_headers
        sanitize = self._sanitize_header_value
        return (
            (sanitize(name).encode("ascii"), sanitize(f"{value}").encode(errors="surrogateescape"))
            for name, value in self.headers.items()
        )


def application(handler: Handler, native: Sanic[Any, Any] | None) -> Sanic[Any, Any]:
    app = native if native is not None else Sanic(app_name(handler.settings.name))

    async def view(request: SanicRequest, path: str = "") -> HTTPResponse | None:
        # A streaming route leaves the body unread: the core reads it lazily and owns the size limit (413).
        neutral = Request(
            request.method,
            path_text(unquote_to_bytes(request.path)),
            request.query_string,
            request.headers,
            _body(request.stream) if request.stream is not None else request.body,
            request.ip or None,
            native=request,
        )
        response = await handler.ahandle(neutral)
        if request.stream is not None and _has_body(request):
            await _discard(request.stream, handler.settings.max_body_size)
        if response.chunks is None:
            return NativeResponse(response.body, response.status, Header(response.headers))
        assert isinstance(response.chunks, AsyncIterator)  # the handler's async path streams async chunks only
        await _stream(request, NativeResponse(None, response.status, Header(response.headers)), response.chunks)
        return None

    prefix = handler.settings.route.rstrip("/") if native is not None else ""
    uris = [prefix or "/", prefix + "/<path:path>", *(handler.root_paths if prefix else ())]
    for index, uri in enumerate(uris):
        app.add_route(view, uri, methods=METHODS, name=f"utilserve_{index}", stream=True, strict_slashes=False)

    async def other_method(request: SanicRequest, error: MethodNotAllowed) -> HTTPResponse | None:
        """Methods Sanic's router cannot register (QUERY, ...) still get utilserve's answer on its paths."""
        if native is None or handler.owns(request.path):
            return await view(request)
        return app.error_handler.default(request, error)

    app.exception(MethodNotAllowed)(other_method)

    holding: list[HeldTerminate] = []
    releasing: set[asyncio.Task[None]] = set()

    async def start(app: Sanic[Any, Any]) -> None:
        holding.append(HeldTerminate())  # Sanic sets its signal handlers only once its socket is open
        await handler.astart()

    async def started(app: Sanic[Any, Any]) -> None:
        while holding:
            task = asyncio.ensure_future(_release_once_running(app, holding.pop()))
            releasing.add(task)  # the loop keeps a weak reference only
            task.add_done_callback(releasing.discard)

    async def stop(app: Sanic[Any, Any]) -> None:
        await handler.astop()

    app.before_server_start(start)
    app.after_server_start(started)
    app.after_server_stop(stop)
    return app


async def _release_once_running(app: Sanic[Any, Any], hold: HeldTerminate) -> None:
    """Send a held SIGTERM again once the worker runs for good: Sanic loses a stop asked for while it starts."""
    while hold.held and not app.state.is_running:
        await asyncio.sleep(RUNNING_POLL_S)
    hold.release()


async def _stream(request: SanicRequest, head: HTTPResponse, chunks: AsyncIterator[bytes]) -> None:
    """Send each chunk as it comes (chunked encoding: no content-length); close the stream however it ends.

    A stream that fails after it began (the core has logged it) cuts the body short: the connection is
    closed, never ended cleanly, so that the client can tell.
    """
    try:
        native = await request.respond(head)
        try:
            async for chunk in chunks:
                await native.send(chunk)
        except Exception:  # noqa: BLE001 - logged by the core; the body is cut short
            request.transport.close()
            return
        await native.eof()
    finally:
        if (aclose := getattr(chunks, "aclose", None)) is not None:
            await aclose()


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
