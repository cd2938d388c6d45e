"""Starlette (ASGI): utilserve answers as one raw ASGI route; lifespan runs the hooks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Route

from ..api.builtin import HEALTH_PATHS
from ..handler import Handler
from ..http import Request, Response

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Endpoint:
    """The ASGI app behind utilserve's routes: native request in, native response out."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        request = Request(
            scope["method"],
            scope["path"],
            scope["query_string"].decode("latin-1"),
            Headers(scope=scope),
            _body(receive),
            client[0] if client else None,
            native=scope,
        )
        await send_response(await self.handler.ahandle(request), send)


async def send_response(response: Response, send: Send) -> None:
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def routes(handler: Handler, standalone: bool) -> list[BaseRoute]:
    endpoint = Endpoint(handler)
    prefix = handler.settings.route.rstrip("/")
    if standalone or not prefix:
        return [Route("/{path:path}", endpoint)]
    paths = [prefix, prefix + "/{path:path}", *HEALTH_PATHS]
    return [Route(path, endpoint) for path in paths]


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
        return Starlette(routes=routes(handler, standalone=True), lifespan=lifespan(handler))
    native.router.routes[:0] = routes(handler, standalone=False)
    native.router.lifespan_context = lifespan(handler, native.router.lifespan_context)
    return native


def run(app: Any, handler: Handler, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port)
