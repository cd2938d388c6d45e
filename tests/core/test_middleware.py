"""Middleware, in process, on both the sync and the async request path."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import BaseModel

from utilserve import API, HTTPError, Model, Request, Response, Service, api
from utilserve.middleware import Middleware
from utilserve.telemetry import context

CallNext = Callable[[Request], Response]
AsyncCallNext = Callable[[Request], Awaitable[Response]]


class Root(API):
    @api.get("/items/{item_id}")
    def item(self, item_id: int) -> dict:
        origin = context.current()
        return {"id": item_id, "request_id": origin.request_id if origin else None}

    @api.get
    async def origin(self) -> dict:
        origin = context.current()
        return {"request_id": origin.request_id if origin else None}


def service() -> Service:
    return Service(name="middleware-test", api=Root, route="/api", production=True)


def serve(svc: Service, path: str, asynchronous: bool, headers: dict[str, str] | None = None) -> Response:
    request = Request("GET", path, "", headers or {})
    if asynchronous:
        return asyncio.run(svc.setup().ahandle(request))
    return svc.setup().handle(request)


PATHS = pytest.mark.parametrize("asynchronous", [False, True], ids=["sync-server", "async-server"])


@PATHS
def test_layers_run_in_declaration_order_sync_and_async_mixed_and_see_the_route_template(asynchronous: bool) -> None:
    svc, seen = service(), []

    @svc.middleware
    def outer(request: Request, call_next: CallNext) -> Response:
        seen.append(("outer", request.route, threading.current_thread() is threading.main_thread()))
        response = call_next(request)
        seen.append(("outer after", response.status, None))
        return response

    @svc.middleware
    async def inner(request: Request, call_next: AsyncCallNext) -> Response:
        seen.append(("inner", request.route, None))
        response = await call_next(request)
        response.headers.append(("x-inner", "1"))
        return response

    response = serve(svc, "/api/items/7", asynchronous)

    assert response.status == 200 and response.header("x-inner") == "1"
    assert [step[:2] for step in seen] == [
        ("outer", "/api/items/{item_id}"),
        ("inner", "/api/items/{item_id}"),
        ("outer after", 200),
    ]
    assert seen[0][2] is not asynchronous, "a sync middleware never runs on the event loop's thread"


@PATHS
def test_a_middleware_answers_without_calling_next_and_an_unmatched_path_has_no_route(asynchronous: bool) -> None:
    svc, routes = service(), []

    @svc.middleware
    async def deny(request: Request, call_next: AsyncCallNext) -> Response:
        routes.append(request.route)
        if request.headers.get("authorization") != "yes":
            return Response({"denied": True}, status=401)
        return await call_next(request)

    assert serve(svc, "/api/items/1", asynchronous).status == 401
    assert serve(svc, "/api/items/1", asynchronous, {"authorization": "yes"}).status == 200
    assert serve(svc, "/nowhere", asynchronous, {"authorization": "yes"}).status == 404
    assert routes == ["/api/items/{item_id}", "/api/items/{item_id}", None]


@PATHS
def test_a_failing_middleware_answers_the_error_contract_with_the_request_id(asynchronous: bool) -> None:
    svc = service()

    @svc.middleware
    def teapot(request: Request, call_next: CallNext) -> Response:
        if request.path.endswith("/1"):
            raise HTTPError(418, "no coffee here")
        raise RuntimeError("middleware bug")

    refused = serve(svc, "/api/items/1", asynchronous, {"x-request-id": "abc-1"})
    failed = serve(svc, "/api/items/2", asynchronous, {"x-request-id": "abc-2"})

    assert (refused.status, refused.body) == (418, b'{"error":{"status":418,"message":"no coffee here"}}')
    assert (failed.status, failed.body) == (500, b'{"error":{"status":500,"message":"Internal Server Error"}}')
    assert (refused.header("x-request-id"), failed.header("x-request-id")) == ("abc-1", "abc-2")


@PATHS
def test_the_request_id_is_the_origin_of_the_work_the_endpoint_does(asynchronous: bool) -> None:
    for path in ("/api/items/3", "/api/origin"):
        response = serve(svc := service(), path, asynchronous, {"x-request-id": "trace-me"})
        assert b'"request_id":"trace-me"' in response.body, (svc, path, response.body)


@pytest.mark.parametrize(
    ("offered", "echoed"),
    [
        ("abc-123_XYZ.~", True),
        ("x" * 128, True),
        ("x" * 4096, False),
        ("x" * 129, False),
        ("has space", False),
        ("bell\x07", False),
        ("new\nline", False),
        ("", False),
        ("caf\u00e9", False),
    ],
    ids=["safe", "128-chars", "4-KB", "129-chars", "space", "control", "newline", "empty", "non-ascii"],
)
def test_a_request_id_is_echoed_when_safe_and_generated_otherwise(offered: str, echoed: bool) -> None:
    response = serve(service(), "/api/items/1", False, {"x-request-id": offered})
    request_id = response.header("x-request-id")
    assert request_id is not None
    if echoed:
        assert request_id == offered
    else:
        assert request_id != offered and len(request_id) == 32 and request_id.isalnum()


def test_a_request_without_an_id_gets_a_new_one_each_time() -> None:
    svc = service()
    ids = {serve(svc, "/api/items/1", False).header("x-request-id") for _ in range(3)}
    assert len(ids) == 3


def test_middleware_must_take_request_and_call_next_and_come_before_the_app_is_built() -> None:
    svc = service()
    with pytest.raises(TypeError, match=r"two parameters \(request, call_next\)"):
        svc.middleware(lambda request: request)  # type: ignore[arg-type, return-value]
    svc.setup()
    with pytest.raises(RuntimeError, match="declare middleware before the app is built"):

        @svc.middleware
        def late(request: Request, call_next: CallNext) -> Response:
            return call_next(request)


class Streams(API):
    @api.get
    def hello(self) -> dict:
        return {"hello": "world"}

    @api.get
    def lines(self) -> Iterator[str]:
        for step in ("first", "second"):
            origin = context.current()
            yield f"{step}:{origin.request_id if origin else None}\n"

    @api.get
    async def alines(self) -> AsyncIterator[str]:
        for step in ("first", "second"):
            origin = context.current()
            yield f"{step}:{origin.request_id if origin else None}\n"

    @api.get("/items/{item_id}")
    def item(self, item_id: int) -> dict:
        return {"id": item_id}


def body(response: Response) -> bytes:
    if response.chunks is None:
        return response.body
    if isinstance(response.chunks, AsyncIterator):
        chunks = response.chunks

        async def collect() -> list[bytes]:
            return [chunk async for chunk in chunks]

        return b"".join(asyncio.run(collect()))
    return b"".join(response.chunks)


def test_sync_middleware_on_an_async_server_never_waits_for_a_thread_of_its_own_pool() -> None:
    """Each request holds one of the two threads in the middleware, and its sync endpoint needs no other."""
    svc = Service(name="pool-bound", api=Streams, route="/api", sync_threads=2)

    @svc.middleware
    def slow(request: Request, call_next: CallNext) -> Response:
        time.sleep(0.1)
        return call_next(request)

    async def four_at_once() -> list[int]:
        handler = svc.setup()
        answers = (handler.ahandle(Request("GET", "/api/hello", "", {})) for _ in range(4))
        return [response.status for response in await asyncio.wait_for(asyncio.gather(*answers), 10)]

    assert asyncio.run(four_at_once()) == [200] * 4


@PATHS
@pytest.mark.parametrize("path", ["/api/lines", "/api/alines"])
def test_stream_steps_keep_the_request_id_behind_middleware_of_the_other_kind(asynchronous: bool, path: str) -> None:
    svc = Service(name="streams", api=Streams, route="/api")

    @svc.middleware
    async def on_the_loop(request: Request, call_next: AsyncCallNext) -> Response:
        return await call_next(request)

    @svc.middleware
    def on_a_thread(request: Request, call_next: CallNext) -> Response:
        return call_next(request)

    request = Request("GET", path, "", {"x-request-id": "streamed"})
    if asynchronous:  # as an ASGI server does, the body is sent from the task that got the response

        async def answer_and_send() -> tuple[Response, bytes]:
            response = await svc.setup().ahandle(request)
            assert isinstance(response.chunks, AsyncIterator), "the body is one this kind of server can send"
            return response, b"".join([chunk async for chunk in response.chunks])

        response, sent = asyncio.run(answer_and_send())
    else:
        response = svc.setup().handle(request)
        assert isinstance(response.chunks, Iterator), "the body is one this kind of server can send"
        sent = b"".join(response.chunks)
    assert sent == b"first:streamed\nsecond:streamed\n"


@PATHS
def test_a_request_passed_on_changed_is_matched_again(asynchronous: bool) -> None:
    svc = Service(name="rewrite", api=Streams, route="/api")

    @svc.middleware
    def rewrite(request: Request, call_next: CallNext) -> Response:
        if request.path == "/api/old":
            return call_next(Request("GET", "/api/hello", "", {}))
        request.path = request.path.replace("/1", "/2")
        return call_next(request)

    assert body(serve(svc, "/api/old", asynchronous)) == b'{"hello":"world"}'
    assert body(serve(svc, "/api/items/1", asynchronous)) == b'{"id":2}'


def test_an_object_with_an_async_call_is_an_async_middleware() -> None:
    class Gate:
        async def __call__(self, request: Request, call_next: AsyncCallNext) -> Response:
            return await call_next(request)

    layer = Middleware.of(Gate())
    assert layer.asynchronous is not None and layer.sync is None


class Number(BaseModel):
    x: int


class Sleepy(Model):
    """One item at a time, 200 ms each, room for 2 in the queue, 100 ms to answer."""

    Input = Output = Number
    max_batch_size = 1
    max_queue = 2
    timeout_s = 0.1

    def predict(self, batch: list[Number]) -> list[Number]:
        time.sleep(0.2)
        return batch


def test_the_pools_503_and_504_carry_each_requests_own_id() -> None:
    svc = Service(name="overloaded", route="/api")
    svc.model(Sleepy, route="/sleepy")
    handler = svc.setup()
    svc.startup()
    try:

        def post(n: int) -> Response:
            headers = {"content-type": "application/json", "x-request-id": f"req-{n}"}
            return handler.handle(Request("POST", "/api/sleepy", "", headers, b'{"x": 1}'))

        with ThreadPoolExecutor(8) as clients:
            answers = list(clients.map(post, range(8)))
    finally:
        svc.shutdown()
    statuses = {response.status for response in answers}
    assert {503, 504} <= statuses, statuses
    for n, response in enumerate(answers):
        assert response.header("x-request-id") == f"req-{n}", (response.status, response.headers)
        if response.status == 503:
            assert response.header("retry-after") is not None
