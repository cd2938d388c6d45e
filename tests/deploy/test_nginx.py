"""deploy/nginx.conf in front of gunicorn (HTTP over a Unix socket) and uWSGI (uwsgi_pass), both with their deploy/
settings: the conformance table through it, nginx's own answers in the error contract, streams unbuffered,
keep-alive to the client, and a client that cannot choose the address the service sees.
"""

from __future__ import annotations

import http.client
import json
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from utilserve.errors import HTTPError

from ..http.test_conformance import CASES, Case, assert_answers, fetch
from ..support.nginx import DEFAULT_MAX_BODY_SIZE, Stack, start_nginx, start_stack
from ..support.servers import HOST

SERVERS = ["gunicorn", "uwsgi"]
CONFORMANCE = "tests.apps.conformance:app"
PROXIED = "tests.apps.proxied:app"
FLASK = {"UTILSERVE_BACKEND": "flask"}


def short_tmp() -> Iterator[Path]:
    """A short private path: a Unix socket's path is limited to about 100 bytes."""
    with tempfile.TemporaryDirectory(prefix="utilserve-nginx-") as path:
        yield Path(path)


workdir = pytest.fixture(scope="module")(short_tmp)
place = pytest.fixture(short_tmp)


@pytest.fixture(scope="module")
def stacks(workdir: Path) -> Iterator[dict[str, Stack]]:
    """One stack per (server, app), started when first asked for."""
    started: dict[str, Stack] = {}
    yield started
    for stack in started.values():
        stack.stop()


def stack_for(server: str, app: str, stacks: dict[str, Stack], workdir: Path) -> Stack:
    key = f"{server}-{app.partition(':')[0].rpartition('.')[2]}"
    if key not in stacks:
        (place := workdir / key).mkdir()
        stacks[key] = start_stack(server, app, place, FLASK)
    return stacks[key]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("server", SERVERS)
def test_conformance_through_nginx(server: str, case: Case, stacks: dict[str, Stack], workdir: Path) -> None:
    """Every case as the table has it: nginx lets the service answer each one (413 included: 64 KiB is the
    conformance service's own limit, below nginx's)."""
    assert_answers(case, fetch(stack_for(server, CONFORMANCE, stacks, workdir).nginx, case))


@pytest.mark.parametrize("server", SERVERS)
def test_a_body_over_nginx_limit_gets_the_contract_413(server: str, stacks: dict[str, Stack], workdir: Path) -> None:
    stack = stack_for(server, CONFORMANCE, stacks, workdir)
    body = b"x" * (DEFAULT_MAX_BODY_SIZE + 1)
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        response = client.post("/api/echo", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.content == HTTPError(413, f"request body exceeds the limit of {DEFAULT_MAX_BODY_SIZE} bytes").body()


@pytest.mark.parametrize("server", SERVERS)
def test_sse_first_event_arrives_before_the_stream_ends(server: str, stacks: dict[str, Stack], workdir: Path) -> None:
    stack = stack_for(server, PROXIED, stacks, workdir)
    gate = workdir / f"{server}-events.gate"
    events: list[dict] = []
    with (
        httpx.Client(base_url=stack.url, timeout=30) as client,
        client.stream("GET", "/api/events", params={"gate": str(gate)}) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line.removeprefix("data:")))
                gate.touch()  # the second event waits on it: the first came while the stream was still open
    assert events == [{"n": 1}, {"n": 2}]


@pytest.mark.parametrize("server", SERVERS)
def test_a_generator_chunk_arrives_before_the_stream_ends(server: str, stacks: dict[str, Stack], workdir: Path) -> None:
    stack = stack_for(server, PROXIED, stacks, workdir)
    gate = workdir / f"{server}-count.gate"
    lines: list[str] = []
    with (
        httpx.Client(base_url=stack.url, timeout=30) as client,
        client.stream("GET", "/api/count", params={"gate": str(gate)}) as response,
    ):
        for line in response.iter_lines():
            lines.append(line)
            gate.touch()
    assert lines == ["1", "2"]


@pytest.mark.parametrize("server", SERVERS)
def test_a_spoofed_forwarded_for_is_ignored(server: str, stacks: dict[str, Stack], workdir: Path) -> None:
    """nginx replaces X-Forwarded-For / -Proto with what it saw; under uWSGI the server's own address is nginx's too."""
    stack = stack_for(server, PROXIED, stacks, workdir)
    spoofed = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    seen = httpx.get(stack.url + "/api/client", headers=spoofed).json()
    assert seen["forwarded_for"] == HOST
    assert seen["scheme"] == "http"
    assert seen["client"] == (HOST if server == "uwsgi" else "")  # gunicorn on a Unix socket has no peer address


def test_gunicorn_honours_the_forwarded_scheme_from_its_socket(stacks: dict[str, Stack], workdir: Path) -> None:
    """What comes over the service's socket is trusted, its permissions keeping others out: gunicorn takes
    X-Forwarded-Proto from it (nginx sends what it saw). Under uWSGI, nginx's UWSGI_SCHEME is the scheme."""
    stack = stack_for("gunicorn", PROXIED, stacks, workdir)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(stack.sock))
        sock.sendall(b"GET /api/client HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["scheme"] == "https"


@pytest.mark.parametrize("server", SERVERS)
def test_the_client_connection_is_kept_alive(server: str, stacks: dict[str, Stack], workdir: Path) -> None:
    stack = stack_for(server, CONFORMANCE, stacks, workdir)
    connection = http.client.HTTPConnection(HOST, stack.port, timeout=10)
    used = []
    try:
        for _ in range(3):
            connection.request("GET", "/api/hello")
            response = connection.getresponse()
            assert response.status == 200 and response.read()
            used.append(connection.sock)
    finally:
        connection.close()
    assert used[0] is not None and used == [used[0]] * 3


def test_a_malformed_request_gets_the_contract_400(stacks: dict[str, Stack], workdir: Path) -> None:
    stack = stack_for("gunicorn", CONFORMANCE, stacks, workdir)
    with socket.create_connection((HOST, stack.port), timeout=10) as sock:
        sock.sendall(b"GET /api/hello HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert b"\r\nContent-Type: application/json\r\n" in head
    assert json.loads(body) == {"error": {"status": 400, "message": "malformed request"}}


def test_no_service_behind_gets_the_contract_502(place: Path) -> None:
    values = {
        "UTILSERVE_UPSTREAM": f"unix:{place / 'nothing.sock'}",
        "UTILSERVE_PASS": "proxy_pass http://utilserve",
        "UTILSERVE_MAX_BODY_SIZE": str(DEFAULT_MAX_BODY_SIZE),
    }
    nginx = start_nginx(place, values, probe=lambda: True)
    try:
        response = httpx.get(nginx.url + "/api/hello")
    finally:
        nginx.stop()
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": {"status": 502, "message": "the service is not answering"}}


@pytest.mark.parametrize("server", SERVERS)
def test_a_service_too_slow_gets_the_contract_504(server: str, place: Path) -> None:
    """The config as it is, its read timeouts cut from 60 s to 1 s."""
    stack = start_stack(
        server, CONFORMANCE, place, FLASK, edit=lambda conf: conf.replace("read_timeout 60s", "read_timeout 1s")
    )
    try:
        response = httpx.get(stack.url + "/api/sleep?seconds=3", timeout=10)
    finally:
        stack.stop()
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": {"status": 504, "message": "the service did not answer in time"}}
