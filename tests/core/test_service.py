"""The core, in process: what adapters rely on, without a server."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import flask
import pytest
import starlette
import starlette.applications
from pydantic import BaseModel

import utilserve
from utilserve import API, Env, EventStream, HTTPError, Request, Response, Service, api, concurrency
from utilserve.backends import asgi_path, path_text, resolve_backend, wsgi_path
from utilserve.http import render

from ..support.models.thread import Doubled, Doubling


class Root(API):
    @api.get
    def boom(self) -> dict:
        raise ValueError("secret detail")

    @api.get
    async def from_async(self) -> dict:
        await asyncio.sleep(0)
        return {"thread": threading.current_thread().name}

    @api.get
    def from_sync(self) -> dict:
        return {"thread": threading.current_thread().name}

    @api.get("/items/new")
    def new_item(self) -> str:
        return "static wins"

    @api.get("/items/{item_id}")
    def item(self, item_id: int) -> dict:
        return {"id": item_id}

    @api.post
    def raw(self, request: Request) -> bytes:
        return request.body


def service(**options: object) -> Service:
    return Service(name="core-test", api=Root, route="/api", **options)  # type: ignore[arg-type]  # options vary


def call(svc: Service, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Response:
    return svc.setup().handle(Request(method, path, "", headers or {}, io.BytesIO(body).read))


def test_production_500_hides_the_traceback() -> None:
    response = call(service(production=True), "GET", "/api/boom")
    assert response.status == 500
    assert response.body == b'{"error":{"status":500,"message":"Internal Server Error"}}'


def test_development_500_shows_the_traceback() -> None:
    response = call(service(), "GET", "/api/boom")
    error = __import__("json").loads(response.body)["error"]
    assert error["detail"]["exception"] == "ValueError: secret detail"
    assert any("raise ValueError" in line for line in error["detail"]["traceback"])


def test_async_endpoint_runs_on_a_sync_server() -> None:
    response = call(service(), "GET", "/api/from_async")
    assert response.status == 200 and b"thread" in response.body


def test_sync_endpoint_runs_off_the_event_loop() -> None:
    handler = service().setup()
    response = asyncio.run(handler.ahandle(Request("GET", "/api/from_sync")))
    assert b'"utilserve' in response.body, response.body


def test_a_model_route_with_a_path_parameter_is_refused_when_the_app_is_built() -> None:
    """A model's route takes its input from the body only: a ``{name}`` in it could never be bound."""
    svc = Service(name="core-model-path", route="/api")
    svc.model(Doubling, route="/double/{x}", pool="thread")
    with pytest.raises(TypeError, match=r"path parameter\(s\) \['x'\] have no function argument"):
        svc.setup()


def test_model_route_blocks_on_a_sync_server_and_awaits_on_an_async_one() -> None:
    """A sync server thread waits on the pool directly: no per-thread event loop is made for it."""
    svc = Service(name="core-model-route", route="/api")
    svc.model(Doubling, route="/double", pool="thread")
    handler = svc.setup()
    svc.startup()
    try:
        outcome: dict[str, object] = {}

        def sync_call() -> None:
            response = call(svc, "POST", "/api/double", b'{"x": 21}', {"content-type": "application/json"})
            outcome["sync"] = (response.status, response.body, getattr(concurrency._local, "loop", None))

        thread = threading.Thread(target=sync_call)
        thread.start()
        thread.join()
        asynchronous = asyncio.run(
            handler.ahandle(Request("POST", "/api/double", "", {"content-type": "application/json"}, b'{"x": 4}'))
        )
    finally:
        svc.shutdown()
    assert outcome["sync"] == (200, b'{"y":42}', None)
    assert (asynchronous.status, asynchronous.body) == (200, b'{"y":8}')


def test_static_segment_beats_path_parameter() -> None:
    svc = service()
    assert call(svc, "GET", "/api/items/new").body == b"static wins"
    assert call(svc, "GET", "/api/items/3").body == b'{"id":3}'


def test_options_without_endpoint_is_405_with_allow() -> None:
    response = call(service(), "OPTIONS", "/api/items/3")
    assert response.status == 405 and response.header("Allow") == "GET, HEAD"


def test_declared_length_over_limit_is_413_before_reading() -> None:
    svc = service(max_body_size=10)

    def read(_: int) -> bytes:
        raise AssertionError("the body must not be read")

    response = svc.setup().handle(Request("POST", "/api/raw", "", {"content-length": "11"}, read))
    assert response.status == 413


