"""One table of HTTP cases, run over real HTTP against every cell of the matrix."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from ..support.cells import CELLS, ServerAnswer
from ..support.servers import Cell, CellServers, Server

APP = "tests.apps.conformance:app"
ABSENT = object()


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    status: int
    json: Any = ABSENT
    body: bytes | None = None
    headers: dict[str, str | None] = field(default_factory=dict)
    send: dict[str, Any] = field(default_factory=dict)
    server_answers: dict[str, ServerAnswer] = field(default_factory=dict)
    """Cells whose server answers otherwise, by cell name."""


def error(status: int, message: str, detail: Any = ABSENT) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "message": message}
    if detail is not ABSENT:
        body["detail"] = detail
    return {"error": body}


def invalid(*fields: tuple[str, str, str]) -> dict[str, Any]:
    """A 422 body whose detail names (in, field, type) for each failing field."""
    return error(422, "request validation failed", [{"in": i, "field": f, "type": t} for i, f, t in fields])


ITEM = {"name": "pen", "price": 1.5, "tags": ["office"]}
JSON_TYPE = {"content-type": "application/json"}

CASES = [
    Case("hello-default", "GET", "/api/hello", 200, {"message": "hello world"}, headers=JSON_TYPE),
    Case("hello-query", "GET", "/api/hello?name=x", 200, {"message": "hello x"}),
    Case("hello-encoded-query", "GET", "/api/hello?name=a%20b%26c", 200, {"message": "hello a b&c"}),
    Case("hello-trailing-slash", "GET", "/api/hello/", 200, {"message": "hello world"}),
    Case("hello-head", "HEAD", "/api/hello", 200, body=b""),
    Case(
        "method-query",
        "QUERY",
        "/api/hello",
        405,
        error(405, "method QUERY not allowed for /api/hello"),
        headers={"allow": "GET, HEAD"},
    ),
    Case(
        "method-propfind",
        "PROPFIND",
        "/api/hello",
        405,
        error(405, "method PROPFIND not allowed for /api/hello"),
        headers={"allow": "GET, HEAD"},
    ),
    Case("async-endpoint", "GET", "/api/ahello?name=y", 200, {"message": "hello y"}),
    Case("path-param", "GET", "/api/items/5", 200, {"id": 5}),
    Case("path-param-invalid", "GET", "/api/items/abc", 422, invalid(("path", "item_id", "int_parsing"))),
    Case("path-two-params", "GET", "/api/paths/x/2", 200, {"a": "x", "b": 2}),
    Case("path-param-percent-encoded", "GET", "/api/paths/a%20b/3", 200, {"a": "a b", "b": 3}),
    Case("path-param-newline", "GET", "/api/paths/a%0Ab/3", 200, {"a": "a\nb", "b": 3}),
    Case("path-tail", "GET", "/api/files/a/b/c.txt", 200, {"rest": "a/b/c.txt"}),
    Case("api-own-path-get", "GET", "/api/items", 200, [{"id": 1}, {"id": 2}]),
    Case("api-own-path-post", "POST", "/api/items", 201, ITEM, send={"json": ITEM}),
    Case("put-path-and-body", "PUT", "/api/items/3", 200, {"id": 3, "item": ITEM}, send={"json": ITEM}),
    Case("patch-named-body-key", "PATCH", "/api/items/4", 200, {"id": 4, "name": "z"}, send={"json": {"name": "z"}}),
    Case("delete-no-content", "DELETE", "/api/items/3", 204, body=b"", headers={"content-type": None}),
    Case("nested-api", "GET", "/api/nested/inner/ping", 200, body=b"pong"),
    Case("query-types", "GET", "/api/types?i=1&f=2.5&b=true&s=x", 200, {"i": 1, "f": 2.5, "b": True, "s": "x"}),
    Case(
        "query-missing",
        "GET",
        "/api/types",
        422,
        invalid(
            ("query", "i", "missing"), ("query", "f", "missing"), ("query", "b", "missing"), ("query", "s", "missing")
        ),
    ),
    Case("query-bad-bool", "GET", "/api/types?i=1&f=1&b=maybe&s=x", 422, invalid(("query", "b", "bool_parsing"))),
    Case("query-optional-absent", "GET", "/api/optional", 200, {"n": None}),
    Case("query-optional-present", "GET", "/api/optional?n=3", 200, {"n": 3}),
    Case("query-list", "GET", "/api/many?n=1&n=2", 200, {"n": [1, 2]}),
    Case("query-list-invalid", "GET", "/api/many?n=1&n=x", 422, invalid(("query", "n.1", "int_parsing"))),
    Case("query-enum", "GET", "/api/choice?color=red&mode=b", 200, {"color": "red", "mode": "b"}),
    Case("query-enum-invalid", "GET", "/api/choice?color=green", 422, invalid(("query", "color", "enum"))),
    Case(
        "query-literal-invalid",
        "GET",
        "/api/choice?color=blue&mode=c",
        422,
        invalid(("query", "mode", "literal_error")),
    ),
    Case("query-alias", "GET", "/api/search?search=cats", 200, {"q": "cats"}),
    Case("header", "GET", "/api/header", 200, {"token": "t0k"}, send={"headers": {"X-Token": "t0k"}}),
    Case("header-missing", "GET", "/api/header", 422, invalid(("header", "x-token", "missing"))),
    Case(
        "header-underscore-as-dash",
        "GET",
        "/api/underscore",
        200,
        {"id": "r1"},
        send={"headers": {"X-Request-Id": "r1"}},
    ),
    Case("cookie", "GET", "/api/cookie", 200, {"session": "s1"}, send={"headers": {"Cookie": "session=s1; other=2"}}),
    Case("cookie-missing", "GET", "/api/cookie", 422, invalid(("cookie", "session", "missing"))),
    Case("json-body", "POST", "/api/echo", 200, {**ITEM}, send={"json": ITEM}),
    Case(
        "json-body-defaults",
        "POST",
        "/api/echo",
        200,
        {"name": "a", "price": 2.0, "tags": []},
        send={"json": {"name": "a", "price": 2}},
    ),
    Case(
        "json-body-chunked",
        "POST",
        "/api/echo",
        200,
        {"name": "a", "price": 2.0, "tags": []},
        send={"content": (b'{"name": "a", ', b'"price": 2}'), "headers": JSON_TYPE},  # no Content-Length: chunked
    ),
    Case("json-body-malformed", "POST", "/api/echo", 400, send={"content": b'{"name": ', "headers": JSON_TYPE}),
    Case("json-body-empty", "POST", "/api/echo", 422, invalid(("body", "item", "missing"))),
    Case(
        "json-body-invalid-fields",
        "POST",
        "/api/echo",
        422,
        invalid(("body", "name", "string_type"), ("body", "price", "float_parsing")),
        send={"json": {"name": 1, "price": "x"}},
    ),
    Case("json-body-keys", "POST", "/api/add", 200, {"sum": 5}, send={"json": {"a": 2, "b": 3}}),
    Case("json-body-key-missing", "POST", "/api/add", 422, invalid(("body", "b", "missing")), send={"json": {"a": 2}}),
    Case(
        "file-upload",
        "POST",
        "/api/upload",
        200,
        {"filename": "a.txt", "size": 11, "type": "text/plain", "head": "hello"},
        send={"files": {"file": ("a.txt", b"hello world", "text/plain")}},
    ),
    Case(
        "file-upload-bytes", "POST", "/api/blob", 200, {"size": 3}, send={"files": {"blob": ("b.bin", b"\x00\x01\x02")}}
    ),
    Case(
        "file-upload-missing",
        "POST",
        "/api/blob",
        422,
        invalid(("file", "blob", "missing")),
        send={"files": {"other": ("b.bin", b"x")}},
    ),
    Case(
        "return-text",
        "GET",
        "/api/text",
        200,
        body=b"plain text",
        headers={"content-type": "text/plain; charset=utf-8"},
    ),
    Case(
        "return-bytes",
        "GET",
        "/api/binary",
        200,
        body=b"\x00\x01\x02",
        headers={"content-type": "application/octet-stream"},
    ),
    Case("return-none", "GET", "/api/nothing", 200, None),
    Case("return-response", "GET", "/api/custom", 202, {"ok": True}, headers={"x-custom": "yes"}),
    Case(
        "request-param", "GET", "/api/whoami?x=1", 200, {"method": "GET", "path": "/api/whoami", "query": {"x": ["1"]}}
    ),
    Case("http-error", "GET", "/api/teapot", 418, error(418, "short and stout")),
    Case("http-error-detail", "GET", "/api/conflict", 409, error(409, "already exists", {"id": 7})),
    Case("unhandled-sync", "GET", "/api/boom", 500, error(500, "Internal Server Error")),
    Case("unhandled-async", "GET", "/api/aboom", 500, error(500, "Internal Server Error")),
    Case("not-found", "GET", "/api/nope", 404, error(404, "no route for /api/nope")),
    Case("not-found-outside-route", "GET", "/nope", 404, error(404, "no route for /nope")),
    Case(
        "method-not-allowed",
        "DELETE",
        "/api/hello",
        405,
        error(405, "method DELETE not allowed for /api/hello"),
        headers={"allow": "GET, HEAD"},
    ),
    Case(
        "method-not-allowed-many",
        "POST",
        "/api/items/1",
        405,
        error(405, "method POST not allowed for /api/items/1"),
        headers={"allow": "DELETE, GET, HEAD, PATCH, PUT"},
    ),
    Case(
        "body-too-large",
        "POST",
        "/api/echo",
        413,
        error(413, "request body exceeds the limit of 65536 bytes"),
        send={"content": b"x" * 100_000, "headers": JSON_TYPE},
    ),
    Case("livez", "GET", "/livez", 200, {"status": "ok"}),
    Case("readyz", "GET", "/readyz", 200, {"status": "ready"}),
]


@pytest.fixture(scope="session")
def servers() -> Iterator[CellServers]:
    started = CellServers(APP)
    yield started
    started.stop()


def fetch(server: Server, case: Case) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return client.request(case.method, case.path, **case.send)


def assert_matches(actual: Any, expected: Any) -> None:
    """Equality, except that 422 detail entries are checked on in/field/type (messages come from pydantic)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        assert actual.keys() == expected.keys(), (actual, expected)
        for key in expected:
            assert_matches(actual[key], expected[key])
    elif isinstance(expected, list) and isinstance(actual, list):
        assert len(actual) == len(expected), (actual, expected)
        for got, want in zip(actual, expected, strict=True):
            if isinstance(want, dict) and {"in", "field", "type"} == want.keys():
                assert {k: got[k] for k in want} == want and got["message"], got
            else:
                assert_matches(got, want)
    else:
        assert actual == expected


