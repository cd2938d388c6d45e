"""utilserve inside an existing Django project: the project's view and middleware keep working beside it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import httpx
import pytest

from ..support.cells import GUNICORN, UVICORN
from ..support.mounting import (
    assert_native_answers_elsewhere,
    assert_unlisted_method_is_utilserve_405,
    assert_utilserve_answers_its_paths,
)
from ..support.servers import Cell, Server, serve

APP = "tests.apps.mount_django:app"
SETUPS = [
    Cell("backend-wsgi@gunicorn", "django", GUNICORN, (("UTILSERVE_ASYNCHRONOUS", "0"), ("MOUNT_DJANGO", "backend"))),
    Cell("backend-asgi@uvicorn", "django", UVICORN, (("UTILSERVE_ASYNCHRONOUS", "1"), ("MOUNT_DJANGO", "backend"))),
    Cell("include-wsgi@gunicorn", "django", GUNICORN, (("UTILSERVE_ASYNCHRONOUS", "0"), ("MOUNT_DJANGO", "include"))),
]


@pytest.fixture(scope="module", params=SETUPS, ids=[cell.name for cell in SETUPS])
def start_server(request: pytest.FixtureRequest) -> Callable[[], Server]:
    return partial(serve, request.param, APP)


def test_project_view_answers_through_its_middleware(client: httpx.Client) -> None:
    response = client.get("/home")
    assert response.status_code == 200
    assert response.json() == {"project": True}
    assert response.headers["x-project"] == "stamped"


def test_utilserve_endpoint_answers_through_the_project_middleware(client: httpx.Client) -> None:
    response = client.get("/api/hello", params={"name": "django"})
    assert response.status_code == 200
    assert response.json() == {"message": "hello django"}
    assert response.headers["x-project"] == "stamped"


def test_utilserve_post_is_not_stopped_by_the_project_csrf_middleware(client: httpx.Client) -> None:
    response = client.post("/api/echo", json={"value": 3})
    assert response.status_code == 200, response.text
    assert response.json() == {"value": 3}


def test_each_side_answers_its_own_paths(client: httpx.Client) -> None:
    assert_utilserve_answers_its_paths(client)
    assert_unlisted_method_is_utilserve_405(client)
    assert client.get("/api/nope").headers["x-project"] == "stamped"
    assert_native_answers_elsewhere(client, "/nope", "/apix")
