"""Streamed responses over every cell: chunks and events as they are produced, and what ends a stream.

A generator endpoint's first chunk reaches the client before the generator
yields its second; an event stream sends heartbeats while it waits and an
error after its first event as an event; a client that goes away closes
the generator.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ..support.cells import CELLS, cell_named
from ..support.models.log import events
from ..support.processes import wait_until
from ..support.servers import Cell, Server, serve

# None of these servers buffers a streamed body: each chunk is written as the app yields it.
# waitress: ``send_bytes`` (once 18000 bytes before a flush) is 1 by default and deprecated.
# uWSGI's --http11-socket neither chunks nor sets Content-Length for a body of unknown length: it ends the body
# by closing the connection, so a streamed response costs the keep-alive connection, not its latency.


@pytest.fixture(scope="module", params=CELLS, ids=[cell.name for cell in CELLS])
def streaming(request: pytest.FixtureRequest) -> Iterator[Server]:
    cell: Cell = request.param
    server = serve(cell, "tests.apps.streaming:app")
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("path", "media_type", "chunks"),
    [
        ("/api/count", "text/plain; charset=utf-8", [b"1\n", b"2\n"]),
        ("/api/acount", "application/x-ndjson", None),
    ],
)
def test_the_first_chunk_arrives_before_the_generator_yields_the_second(
    streaming: Server, tmp_path: Path, path: str, media_type: str, chunks: list[bytes] | None
) -> None:
    gate = tmp_path / "gate"
    with httpx.stream("GET", streaming.url + path, params={"gate": str(gate)}, timeout=30) as response:
        assert response.status_code == 200 and response.headers["content-type"] == media_type
        assert "content-length" not in response.headers
        lines = response.iter_lines()
        first = next(lines)  # a server that held it back until the end would send "gave up" after it
        assert not gate.exists()
        gate.touch()
        rest = list(lines)
    if chunks is not None:
        assert [first.encode() + b"\n", *(line.encode() + b"\n" for line in rest)] == chunks
    else:
        assert json.loads(first) == {"n": 1} and json.loads(rest[0])["n"] == 2


def messages(streaming: Server, gate: Path, fail: bool) -> tuple[httpx.Headers, list[str]]:
    """The stream's headers and its lines; the gate opens once the first event and a heartbeat have come."""
    with httpx.stream("GET", streaming.url + "/api/events", params={"gate": str(gate), "fail": fail}, timeout=30) as r:
        lines: list[str] = []
        for line in r.iter_lines():
            lines.append(line)
            if line == ": ping" and not gate.exists():
                gate.touch()
        return r.headers, lines


def test_events_come_as_they_are_produced_with_heartbeats_between(streaming: Server, tmp_path: Path) -> None:
    headers, lines = messages(streaming, tmp_path / "gate", fail=False)
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache" and headers["x-accel-buffering"] == "no"
    first = lines.index(": ping")
    assert lines[:first] == ["event: tick", "id: 1", 'data: {"n":1}', ""]
    assert lines[-4:] == ["id: 2", "data: two", "data: lines", ""]
    assert all(line in (": ping", "") for line in lines[first:-4])


def test_an_error_after_the_first_event_is_an_error_event_that_ends_the_stream(
    streaming: Server, tmp_path: Path
) -> None:
    _, lines = messages(streaming, tmp_path / "gate", fail=True)
    assert lines[-3:] == [
        "event: error",
        'data: {"error":{"status":409,"message":"the second event conflicts"}}',
        "",
    ]


@pytest.mark.parametrize(
    ("path", "first"), [("/api/forever", "tick"), ("/api/ticks", 'data: {"tick":true}')], ids=["raw", "events"]
)
def test_a_client_that_goes_away_closes_the_generator(streaming: Server, tmp_path: Path, path: str, first: str) -> None:
    """At once on ASGI servers; on WSGI servers at the next write, which these endless streams make soon."""
    record = tmp_path / "closed"
    with httpx.stream("GET", streaming.url + path, params={"record": str(record)}, timeout=30) as r:
        assert next(r.iter_lines()) == first
    wait_until(record.exists, "the generator's finally")