def test_streamed_body_over_limit_is_413() -> None:
    async def chunks():
        for _ in range(5):
            yield b"x" * 4

    handler = service(max_body_size=10).setup()
    response = asyncio.run(handler.ahandle(Request("POST", "/api/raw", "", {}, chunks())))
    assert response.status == 413
    assert response.body == b'{"error":{"status":413,"message":"request body exceeds the limit of 10 bytes"}}'


def test_a_body_shorter_than_its_content_length_is_a_400() -> None:
    """Some WSGI inputs just end where the client stopped: a cut body must not pass for a whole one."""
    response = call(service(), "POST", "/api/raw", b"abc", {"content-length": "10"})
    assert response.status == 400
    assert response.body == b'{"error":{"status":400,"message":"the request body could not be read (EOFError)"}}'


def test_a_path_whose_bytes_are_not_utf8_is_a_400_on_both_entry_points() -> None:
    handler = service().setup()
    path = path_text(b"/api/items/\xff")
    expected = b'{"error":{"status":400,"message":"the request path is not valid UTF-8"}}'
    for response in handler.handle(Request("GET", path)), asyncio.run(handler.ahandle(Request("GET", path))):
        assert (response.status, response.body) == (400, expected)


def test_servers_paths_keep_bytes_that_are_not_utf8_and_nothing_else() -> None:
    """ASGI servers and WSGI frameworks turn such bytes into U+FFFD or %FF; the bytes as sent tell them apart."""
    assert asgi_path("/a/\ufffd", {"raw_path": b"/a/%FF"}) == path_text(b"/a/\xff")
    assert asgi_path("/a/\ufffd", {"raw_path": b"/a/%EF%BF%BD"}) == "/a/\ufffd"  # a U+FFFD the client sent
    assert asgi_path("/a/\ufffd", {}) == "/a/\ufffd"  # no raw_path: the server's word stands
    assert wsgi_path("/a/%FF", "/a/\xff") == path_text(b"/a/\xff")
    assert wsgi_path("/a/\xe9", "/a/\xc3\xa9") == "/a/\xe9"


def test_backend_resolves_from_name_module_and_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_backend("Flask") == "flask"
    assert resolve_backend(flask) == "flask"
    assert resolve_backend(flask.Flask("x")) == "flask"
    assert resolve_backend(starlette.applications.Starlette()) == "starlette"
    with pytest.raises(ValueError, match="unknown backend 'bottle': expected one of django, flask"):
        resolve_backend("bottle")
    monkeypatch.setenv("UTILSERVE_BACKEND", "flask")
    assert service(backend="starlette").backend_name == "flask"


def test_api_as_import_string() -> None:
    svc = Service(name="s", api="examples.hello:RootAPI", route="/api")
    assert call(svc, "GET", "/api/hello").body == b'{"message":"hello world"}'
    with pytest.raises(ValueError, match="'module:Attribute'"):
        Service(name="s", api="examples.hello").setup()


def test_tree_errors_surface_at_setup() -> None:
    class Twice(API):
        @api.get("/x")
        def a(self) -> None: ...

        @api.get("/x")
        def b(self) -> None: ...

    with pytest.raises(ValueError, match="duplicate route: GET /x"):
        Service(name="s", api=Twice).setup()

    class Unbound(API):
        @api.get("/{item_id}")
        def a(self) -> None: ...

    with pytest.raises(TypeError, match=r"path parameter\(s\) \['item_id'\] have no function argument"):
        Service(name="s", api=Unbound).setup()

    class Cycle(API):
        pass

    Cycle.__annotations__["again"] = Cycle
    with pytest.raises(TypeError, match="a cycle in the API tree"):
        Service(name="s", api=Cycle).setup()

    with pytest.raises(TypeError, match="must be an API subclass"):
        Service(name="s", api=dict).setup()  # type: ignore[arg-type]  # the wrong type on purpose


def test_argument_errors_are_specific() -> None:
    with pytest.raises(TypeError, match="Service name must be a non-empty str, got ''"):
        Service(name="")
    with pytest.raises(ValueError, match="max_body_size must be a positive int"):
        Service(name="x", max_body_size=0)
    with pytest.raises(ValueError, match="status must be an int from 400 to 599, got 200"):
        HTTPError(200)
    with pytest.raises(TypeError, match="takes a str path template, got int"):
        api.get(5)  # type: ignore[call-overload]  # the wrong type on purpose


