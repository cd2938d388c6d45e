"""Requests that go wrong on the client's side: a 4xx in the contract's shape, logged without a traceback."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from utilserve import Request

from ..support.cells import ServerAnswer, cell_named
from ..support.servers import BIN, Server, free_port, serve

APP = "tests.apps.conformance:app"


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


@dataclass(frozen=True)
class Hostile:
    """A request sent as raw bytes, and what utilserve answers where the server lets it."""

    id: str
    request: bytes
    status: int
    message: str
    """How utilserve's message starts."""
    stops_sending: bool = False
    """Shut the client's sending side after the request: the body stops there."""


def raw_request(method: bytes, target: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    return b"\r\n".join([b"%s %s HTTP/1.1" % (method, target), b"Host: x", *fields, b"", body])


JSON_TYPE = b"Content-Type: application/json"
NOT_UTF8 = "the request path is not valid UTF-8"
UNREADABLE = "the request body could not be read"
HOSTILE = [
    # To an unknown path: where the server lets it through, utilserve's answer is a 4xx too.
    Hostile("oversized-header", raw_request(b"GET", b"/api/nope", b"X-Padding: " + b"a" * 32768), 404, "no route"),
    Hostile(
        "bad-chunk-size",
        raw_request(b"POST", b"/api/echo", JSON_TYPE, b"Transfer-Encoding: chunked", body=b"zz\r\n{}\r\n0\r\n\r\n"),
        400,
        UNREADABLE,
    ),
    Hostile("non-utf8-path-escaped", raw_request(b"GET", b"/api/paths/%FF/1"), 400, NOT_UTF8),
    Hostile("non-utf8-path-raw", raw_request(b"GET", b"/api/paths/\xff/1"), 400, NOT_UTF8),
    Hostile(
        "body-cut-short",
        raw_request(b"POST", b"/api/echo", JSON_TYPE, b"Content-Length: 1000", body=b'{"name": "cut'),
        400,
        UNREADABLE,
        stops_sending=True,
    ),
]

REFUSES_RAW_BYTES = ServerAnswer(400, "the server refuses a request line that is not ASCII")
GUNICORN_FIELD_LIMIT = ServerAnswer(431, "gunicorn's limit_request_field_size, 8190")
GONE = ServerAnswer(None, "the server takes a client that stopped sending for gone, and closes")
HOSTILE_CELLS = [
    cell_named(name)
    for name in (
        "starlette@uvicorn",
        "flask@gunicorn",
        "django-wsgi@gunicorn",
        "flask@uwsgi",
        "sanic@sanic",
        "tornado@tornado",
        "starlette@hypercorn",
        "django-asgi@daphne",
        "fastapi@granian-asgi",
        "falcon-wsgi@granian-wsgi",
        "flask@waitress",
    )
]
SERVER_ANSWERS = {
    ("starlette@uvicorn", "bad-chunk-size"): ServerAnswer(400, "uvicorn's parser refuses the chunk"),
    ("starlette@uvicorn", "non-utf8-path-raw"): REFUSES_RAW_BYTES,
    ("starlette@uvicorn", "body-cut-short"): GONE,
    ("flask@gunicorn", "oversized-header"): GUNICORN_FIELD_LIMIT,
    ("flask@gunicorn", "non-utf8-path-raw"): REFUSES_RAW_BYTES,
    ("django-wsgi@gunicorn", "oversized-header"): GUNICORN_FIELD_LIMIT,
    ("django-wsgi@gunicorn", "non-utf8-path-raw"): REFUSES_RAW_BYTES,
    ("flask@uwsgi", "oversized-header"): ServerAnswer(None, "uWSGI drops a request head over its 4 KiB buffer"),
    ("flask@uwsgi", "bad-chunk-size"): ServerAnswer(
        422, "uWSGI reads a chunk size that is not hex as the last chunk: the body the app gets is empty"
    ),
    ("sanic@sanic", "oversized-header"): ServerAnswer(413, "Sanic's REQUEST_MAX_HEADER_SIZE, 8 KiB"),
    ("sanic@sanic", "bad-chunk-size"): ServerAnswer(400, "Sanic's parser refuses the chunk"),
    ("sanic@sanic", "non-utf8-path-raw"): REFUSES_RAW_BYTES,
    ("sanic@sanic", "body-cut-short"): GONE,
    ("tornado@tornado", "bad-chunk-size"): ServerAnswer(400, "Tornado's parser refuses the chunk"),
    ("tornado@tornado", "body-cut-short"): GONE,
    ("starlette@hypercorn", "bad-chunk-size"): ServerAnswer(400, "h11 refuses the chunk"),
    ("starlette@hypercorn", "non-utf8-path-raw"): REFUSES_RAW_BYTES,
    ("starlette@hypercorn", "body-cut-short"): ServerAnswer(
        400, "h11 may see the client stop sending before utilserve reads on, and answer its own bare 400 first"
    ),
    ("django-asgi@daphne", "oversized-header"): ServerAnswer(None, "Twisted drops a header line over 16 KiB"),
    ("django-asgi@daphne", "bad-chunk-size"): ServerAnswer(400, "Twisted's parser refuses the chunk"),
    ("django-asgi@daphne", "non-utf8-path-raw"): REFUSES_RAW_BYTES,
    ("django-asgi@daphne", "body-cut-short"): GONE,
    ("fastapi@granian-asgi", "non-utf8-path-raw"): REFUSES_RAW_BYTES,
    ("falcon-wsgi@granian-wsgi", "bad-chunk-size"): ServerAnswer(
        422, "granian's WSGI input ends at the bad chunk without an error: the endpoint sees no body"
    ),
    ("falcon-wsgi@granian-wsgi", "non-utf8-path-raw"): REFUSES_RAW_BYTES,
    ("flask@waitress", "bad-chunk-size"): ServerAnswer(400, "waitress refuses the chunk"),
    ("flask@waitress", "non-utf8-path-raw"): REFUSES_RAW_BYTES,
    ("flask@waitress", "body-cut-short"): GONE,
}


@pytest.fixture(scope="module", params=HOSTILE_CELLS, ids=[c.name for c in HOSTILE_CELLS])
def hostile_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Server]]:
    """One server per cell for all the hostile requests: each must leave it healthy for the next."""
    server = serve(request.param, APP)
    yield request.param.name, server
    server.stop()


