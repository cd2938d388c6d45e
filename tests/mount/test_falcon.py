"""utilserve inside a native Falcon app, WSGI under gunicorn and ASGI under uvicorn."""

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

# cell -> (app, what the native resource answers, what the native middleware stamps)
CELL_APPS = {
    "falcon-wsgi@gunicorn": ("tests.apps.mount_falcon_wsgi:app", {"native": True}, "wsgi"),
    "falcon-asgi@uvicorn": ("tests.apps.mount_falcon_asgi:app", {"native": True, "native_started": True}, "asgi"),
}


@pytest.fixture(scope="module", params=list(CELL_APPS))
def cell_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def start_server(cell_name: str) -> Callable[[], Server]:
    return partial(serve, cell_named(cell_name), CELL_APPS[cell_name][0])


def test_native_resource_middleware_and_lifespan_still_run(client: httpx.Client, cell_name: str) -> None:
    _, body, stamp = CELL_APPS[cell_name]
    response = client.get("/native")
    assert response.status_code == 200
    assert response.json() == body
    assert response.headers["x-native-middleware"] == stamp


def test_utilserve_endpoint_answers_through_native_middleware(client: httpx.Client) -> None:
    response = client.get("/api/hello", params={"name": "falcon"})
    assert response.status_code == 200
    assert response.json() == {"message": "hello falcon"}
    assert response.headers["content-type"] == "application/json"
    assert "x-native-middleware" in response.headers


def test_each_side_answers_its_own_paths(client: httpx.Client) -> None:
    assert_utilserve_answers_its_paths(client)
    assert_unlisted_method_is_utilserve_405(client)
    assert_native_answers_elsewhere(client, "/other", "/apix", "/livez/x")