def test_current_service_and_configs() -> None:
    class AppEnv(Env):
        PORT: int = 1

    svc = service()
    env = svc.use(AppEnv(PORT=2))
    assert utilserve.service.name == "core-test"
    assert utilserve.service.configs[AppEnv] is env and env.PORT == 2


def test_return_value_rules() -> None:
    class Model(BaseModel):
        x: int

    assert render({"a": 1}) == (b'{"a":1}', "application/json")
    assert render([Model(x=1)]) == (b'[{"x":1}]', "application/json")
    assert render("hi") == (b"hi", "text/plain; charset=utf-8")
    assert render(b"\x00") == (b"\x00", "application/octet-stream")
    response = Response("x", status=201, headers={"X-A": "1"}, media_type="text/html")
    assert (response.status, response.header("content-type"), response.header("x-a")) == (201, "text/html", "1")


def test_hooks_run_once_and_shutdown_in_reverse() -> None:
    svc = service()
    calls: list[str] = []
    svc.on_startup(lambda: calls.append("a"))

    @svc.on_startup
    async def second() -> None:
        calls.append("b")

    svc.on_shutdown(lambda: calls.append("c"))
    svc.on_shutdown(lambda: calls.append("d"))
    svc.startup()
    svc.startup()
    assert svc.ready
    svc.shutdown()
    svc.shutdown()
    assert calls == ["a", "b", "d", "c"] and not svc.ready


@pytest.mark.parametrize("asynchronous", [False, True], ids=["wsgi", "asgi-without-lifespan"])
def test_a_startup_that_failed_is_tried_again_by_the_next_request(asynchronous: bool) -> None:
    svc = Service(name="flaky", route="/api")
    svc.model(Doubling, route="/double")
    failures = ["the database is not up yet"]

    @svc.on_startup
    def connect() -> None:
        if failures:
            raise ConnectionError(failures.pop())

    handler = svc.setup()

    def double() -> Response:
        request = Request("POST", "/api/double", "", {"content-type": "application/json"}, b'{"x": 2}')
        if asynchronous:
            return asyncio.run(handler.ahandle(request))
        handler.start_once()
        return handler.handle(request)

    if asynchronous:
        assert double().status == 500  # where the startup runs inside the request, as an error in it
    else:
        with pytest.raises(ConnectionError):  # where the adapter starts before the request, as the server's 500
            double()
    assert not svc.ready
    try:
        assert double().body == b'{"y":4}'
        assert svc.ready
    finally:
        svc.shutdown()


def test_openapi_documents_what_a_streaming_endpoint_sends() -> None:
    class Streams(API):
        @api.get
        def text(self) -> Iterator[str]:
            yield "a"

        @api.get
        async def lines(self) -> AsyncIterator[Doubled]:
            yield Doubled(y=1)

        @api.get
        def events(self) -> EventStream:
            return EventStream(["a"])

    paths = Service(name="streams", api=Streams).openapi()["paths"]
    sent = {path: paths[path]["get"]["responses"]["200"]["content"] for path in ("/text", "/lines", "/events")}
    assert sent["/text"] == {"text/plain": {"schema": {"type": "string"}}}
    assert list(sent["/lines"]) == ["application/x-ndjson"]
    assert sent["/lines"]["application/x-ndjson"]["schema"]["$ref"].endswith("/Doubled")
    assert sent["/events"] == {"text/event-stream": {"schema": {"type": "string"}}}


def test_header_alias_and_list_headers() -> None:
    class Headers(API):
        @api.get
        def h(self, accept_language: Annotated[list[str], api.Header()]) -> list[str]:
            return accept_language

    svc = Service(name="h", api=Headers)
    response = svc.setup().handle(Request("GET", "/h", "", {"accept-language": "en, fr"}))
    assert response.body == b'["en","fr"]'


def test_openapi_documents_any_2xx_for_an_endpoint_that_returns_a_response() -> None:
    """A returned Response picks its own status: documented at the declared one, a 204 or 202 was judged against
    the error shape of ``default``."""

    class Answers(API):
        @api.delete("/{item_id}")
        def delete_item(self, item_id: int) -> Response:
            return Response(status=204)

        @api.get
        def listed(self) -> list[int]:
            return [1]

    document = Service(name="doc-test", api=Answers).openapi()
    assert document["paths"]["/{item_id}"]["delete"]["responses"]["2XX"] == {"description": "success"}
    assert set(document["paths"]["/{item_id}"]["delete"]["responses"]) == {"2XX", "422", "default"}
    assert set(document["paths"]["/listed"]["get"]["responses"]) == {"200", "default"}
