"""Checks of a model pool over real HTTP that every pool kind must pass (thread and Ray alike)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from .servers import Server


def burst(server: Server, path: str, bodies: list[dict], threads: int) -> list[httpx.Response]:
    """POST every body at once from ``threads`` threads; the answers in the order of ``bodies``."""
    client = httpx.Client(base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=threads))
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
