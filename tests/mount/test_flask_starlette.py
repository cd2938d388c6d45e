"""utilserve mounted into existing Flask and Starlette apps: both sides keep working."""

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

# cell -> (app, what the native route answers)
CELL_APPS = {
    "flask@gunicorn": ("tests.apps.mount_flask:app", {"from": "flask", "hook": "ran"}),
    "starlette@uvicorn": ("tests.apps.mount_starlette:app", {"from": "starlette", "lifespan": "ran"}),
}


@pytest.fixture(scope="module", params=list(CELL_APPS))
def cell_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def start_server(cell_name: str) -> Callable[[], Server]:
    return partial(serve, cell_named(cell_name), CELL_APPS[cell_name][0])


def test_native_and_utilserve_routes_both_answer(client: httpx.Client, cell_name: str) -> None:
    native = client.get("/native")
    assert native.json() == CELL_APPS[cell_name][1] and native.headers["x-native"] == "yes"
    ours = client.get("/api/hello?name=m")
    assert ours.json() == {"message": "hello m"} and ours.headers["x-native"] == "yes"
    assert_utilserve_answers_its_paths(client)
    assert_unlisted_method_is_utilserve_405(client)
    assert_native_answers_elsewhere(client, "/elsewhere", "/apix")