def test_a_streaming_model_route_answers_events_or_ndjson(streaming: Server) -> None:
    item = {"tag": "a", "n": 3}
    stream = httpx.post(streaming.url + "/api/counting", json=item, timeout=30)
    assert stream.status_code == 200 and stream.headers["content-type"] == "text/event-stream"
    assert stream.text == "".join(f'data: {{"tag":"a","i":{i}}}\n\n' for i in range(3))
    lines = httpx.post(
        streaming.url + "/api/counting", json=item, headers={"accept": "application/x-ndjson"}, timeout=30
    )
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line) for line in lines.text.splitlines()] == [{"tag": "a", "i": i} for i in range(3)]
    invalid = httpx.post(streaming.url + "/api/counting", json={"n": 3}, timeout=30)
    assert invalid.status_code == 422 and invalid.json()["error"]["detail"][0]["field"] == "tag"


def one_process(cell: Cell) -> Cell:
    """The cell served by one process, so that every request meets the same model queue."""
    argv = list(cell.argv)
    if "--workers" in argv:
        argv[argv.index("--workers") + 1] = "1"
    return dataclasses.replace(cell, argv=tuple(argv))


@pytest.mark.parametrize("name", ["starlette@uvicorn", "fastapi@uvicorn", "sanic@sanic", "tornado@tornado"])
def test_a_queued_item_of_a_client_that_went_away_never_reaches_the_model(
    name: str, tmp_path: Path, running: Callable[[Server], Server]
) -> None:
    """The model takes one item at a time: ``a`` holds it, ``b`` queues behind and its client leaves, ``c`` follows.

    The queue is first in, first out, so ``c`` starting while ``b`` never did shows ``b`` left the queue.
    """
    log, release = tmp_path / "model.log", tmp_path / "release-a"
    server = running(serve(one_process(cell_named(name)), "tests.apps.streaming:app", env={"MODEL_LOG": str(log)}))
    with httpx.stream("POST", server.url + "/api/counting", json={"tag": "a", "n": 1, "until": str(release)}) as a:
        lines = a.iter_lines()
        assert next(lines) == 'data: {"tag":"a","i":0}'
        with socket.create_connection(("127.0.0.1", server.port)) as b:
            body = b'{"tag": "b"}'
            b.sendall(b"POST /api/queued HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            b.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            wait_until(lambda: events(log, queued="b"), "b to be queued")
        closed = wait_until(lambda: events(log, closed="b"), "b's stream to close as its client left")
        assert closed[0]["by"] == "CancelledError", closed  # not the 504 of its deadline
        release.touch()
        assert list(lines)
    c = httpx.post(server.url + "/api/counting", json={"tag": "c", "n": 1}, timeout=30)
    assert c.status_code == 200
    started = [event["started"] for event in events(log, model="counting") if "started" in event]
    assert started == ["a", "c"]


@pytest.mark.parametrize("name", ["starlette@uvicorn", "flask@gunicorn"])
def test_the_streaming_example_answers_as_its_docstring_says(name: str, running: Callable[[Server], Server]) -> None:
    server = running(serve(cell_named(name), "examples.stream:app", env={"STREAM_STEP_MS": "1"}))
    generated = httpx.post(server.url + "/generate", json={"prompt": "hello world", "tokens": 3}, timeout=30)
    assert generated.headers["content-type"] == "text/event-stream"
    assert generated.text.splitlines()[0] == 'data: {"index":0,"text":"hello"}'
    words = httpx.get(server.url + "/words", params={"prompt": "a b", "tokens": 3}, timeout=30)
    assert words.text == "a b a "
    answered = httpx.get(server.url + "/events", params={"prompt": "x", "tokens": 1}, timeout=30)
    assert answered.text.splitlines() == [
        "event: token",
        "id: 0",
        'data: {"index":0,"text":"x"}',
        "",
        "event: end",
        "data: ",
        "",
    ]
