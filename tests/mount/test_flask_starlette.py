"""utilserve mounted into existing Flask and Starlette apps: both sides keep working."""

from __future__ import annotations

import httpx
import pytest

from ..support.cells import GUNICORN, UVICORN
from ..support.mounting import (
    assert_native_answers_elsewhere,
    assert_utilserve_answers_its_paths,
)
from ..support.servers import Cell, serve

MOUNTS = [
    (Cell("flask@gunicorn", "flask", GUNICORN), "tests.apps.mount_flask:app", {"from": "flask", "hook": "ran"}),
    (Cell("starlette@uvicorn", "starlette", UVICORN), "tests.apps.mount_starlette:app",
     {"from": "starlette", "lifespan": "ran"}),
]


@pytest.mark.parametrize(("cell", "app", "native_body"), MOUNTS, ids=[m[0].name for m in MOUNTS])
def test_native_and_utilserve_routes_both_answer(cell: Cell, app: str, native_body: dict) -> None:
    server = serve(cell, app)
    try:
        with httpx.Client(base_url=server.url) as client:
            native = client.get("/native")
            assert native.json() == native_body and native.headers["x-native"] == "yes"
            ours = client.get("/api/hello?name=m")
            assert ours.json() == {"message": "hello m"} and ours.headers["x-native"] == "yes"
            assert_utilserve_answers_its_paths(client)
            assert_native_answers_elsewhere(client, "/elsewhere", "/apix")
    finally:
        server.stop()