def assert_answers(case: Case, response: httpx.Response) -> None:
    """``response`` is what the table says ``case`` gets from utilserve."""
    assert response.status_code == case.status, response.text
    if case.body is not None:
        assert response.content == case.body
    if case.json is not ABSENT:
        assert_matches(response.json(), case.json)
    if case.status >= 400:
        assert response.json()["error"]["status"] == case.status
        assert response.headers["content-type"] == "application/json"
    for name, value in case.headers.items():
        assert response.headers.get(name) == value, dict(response.headers)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_case(cell: Cell, case: Case, servers: CellServers) -> None:
    response = fetch(servers(cell), case)
    if (own := case.server_answers.get(cell.name)) is not None:
        assert response.status_code == own.status, (own.reason, response.text)
        return
    assert_answers(case, response)


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_a_connection_closed_after_an_unlisted_method_said_so(cell: Cell, servers: CellServers) -> None:
    """Answered before its request is read to the end, a server may close the connection: its answer must say so,
    or the client sends its next request down a closing connection and reads a reset."""
    server = servers(cell)
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"QUERY /api/hello HTTP/1.1\r\nHost: x\r\n\r\n")
        while b"method QUERY not allowed" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"closed before answering: {received!r}"
            received += chunk
        sock.settimeout(0.3)  # a server that closes does so at once
        try:
            closed = sock.recv(65536) == b""
        except TimeoutError:
            closed = False
    head = received.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 405 "), received
    assert not closed or b"\r\nconnection: close" in head, received


ERROR_CASES = [c for c in CASES if c.status >= 400]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c.id for c in ERROR_CASES])
def test_error_body_is_byte_identical_across_cells(case: Case, servers: CellServers) -> None:
    bodies = {cell.name: fetch(servers(cell), case).content for cell in CELLS}
    assert len(set(bodies.values())) == 1, bodies


def test_openapi_document_is_served(servers: CellServers) -> None:
    for cell in CELLS:
        document = httpx.get(servers(cell).url + "/api/openapi.json").json()
        assert document["openapi"] == "3.1.0"
        assert "/api/items/{item_id}" in document["paths"]
