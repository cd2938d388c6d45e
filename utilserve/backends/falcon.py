"""Falcon (WSGI or ASGI): utilserve answers through one sink; a middleware runs the hooks."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import falcon
import falcon.asgi

from ..handler import Handler
from ..http import AsyncBody, Request, Response, SyncBody
from . import asgi_path, wsgi_body, wsgi_path
from .asgi import closed_when_gone

FalconApp = falcon.App | falcon.asgi.App


class _Headers:
    """Falcon's request headers behind the case-insensitive ``get`` that the core reads."""

    __slots__ = ("_req",)

    def __init__(self, req: falcon.Request) -> None:
        self._req = req

    def get(self, key: str, default: Any = None) -> Any:
        return self._req.get_header(key, default=default)


class _WSGIHooks:
    """Runs startup hooks once per worker process before it serves: WSGI has no startup event."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.handler.start_once()


class _ASGIHooks:
    """Runs startup and shutdown hooks from falcon.asgi's lifespan events."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.handler.astart()

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.handler.astop()


def _request(req: falcon.Request, body: SyncBody | AsyncBody) -> Request:
    path = (
        asgi_path(req.path, req.scope)
        if isinstance(req, falcon.asgi.Request)
        else wsgi_path(req.path, req.env.get("PATH_INFO", ""))
    )
    return Request(req.method, path, req.query_string, _Headers(req), body, req.remote_addr, native=req)


def _respond(resp: falcon.Response, response: Response) -> None:
    """Copy utilserve's response as is; falcon lowercases header names, which HTTP allows."""
    resp.status = response.status
    for name, value in response.headers:
        resp.append_header(name, value)
    if response.chunks is None:
        resp.data = response.body


def _wsgi_sink(handler: Handler) -> Any:
    def sink(req: falcon.Request, resp: falcon.Response) -> None:
        body = wsgi_body(req.env, lambda size: req.bounded_stream.read(size))
        response = handler.handle(_request(req, body))
        _respond(resp, response)
        if response.chunks is not None:
            assert isinstance(response.chunks, Iterator)  # the handler's sync path streams sync chunks only
            resp.stream = response.chunks  # sent as it yields, with no Content-Length

    return sink


async def _chunks(req: falcon.asgi.Request) -> AsyncIterator[bytes]:
    """The body stream, opened only if the core reads the body (falcon builds it on access)."""
    async for chunk in req.stream:
        yield chunk


def _asgi_sink(handler: Handler) -> Any:
    async def sink(req: falcon.asgi.Request, resp: falcon.asgi.Response | None, ws: Any = None) -> None:
        if resp is None:
            return  # a WebSocket: utilserve serves HTTP only, and falcon closes the connection
        response = await handler.ahandle(_request(req, _chunks(req)))
        _respond(resp, response)
        if response.chunks is not None:
            assert isinstance(response.chunks, AsyncIterator)  # the handler's async path streams async chunks only
            # Sent as it yields, with no Content-Length. Falcon watches for a client that goes away only for
            # resp.sse, so the stream watches itself, on the ASGI receive that falcon keeps (no public accessor).
            resp.stream = closed_when_gone(response.chunks, req._receive)

    return sink


def _prefix(handler: Handler, standalone: bool) -> re.Pattern[str]:
    """Every path for a new app; in a native app only the service route and the health paths."""
    route = handler.settings.route.rstrip("/")
    if standalone or not route:
        return re.compile("")
    paths = [re.escape(route) + "(?:/.*)?", *(re.escape(path) for path in handler.root_paths)]
    return re.compile(f"(?:{'|'.join(paths)})\\Z", re.DOTALL)


def application(handler: Handler, native: FalconApp | None) -> FalconApp:
    app: FalconApp
    if native is not None:
        app = native
    else:
        app = falcon.asgi.App() if handler.settings.asynchronous else falcon.App()
        # Bodiless responses must not gain falcon's default JSON content-type.
        app.resp_options.default_media_type = None  # type: ignore[assignment]  # falcon allows None, types str
    if isinstance(app, falcon.asgi.App):
        app.add_middleware(_ASGIHooks(handler))
        app.add_sink(_asgi_sink(handler), _prefix(handler, native is None))
    else:
        app.add_middleware(_WSGIHooks(handler))
        app.add_sink(_wsgi_sink(handler), _prefix(handler, native is None))
        handler.follow_process()
    return app


def run(app: FalconApp, handler: Handler, host: str, port: int) -> None:
    if isinstance(app, falcon.asgi.App):
        try:
            import uvicorn
        except ImportError:
            raise ImportError("serving falcon.asgi with run() needs uvicorn: pip install uvicorn") from None
        uvicorn.run(app, host=host, port=port)
        return
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    with make_server(host, port, app, server_class=ThreadingWSGIServer) as server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
