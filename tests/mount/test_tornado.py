"""utilserve mounted into an existing Tornado app, served by `utilserve run` on Tornado's own server."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import pytest

from ..support.mounting import (
    assert_native_answers_elsewhere,
    assert_unlisted_method_is_utilserve_405,
    assert_utilserve_answers_its_paths,
)
from ..support.servers import Server, free_port

ITEMS = [1] * 1000


def start(log: Path) -> Server:
    """`utilserve run` finds the backend from the native app itself: no UTILSERVE_BACKEND."""
    port = free_port()
    argv = [sys.executable, "-m", "utilserve", "run", "tests.apps.mount_tornado:service", "--port", str(port)]
    return Server(argv, port, {"MOUNT_TORNADO_LOG": str(log)}).start()


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Server]:
    return partial(start, tmp_path_factory.mktemp("mount_tornado") / "hooks.log")


def test_native_handler_prepare_and_transform_still_run(client: httpx.Client) -> None:
    response = client.get("/native")
    assert response.json() == {"from": "tornado"}
    assert response.headers["x-native-prepare"] == "yes" and response.headers["x-native"] == "yes"
    echoed = client.post("/native", json={"a": 1})
    assert echoed.json() == {"echo": {"a": 1}} and echoed.headers["x-native"] == "yes"


def test_utilserve_endpoints_answer_through_native_transform(client: httpx.Client) -> None:
    response = client.get("/api/hello", params={"name": "tornado"})
    assert response.json() == {"message": "hello tornado"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-native"] == "yes"
    assert "x-native-prepare" not in response.headers
    assert client.post("/api/total", json={"values": [1, 2, 3]}).json() == {"total": 6}


def test_each_side_answers_its_own_paths(client: httpx.Client) -> None:
    assert_utilserve_answers_its_paths(client)
    assert_unlisted_method_is_utilserve_405(client)
    assert client.get("/livez/").json() == {"status": "ok"}
    assert_native_answers_elsewhere(client, "/elsewhere", "/apix", "/livez/x")


def test_body_over_the_limit_is_utilserve_413(client: httpx.Client) -> None:
    large = client.post("/api/total", json={"values": ITEMS})
    assert large.content == b'{"error":{"status":413,"message":"request body exceeds the limit of 1024 bytes"}}'


def test_sigterm_runs_shutdown_hooks_and_exits_cleanly(tmp_path: Path, running: Callable[[Server], Server]) -> None:
    log = tmp_path / "hooks.log"
    server = running(start(log))
    assert httpx.get(server.url + "/api/hello").status_code == 200
    assert server.process is not None
    pid = server.process.pid
    assert server.stop() == 0, server.output()
    assert log.read_text() == f"shutdown {pid}\n"