def exchange(server: Server, hostile: Hostile) -> tuple[int | None, str, bytes]:
    """Status, content type and body of the answer; status None where the server closes without one."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        try:
            sock.sendall(hostile.request)
            if hostile.stops_sending:
                sock.shutdown(socket.SHUT_WR)
            response = http.client.HTTPResponse(sock)
            response.begin()
            return response.status, response.getheader("content-type", ""), response.read()
        except ConnectionError:  # reset, or closed before a status line (RemoteDisconnected)
            return None, "", b""


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.id for h in HOSTILE])
def test_a_hostile_request_is_a_4xx_and_the_server_stays_healthy(
    hostile_server: tuple[str, Server], hostile: Hostile
) -> None:
    """utilserve answers as the contract says where the server lets it; where not, the server's answer is named."""
    cell, server = hostile_server
    log = Path(server.log.name)
    logged = log.stat().st_size
    status, content_type, body = exchange(server, hostile)
    own = SERVER_ANSWERS.get((cell, hostile.id))
    if own is not None:
        assert status == own.status, (own.reason, status, body)
    else:
        assert (status, content_type) == (hostile.status, "application/json"), body
        error = json.loads(body)["error"]
        assert error == {"status": hostile.status, "message": error["message"]}, error
        assert error["message"].startswith(hostile.message), error
    assert httpx.get(server.url + "/livez", timeout=10).status_code == 200
    added = log.read_bytes()[logged:].decode(errors="replace")
    assert "Traceback" not in added and "ERROR" not in added, added


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


def test_uwsgi_behind_its_http_router_reads_chunked_bodies_with_http_chunked_input() -> None:
    """Without ``--http-chunked-input`` (the README's router line has it) uWSGI's router drops chunked bodies."""
    port = free_port()
    argv = [str(BIN / "uwsgi"), "--http", f"127.0.0.1:{port}", "--http-chunked-input", "--master", "--need-app"]
    argv += ["--processes", "2", "--disable-logging", "--virtualenv", sys.prefix, "--module", APP]
    server = Server(argv, port, {"UTILSERVE_BACKEND": "flask"}).start()
    try:
        for _ in range(3):  # a connection each: the router resets a reused one now and then, chunked or not
            chunked = httpx.post(
                server.url + "/api/echo",
                content=iter([b'{"name": "a", ', b'"price": 2}']),
                headers={"content-type": "application/json"},
                timeout=30,
            )
            assert chunked.json() == {"name": "a", "price": 2.0, "tags": []}, chunked.text
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
