"""utilserve mounted into an existing Tornado app, served by `utilserve run` on Tornado's own server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .servers import Server, free_port

ITEMS = [1] * 1000


def start(log: Path) -> Server:
    """`utilserve run` finds the backend from the native app itself: no UTILSERVE_BACKEND."""
    port = free_port()
    argv = [sys.executable, "-m", "utilserve", "run", "tests.apps.mount_tornado:service", "--port", str(port)]
    return Server(argv, port, {"MOUNT_TORNADO_LOG": str(log)}).start()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = start(tmp_path_factory.mktemp("mount_tornado") / "hooks.log")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield client
    finally:
        server.stop()


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


def test_utilserve_errors_under_route(client: httpx.Client) -> None:
    assert client.get("/api/nope").content == b'{"error":{"status":404,"message":"no route for /api/nope"}}'
    wrong = client.delete("/api/hello")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
    large = client.post("/api/total", json={"values": ITEMS})
    assert large.content == b'{"error":{"status":413,"message":"request body exceeds the limit of 1024 bytes"}}'


def test_health_paths_answer(client: httpx.Client) -> None:
    assert client.get("/livez").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.get("/livez/").json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/elsewhere", "/apix", "/livez/x"])
def test_paths_outside_utilserve_stay_tornado_s(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert b'"error":{"status"' not in response.content


def test_sigterm_runs_shutdown_hooks_and_exits_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    server = start(log)
    assert httpx.get(server.url + "/api/hello").status_code == 200
    assert server.process is not None
    pid = server.process.pid
    assert server.stop() == 0, server.output()
    assert log.read_text() == f"shutdown {pid}\n"
