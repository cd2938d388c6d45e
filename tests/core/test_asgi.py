"""A client that goes away, seen by the ASGI apps in process: what the app sends and whether it raises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import falcon.asgi
import pytest
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request as NativeRequest
from starlette.responses import Response as NativeResponse

from tests.support.asgi import Message, asgi_scope
from utilserve import API, Service, api


class RootAPI(API):
    @api.get
    async def slow(self) -> dict:
        await asyncio.sleep(30)
        return {"done": True}

    @api.get
    async def ticks(self) -> AsyncIterator[str]:
        while True:
            yield "tick\n"
            await asyncio.sleep(0.01)


async def leave_once_started(app: Callable[..., Awaitable[None]], path: str) -> list[Message]:
    """GET ``path``; the client goes away after the first thing the app sends, or at once for a slow answer."""
    sent: list[Message] = []
    gone = asyncio.Event()
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if path.endswith("slow"):
            await asyncio.sleep(0.05)  # the app is waiting for its answer by now
        else:
            await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            gone.set()

    await asyncio.wait_for(app(asgi_scope("GET", path), receive, send), 10)
    return sent


def test_a_request_whose_client_left_still_answers_the_middleware_around_the_app() -> None:
    """Starlette's BaseHTTPMiddleware fails with "No response returned." when the app it wraps sends nothing."""
    service = Service(__name__, name="gone", backend="fastapi", api=RootAPI, route="/api")
    app = service.application()

    async def passing(request: NativeRequest, call_next: Callable[..., Awaitable[NativeResponse]]) -> NativeResponse:
        return await call_next(request)

    app.add_middleware(BaseHTTPMiddleware, dispatch=passing)
    sent = asyncio.run(leave_once_started(app, "/api/slow"))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499


@pytest.mark.parametrize("backend", ["starlette", "falcon"])
def test_a_stream_whose_client_left_ends_without_an_error_in_the_app(backend: str) -> None:
    service = Service(__name__, name="gone-stream", backend=backend, api=RootAPI, route="/api", asynchronous=True)
    app = service.application()
    assert backend != "falcon" or isinstance(app, falcon.asgi.App)
    sent = asyncio.run(leave_once_started(app, "/api/ticks"))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"tick\n"


def test_a_request_refused_before_its_body_never_asks_a_waiting_client_for_it() -> None:
    """Servers answer ``Expect: 100-continue`` at the app's first ``receive()``: a 404 must come without one."""
    app = Service(__name__, name="continue", backend="starlette", api=RootAPI, route="/api").application()
    sent: list[Message] = []
    received: list[Message] = []

    async def receive() -> Message:
        received.append({"type": "http.request", "body": b"{}", "more_body": False})
        return received[-1]

    async def send(message: Message) -> None:
        sent.append(message)

    scope = asgi_scope("POST", "/api/nowhere", (b"expect", b"100-continue"), (b"content-length", b"2"))
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    assert sent[0]["status"] == 404 and received == []


class Stamp:
    """A pure ASGI middleware that adds a header to every response."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable[..., Awaitable[Message]], send: Callable) -> None:
        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-stamp", b"1")]}
            await send(message)

        await self.app(scope, receive, stamped)


@pytest.mark.parametrize("backend", ["starlette", "fastapi"])
@pytest.mark.parametrize("stamped", [True, False])
def test_a_standalone_app_runs_the_middleware_added_to_it_on_utilserves_requests(backend: str, stamped: bool) -> None:
    """Without middleware, requests skip Starlette's router and error layers; added middleware sees them all."""
    app = Service(__name__, name="stamped", backend=backend, api=RootAPI, route="/api").application()
    if stamped:
        app.add_middleware(Stamp)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    for path in ("/api/nowhere", "/elsewhere"):
        sent.clear()
        asyncio.run(asyncio.wait_for(app(asgi_scope("GET", path), receive, send), 10))
        assert sent[0]["status"] == 404
        assert ((b"x-stamp", b"1") in sent[0]["headers"]) is stamped
