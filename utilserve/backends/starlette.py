"""Starlette (ASGI): utilserve answers as one raw ASGI route; lifespan runs the hooks."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from ..handler import Handler
from ..http import Request, Response
from . import asgi_path
from .asgi import CLIENT_GONE, Incoming

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

EVERY_PATH = "/{path:path}"


class Endpoint:
    """The ASGI app behind utilserve's routes: native request in, native response out."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        incoming = Incoming(receive)
        request = Request(
            scope["method"],
            asgi_path(scope["path"], scope),
            scope["query_string"].decode("latin-1"),
            Headers(scope=scope),
            incoming.body(),
            client[0] if client else None,
            native=scope,
        )
        incoming.watch(expects_continue=(request.headers.get("expect") or "").lower() == "100-continue")
        try:
            try:
                response = await self.handler.ahandle(request)
            except asyncio.CancelledError:
                if not incoming.cancelled_request:
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr]  # a task runs this
                response = Response.error(CLIENT_GONE)  # for middleware around the app, which expects an answer
            incoming.responding = True
            await send_response(response, send, incoming)
        finally:
            incoming.stop()


async def send_response(response: Response, send: Send, incoming: Incoming) -> None:
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers]
    chunks = response.chunks
    if chunks is None:
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if chunks is None:
        await send({"type": "http.response.body", "body": response.body})
        return
    assert isinstance(chunks, AsyncIterator)  # the handler's async path streams async chunks only
    left = incoming.listen()
    streaming = asyncio.ensure_future(_send_chunks(chunks, send))
    gone = asyncio.ensure_future(left.wait())
    await asyncio.wait({streaming, gone}, return_when=asyncio.FIRST_COMPLETED)
    if gone.done():
        streaming.cancel()  # the stream's generator is closed at once, not at its next chunk
    gone.cancel()
    await asyncio.gather(streaming, return_exceptions=gone.done())


async def _send_chunks(chunks: AsyncIterator[bytes], send: Send) -> None:
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def routes(handler: Handler) -> list[BaseRoute]:
    """utilserve's routes inside a native app: its route's tree and the root paths, or every path."""
    endpoint = Endpoint(handler)
    prefix = handler.settings.route.rstrip("/")
    if not prefix:
        return [_route(EVERY_PATH, endpoint)]
    paths = [prefix, prefix + EVERY_PATH, *handler.root_paths]
    return [_route(path, endpoint) for path in paths]


def _route(path: str, endpoint: Endpoint) -> Route:
    """A Route whose ``{path:path}`` takes newlines too (a ``%0A`` in the URL): Starlette's stops at one, and its
    plain-text 404 answered in utilserve's place."""
    route = Route(path, endpoint)
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return route


def lifespan(handler: Handler, inner: Callable[[Any], Any] | None = None) -> Callable[[Any], Any]:
    @asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Any]:
        if inner is None:
            await handler.astart()
            try:
                yield None
            finally:
                await handler.astop()
            return
        async with inner(app) as state:
            await handler.astart()
            try:
                yield state
            finally:
                await handler.astop()

    return run


def application(handler: Handler, native: Starlette | None) -> Starlette:
    if native is None:
        return standalone(Starlette, handler)
    native.router.routes[:0] = routes(handler)
    native.router.lifespan_context = lifespan(handler, native.router.lifespan_context)
    return native


App = TypeVar("App", bound=Starlette)


def standalone(kind: Callable[..., App], handler: Handler, **options: Any) -> App:
    """An app of ``kind`` (Starlette or a subclass) that utilserve's one route serves whole.

    That route takes every path, and utilserve answers every error itself:
    Starlette's router and error layers would only pass each request
    through. So, while no middleware is added to the app, its HTTP requests
    go straight to the route's endpoint; added middleware gets the whole
    stack, as its layers must see them. Starlette builds that stack at the
    first request, after which middleware can no longer be added.
    """
    endpoint = Endpoint(handler)
    app = kind(routes=[_route(EVERY_PATH, endpoint)], lifespan=lifespan(handler), **options)
    build_stack = app.build_middleware_stack

    def build_direct_stack() -> ASGIApp:
        stack = build_stack()
        if app.user_middleware:
            return stack

        async def direct(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                await endpoint(scope, receive, send)
            else:
                await stack(scope, receive, send)

        return direct

    app.build_middleware_stack = build_direct_stack  # type: ignore[method-assign]  # this app's alone
    return app


def run(app: Any, handler: Handler, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port)
