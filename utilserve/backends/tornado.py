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
from urllib.parse import unquote_to_bytes

import tornado.web
from tornado.iostream import StreamClosedError

from ..handler import Handler
from ..http import Request, Response
from . import path_text

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
DRAIN_S = 30.0
"""How long run() lets accepted requests finish after SIGTERM before it closes their connections."""


IN_FLIGHT = "utilserve_in_flight"
"""The app setting that holds its :class:`InFlight` counter."""


class InFlight:
    """The requests an app has accepted and not yet answered, so that a stopping server can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if not self.count:
            self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait until no request is in flight (True) or ``timeout`` passes (False)."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


class AnyMethod(tuple[str, ...]):
    """Lets every method through Tornado's check, so that the core answers one it has no route for (405)."""

    def __contains__(self, method: object) -> bool:
        return True


@tornado.web.stream_request_body
class Endpoint(tornado.web.RequestHandler):
    """Native request in, native response out; Tornado itself answers nothing here."""

    SUPPORTED_METHODS = AnyMethod(METHODS)

    def initialize(self, handler: Handler, in_flight: InFlight) -> None:
        self.handler = handler
        self.in_flight = in_flight
        self.chunks: list[bytes] = []
        self.size = 0
        self.counted = False
        self.handling: asyncio.Future[Response] | None = None
        self.gone = False

    def set_default_headers(self) -> None:
        self.clear_header("Content-Type")

    def compute_etag(self) -> str | None:
        """No automatic ETag, so Tornado never turns a response into a 304."""
        return None

    async def prepare(self) -> None:
        self.in_flight.enter()
        self.counted = True
        if self.request.method not in METHODS:
            # No endpoint takes it: the core's 405, before any body. Finished before the request is read to the
            # end, Tornado closes the connection after it: say so, or the client's next request meets a reset.
            self.set_header("Connection", "close")
            await self.serve()
            self.finish()
            return
        # The core enforces its own limit on what is kept; Tornado's cap would refuse with a bare 400.
        assert self.request.connection is not None
        self.request.connection.set_max_body_size(sys.maxsize)  # type: ignore[attr-defined]  # on HTTP1Connection

    def on_finish(self) -> None:
        self._done()

    def on_connection_close(self) -> None:
        """The client went away: stop the request's work (an item queued for a model leaves the queue)."""
        self.gone = True
        if self.handling is not None:
            self.handling.cancel()
        self._done()

    def _done(self) -> None:
        if self.counted:
            self.counted = False
            self.in_flight.leave()

    def data_received(self, chunk: bytes) -> None:
        if self.size <= self.handler.settings.max_body_size:
            self.chunks.append(chunk)
        self.size += len(chunk)

    async def serve(self) -> None:
        native = self.request
        request = Request(
            native.method or "GET",
            path_text(unquote_to_bytes(native.path.encode("latin-1"))),  # Tornado reads the request line as latin-1
            native.query,
            native.headers,
            _body(self.chunks),
            native.remote_ip,
            native=native,
        )
        self.handling = asyncio.ensure_future(self.handler.ahandle(request))
        try:
            response = await self.handling
        except asyncio.CancelledError:
            if self.gone:
                return
            raise
        self.set_status(response.status)
        for name in {name for name, _ in response.headers}:
            self.clear_header(name)
        for name, value in response.headers:
            self.add_header(name, value)
        if response.chunks is None:
            if response.body:
                self.write(response.body)
            return
        assert isinstance(response.chunks, AsyncIterator)  # the handler's async path streams async chunks only
        await self._stream(response.chunks)

    async def _stream(self, chunks: AsyncIterator[bytes]) -> None:
        """Send each chunk as it comes (no Content-Length: Tornado uses chunked encoding); close the stream
        however it ends.

        A stream that fails after it began (the core has logged it) cuts the body short: the connection is
        closed, never ended cleanly, so that the client can tell.
        """
        try:
            async for chunk in chunks:
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return  # the client has gone
        except Exception:  # noqa: BLE001 - logged by the core; the body is cut short
            assert self.request.connection is not None
            self.request.connection.close()  # type: ignore[attr-defined]  # on HTTP1Connection
        finally:
            if (aclose := getattr(chunks, "aclose", None)) is not None:
                await aclose()

    get = head = post = put = patch = delete = options = trace = serve


async def _body(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def application(handler: Handler, native: tornado.web.Application | None) -> tornado.web.Application:
    in_flight = InFlight()
    target = {"handler": handler, "in_flight": in_flight}
    if native is None:
        app = tornado.web.Application([(r".*", Endpoint, target)])
    else:
        app = native
        prefix = handler.settings.route.rstrip("/")
        owned = [re.escape(prefix) + "(?:/.*)?", *(re.escape(path) + "/?" for path in handler.root_paths)]
        pattern = f"(?:{'|'.join(owned)})" if prefix else r".*"
        app.add_handlers(r".*", [(pattern, Endpoint, target)])
    app.settings[IN_FLIGHT] = in_flight
    return app


def run(app: tornado.web.Application, handler: Handler, host: str, port: int) -> None:
    asyncio.run(_serve(app, handler, host, port))


async def _serve(app: tornado.web.Application, handler: Handler, host: str, port: int) -> None:
    """Hooks start before listening; SIGTERM/SIGINT stop accepting, let accepted requests finish, then stop hooks."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await handler.astart()
    try:
        server = app.listen(port, host)
        await stopping.wait()
        server.stop()
        await app.settings[IN_FLIGHT].drained(DRAIN_S)
        await server.close_all_connections()
    finally:
        await handler.astop()
