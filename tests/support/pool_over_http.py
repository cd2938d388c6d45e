"""A model pool over real HTTP: waiting for it to be ready, bursts of requests, the overload check of every pool."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from .models.log import events
from .processes import wait_until
from .servers import Server


def wait_ready(server: Server, timeout: float = 60.0, in_a_row: int = 1) -> None:
    """Wait until ``/readyz`` answers 200 ``in_a_row`` times running: each answer may come from another web worker."""
    deadline = time.monotonic() + timeout
    while not all(httpx.get(server.url + "/readyz").status_code == 200 for _ in range(in_a_row)):
        assert time.monotonic() < deadline, f"the service was not ready within {timeout:g} s:\n{server.output()}"
        time.sleep(0.05)


def burst(server: Server, path: str, bodies: list[dict], threads: int) -> list[httpx.Response]:
    """POST every body at once from ``threads`` threads; the answers in the order of ``bodies``.

    The client drops a connection idle for a second, sooner than any server
    here closes one (gunicorn: 2 s): a POST sent on a connection as the
    server closes it is reset, and a client may not send it again.
    """
    limits = httpx.Limits(max_connections=threads, keepalive_expiry=1.0)
    client = httpx.Client(base_url=server.url, timeout=60, limits=limits)
    with client, ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda body: client.post(path, json=body), bodies))


def assert_overload_is_503_then_recovers(server: Server) -> None:
    """100 requests at once to ``Slow`` (one item per 50 ms, 8 queued at most): the overflow is 503 at once."""
    responses = burst(server, "/api/slow", [{"x": i} for i in range(100)], threads=100)
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 503}, statuses
    for i, response in enumerate(responses):
        if response.status_code == 200:
            assert response.json() == {"y": 2 * i}
        else:
            overloaded = {"status": 503, "message": "model Slow is overloaded: 8 requests already queued"}
            assert response.json() == {"error": overloaded}, response.text
            assert response.headers["retry-after"] == "1"
    assert httpx.post(server.url + "/api/slow", json={"x": 5}, timeout=30).json() == {"y": 10}


def assert_sigterm_drains(server: Server, model_log: Path, requests: int = 16) -> None:
    """SIGTERM to the server's main process once ``requests`` are accepted: each gets its 200, each process stops."""
    with ThreadPoolExecutor(requests) as clients:
        answers = [
            clients.submit(httpx.get, server.url + "/api/hold", params={"x": x}, timeout=30) for x in range(requests)
        ]
        wait_until(lambda: len(events(model_log, event="accepted")) == requests, f"{requests} requests accepted")
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        statuses = [answer.result().status_code for answer in answers]
    assert statuses == [200] * requests, (statuses, server.output())
    server.process.wait(30)
    accepting = {answer.result().json()["web"] for answer in answers}
    stopped = {event["pid"] for event in events(model_log, event="shutdown")}
    assert accepting <= stopped, (accepting, stopped, server.output())
