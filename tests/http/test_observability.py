"""Middleware, metrics, request ids and the access log, over real HTTP on every cell of the matrix."""

from __future__ import annotations

import collections
import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from utilserve.telemetry.tally import WRITE_EVERY_S

from ..support.cells import CELLS
from ..support.processes import wait_until
from ..support.servers import Cell, Server, serve

APP = "tests.apps.observed:app"

PLAN: list[tuple[str, str, dict[str, str], int, str]] = [
    *[("GET", f"/api/items/{n}", {}, 200, "/api/items/{item_id}") for n in range(3)],
    *[("GET", "/api/items/pen", {}, 422, "/api/items/{item_id}") for _ in range(2)],
    ("POST", "/api/items", {}, 201, "/api/items"),
    ("GET", "/api/items/1", {"x-block": "1"}, 403, "/api/items/{item_id}"),
    ("GET", "/api/boom", {}, 500, "/api/boom"),
    ("GET", "/nowhere", {}, 404, "<unmatched>"),
    ("GET", "/nowhere/else/at/all", {}, 404, "<unmatched>"),
]
"""Method, path, extra headers, expected status and route label of each request the test sends."""


def request_counts(server: Server) -> dict[tuple[str, str, str], float]:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    counts: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "utilserve_requests_total":
                labels = sample.labels
                counts[(labels["method"], labels["route"], labels["status"])] = sample.value
    return counts


def settled_counts(server: Server, expected: Mapping[tuple[str, str, str], float]) -> dict[tuple[str, str, str], float]:
    """The request counts of the test's own requests once they equal ``expected``, or as they stand after a while.

    Each worker process writes its counts within ``WRITE_EVERY_S``; a scrape
    reaches one worker, which writes its own first.
    """
    deadline = time.monotonic() + 20 * WRITE_EVERY_S
    while True:
        counts = {key: value for key, value in request_counts(server).items() if key[1] not in ("/livez", "/metrics")}
        if counts == expected or time.monotonic() > deadline:
            return counts
        time.sleep(WRITE_EVERY_S / 5)


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_metrics_count_each_route_template_and_the_access_log_writes_one_line_per_request(
    cell: Cell, tmp_path: Path, running: Callable[[Server], Server]
) -> None:
    server = running(serve(cell, APP, env={"ACCESS_LOG_DIR": str(tmp_path)}))
    sent: dict[str, tuple[str, str, int, str]] = {}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for number, (method, path, headers, status, route) in enumerate(PLAN):
            request_id = f"{cell.name}-{number}"
            body = {"name": "pen"} if method == "POST" else None
            response = client.request(method, path, headers={"x-request-id": request_id, **headers}, json=body)
            assert response.status_code == status, (path, response.text)
            assert response.headers["x-request-id"] == request_id
            if status != 404:
                assert response.headers["x-route"] == route
            sent[request_id] = (method, path, status, route)

    boom_id = next(request_id for request_id, (_, path, _, _) in sent.items() if path == "/api/boom")
    logged = wait_until(lambda: server.output().count(f"(request {boom_id})"), "the unhandled error's log line")
    assert logged == 1 and "RuntimeError: boom" in server.output(), server.output()

    expected = collections.Counter((method, route, str(status)) for method, _, status, route in sent.values())
    assert settled_counts(server, expected) == expected

    def lines(kind: str) -> list[str]:
        text = (tmp_path / f"access.{kind}").read_text()
        return [line for line in text.splitlines() if re.search(rf"\b{re.escape(cell.name)}-\d+\b", line)]

    plain = wait_until(lambda: len(lines("plain")) == len(sent) and lines("plain"), "the plain access log")
    records = [
        json.loads(line) for line in wait_until(lambda: len(lines("json")) == len(sent) and lines("json"), "JSON")
    ]
    assert sorted(record["request_id"] for record in records) == sorted(sent)
    for record in records:
        method, path, status, route = sent[record["request_id"]]
        assert (record["method"], record["path"], record["status"], record["route"]) == (method, path, status, route)
        assert record["duration_ms"] >= 0 and record["pid"] > 0 and isinstance(record["bytes"], int)
        line = next(line for line in plain if f"id={record['request_id']} " in line)
        assert f"{method} {path} {status} " in line and f'route="{route}"' in line and f"pid={record['pid']}" in line
