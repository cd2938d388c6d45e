"""utilserve mounted into an existing Sanic app under Sanic's own multi-worker server."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import httpx
import pytest

from ..support.cells import cell_named
from ..support.mounting import (
    assert_native_answers_elsewhere,
    assert_unlisted_method_is_utilserve_405,
    assert_utilserve_answers_its_paths,
)
from ..support.servers import Server, serve


@pytest.fixture(scope="module")
def start_server() -> Callable[[], Server]:
    return partial(serve, cell_named("sanic@sanic"), "tests.apps.mount_sanic:app")


def test_native_routes_listener_and_middleware_still_work(client: httpx.Client) -> None:
    response = client.get("/native")
    assert response.json() == {"from": "sanic", "listener": "ran"}
    assert response.headers["x-native"] == "yes"
    echoed = client.post("/native/echo", json={"a": 1})
    assert echoed.json() == {"echo": {"a": 1}} and echoed.headers["x-native"] == "yes"


def test_utilserve_endpoints_answer_through_native_middleware(client: httpx.Client) -> None:
    response = client.get("/api/hello", params={"name": "sanic"})
    assert response.json() == {"message": "hello sanic"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-native"] == "yes"
    assert client.post("/api/total", json=[1, 2, 3]).json() == {"total": 6}


def test_each_side_answers_its_own_paths(client: httpx.Client) -> None:
    assert_utilserve_answers_its_paths(client)
    assert client.get("/livez/").json() == {"status": "ok"}
    assert_native_answers_elsewhere(client, "/elsewhere", "/apix", "/livez/x")


def test_unlisted_method_is_utilserve_405(client: httpx.Client) -> None:
    assert_unlisted_method_is_utilserve_405(client)


def test_an_unlisted_method_on_a_native_route_keeps_sanics_405(client: httpx.Client) -> None:
    wrong = client.request("QUERY", "/native")
    assert wrong.status_code == 405 and b'"error":{"status"' not in wrong.content, wrong.content


def test_body_over_the_limit_is_utilserve_413(client: httpx.Client) -> None:
    large = client.post("/api/total", json=[1] * 1000)
    assert large.content == b'{"error":{"status":413,"message":"request body exceeds the limit of 1024 bytes"}}'
