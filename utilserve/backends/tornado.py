"""Tornado: one streaming RequestHandler serves utilserve's paths; run() owns the hooks.

The body is streamed and kept only up to utilserve's limit, so the core
answers 413 past it and memory stays bounded.  When a mounted app is served
by a Tornado server that utilserve did not start, run the hooks around it
with ``await service.astartup()`` / ``await service.ashutdown()``.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from urllib.parse import unquote

import tornado.web

from ..api.builtin import HEALTH_PATHS
from ..handler import Handler
from ..http import Request

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


class AnyMethod(tuple[str, ...]):
    """Lets every method through Tornado's check, so that the core answers one it has no route for (405)."""

    def __contains__(self, method: object) -> bool:
        return True


@tornado.web.stream_request_body
class Endpoint(tornado.web.RequestHandler):
    """Native request in, native response out; Tornado itself answers nothing here."""

    SUPPORTED_METHODS = AnyMethod(METHODS)

    def initialize(self, handler: Handler) -> None:
        self.handler = handler
        self.chunks: list[bytes] = []
        self.size = 0

    def set_default_headers(self) -> None:
        self.clear_header("Content-Type")

    def compute_etag(self) -> str | None:
        """No automatic ETag, so Tornado never turns a response into a 304."""
        return None

    async def prepare(self) -> None:
        if self.request.method not in METHODS:
            await self.serve()  # no endpoint takes it: the core's 405, before any body
            self.finish()
            return
        # The core enforces its own limit on what is kept; Tornado's cap would refuse with a bare 400.
        assert self.request.connection is not None
        self.request.connection.set_max_body_size(sys.maxsize)  # type: ignore[attr-defined]  # on HTTP1Connection

    def data_received(self, chunk: bytes) -> None:
        if self.size <= self.handler.settings.max_body_size:
            self.chunks.append(chunk)
        self.size += len(chunk)

    async def serve(self) -> None:
        native = self.request
        request = Request(
            native.method or "GET",
            unquote(native.path),
            native.query,
            native.headers,
            _body(self.chunks),
            native.remote_ip,
            native=native,
        )
        response = await self.handler.ahandle(request)
        self.set_status(response.status)
        for name in {name for name, _ in response.headers}:
            self.clear_header(name)
        for name, value in response.headers:
            self.add_header(name, value)
        if response.body:
            self.write(response.body)

    get = head = post = put = patch = delete = options = trace = serve


async def _body(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def application(handler: Handler, native: tornado.web.Application | None) -> tornado.web.Application:
    target = {"handler": handler}
    if native is None:
        return tornado.web.Application([(r".*", Endpoint, target)])
    prefix = handler.settings.route.rstrip("/")
    owned = [re.escape(prefix) + "(?:/.*)?", *(re.escape(path) + "/?" for path in HEALTH_PATHS)]
    pattern = f"(?:{'|'.join(owned)})" if prefix else r".*"
    native.add_handlers(r".*", [(pattern, Endpoint, target)])
    return native


def run(app: tornado.web.Application, handler: Handler, host: str, port: int) -> None:
    asyncio.run(_serve(app, handler, host, port))


async def _serve(app: tornado.web.Application, handler: Handler, host: str, port: int) -> None:
    """Hooks start before listening; SIGTERM/SIGINT stop accepting, close connections, then stop hooks."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await handler.astart()
    try:
        server = app.listen(port, host)
        await stopping.wait()
        server.stop()
        await server.close_all_connections()
    finally:
        await handler.astop()
