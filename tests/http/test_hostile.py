"""Requests that go wrong on the client's side: answered 400 in the contract's shape, logged without a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from utilserve import Request

from ..support.cells import UVICORN, cell_named
from ..support.pool_over_http import wait_ready
from ..support.servers import BIN, Cell, Server, free_port, serve

APP = "tests.apps.conformance:app"


def raw(server: Server, request: bytes) -> bytes:
    """Send ``request`` as it is and read until the server closes or pauses."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def broken_reader(size: int) -> bytes:
    """A WSGI body whose client went away."""
    raise ConnectionResetError("the peer went away")


class BrokenStream:
    """An ASGI body whose client went away."""

    def __aiter__(self) -> BrokenStream:
        return self

    async def __anext__(self) -> bytes:
        raise ConnectionResetError("the peer went away")


@pytest.mark.parametrize("body", [broken_reader, BrokenStream()], ids=["sync-reader", "async-stream"])
def test_a_body_that_cannot_be_read_is_a_400_logged_at_info(body: Any, caplog: pytest.LogCaptureFixture) -> None:
    from tests.apps.conformance import service

    handler = service.setup()
    request = Request("POST", "/api/echo", "", {"content-type": "application/json"}, body)
    with caplog.at_level(logging.INFO, logger="utilserve"):
        response = handler.handle(request) if body is broken_reader else asyncio.run(handler.ahandle(request))
    assert response.status == 400, response.body
    assert json.loads(response.body)["error"]["message"] == "the request body could not be read (ConnectionResetError)"
    assert [record.levelname for record in caplog.records if record.name == "utilserve"] == ["INFO"]


@pytest.fixture(scope="module")
def flask_gunicorn() -> Iterator[Server]:
    server = serve(cell_named("flask@gunicorn"), APP)
    yield server
    server.stop()


def test_a_bad_chunk_size_is_a_400_on_flask_under_gunicorn(flask_gunicorn: Server) -> None:
    answer = raw(
        flask_gunicorn,
        b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    )
    status, body = status_and_body(answer)
    assert status == 400, answer
    assert body["error"]["status"] == 400, body
    assert httpx.get(flask_gunicorn.url + "/livez").status_code == 200


def test_a_body_cut_short_is_no_error_in_the_log_of_starlette_under_uvicorn() -> None:
    server = serve(cell_named("starlette@uvicorn"), APP)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            sock.sendall(b"Content-Length: 1000\r\n\r\n" + b'{"name": "cut')
        assert httpx.get(server.url + "/livez").status_code == 200
    finally:
        server.stop()
    log = server.output()
    assert "ERROR" not in log and "Traceback" not in log, log


def test_a_service_starts_at_its_first_request_where_the_server_sends_no_lifespan() -> None:
    """``uvicorn --lifespan off`` (daphne likewise) never sends startup: the first request starts the models."""
    no_lifespan = Cell("starlette@uvicorn-no-lifespan", "starlette", (*UVICORN, "--lifespan", "off"))
    server = serve(no_lifespan, "examples.batched:app")
    try:
        wait_ready(server)
        assert httpx.post(server.url + "/double", json={"x": 2}).json() == {"y": 4.0}
    finally:
        server.stop()


def test_a_long_query_string_is_answered_through_deploy_uwsgi_ini() -> None:
    """uWSGI's default request-head buffer (4 KiB) would drop it unanswered; deploy/uwsgi.ini raises it."""
    port = free_port()
    argv = [str(BIN / "uwsgi"), "--ini", "deploy/uwsgi.ini", "--http11-socket", f"127.0.0.1:{port}"]
    argv += ["--processes", "1", "--virtualenv", sys.prefix, "--module", APP]
    server = Server(argv, port, {"UTILSERVE_BACKEND": "flask", "UTILSERVE_POOL": "thread"}).start()
    try:
        name = "x" * 3600
        response = httpx.get(f"{server.url}/api/hello", params={"name": name}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json() == {"message": f"hello {name}"}
    finally:
        server.stop()


def test_a_body_the_endpoint_does_not_read_leaves_no_error_in_the_log_of_sanic() -> None:
    server = serve(cell_named("sanic@sanic"), APP)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(3):
                response = client.request("GET", "/api/hello", content=b"an unread body")
                assert response.json() == {"message": "hello world"}
    finally:
        server.stop()
    log = server.output()
    assert "body not consumed" not in log and "ERROR" not in log, log
