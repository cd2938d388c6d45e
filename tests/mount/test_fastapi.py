"""utilserve inside a native FastAPI app under uvicorn: both sides answer, native hooks still run."""

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

STARTED = ["native-startup", "utilserve-startup"]


@pytest.fixture(scope="module")
def start_server() -> Callable[[], Server]:
    return partial(serve, cell_named("fastapi@uvicorn"), "tests.apps.mount_fastapi:app")


def test_native_route_middleware_and_lifespan_still_run(client: httpx.Client) -> None:
    response = client.get("/native/7")
    assert response.status_code == 200
    assert response.json() == {"native": 7, "events": STARTED}
    assert response.headers["x-native-middleware"] == "fastapi"


def test_native_validation_and_docs_stay_fastapi_s(client: httpx.Client) -> None:
    assert client.get("/native/x").status_code == 422
    assert "detail" in client.get("/native/x").json()
    assert client.get("/openapi.json").json()["paths"].keys() == {"/native/{item_id}"}


def test_utilserve_endpoint_answers_through_native_middleware(client: httpx.Client) -> None:
    response = client.get("/api/hello", params={"name": "fastapi"})
    assert response.status_code == 200
    assert response.json() == {"message": "hello fastapi"}
    assert response.headers["x-native-middleware"] == "fastapi"


def test_each_side_answers_its_own_paths(client: httpx.Client) -> None:
    assert_utilserve_answers_its_paths(client)
    assert_unlisted_method_is_utilserve_405(client)
    assert_native_answers_elsewhere(client, "/other", "/apix")
    assert client.get("/other").json() == {"detail": "Not Found"}
