"""CORS over real HTTP on every cell of the matrix: preflights, actual requests and errors, the same everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..apps.cors import ORIGIN
from ..support.cells import CELLS
from ..support.servers import Cell, CellServers

APP = "tests.apps.cors:app"
OTHER = "https://evil.example.net"
ABSENT = object()

ALLOWED = {
    "access-control-allow-origin": ORIGIN,
    "access-control-allow-credentials": "true",
    "access-control-expose-headers": "X-Request-ID",
}
PREFLIGHT_ALLOWED = {
    "access-control-allow-origin": ORIGIN,
    "access-control-allow-credentials": "true",
    "access-control-allow-methods": "GET, POST, PUT",
    "access-control-allow-headers": "accept, accept-language, content-language, content-type, x-token",
    "access-control-max-age": "300",
}


def refused(message: str) -> dict[str, Any]:
    return {"error": {"status": 400, "message": f"CORS preflight refused: {message}"}}


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    headers: dict[str, str]
    status: int
    cors: dict[str, str]
    """Every ``access-control-*`` header of the answer: nothing more, nothing less."""
    json: Any = ABSENT
    send: dict[str, Any] = field(default_factory=dict)


def preflight(origin: str, method: str, headers: str | None = None) -> dict[str, str]:
    sent = {"origin": origin, "access-control-request-method": method}
    return {**sent, "access-control-request-headers": headers} if headers is not None else sent


CASES = [
    Case(
        "preflight-allowed",
        "OPTIONS",
        "/api/items/1",
        preflight(ORIGIN, "PUT", "content-type,x-token"),
        200,
        PREFLIGHT_ALLOWED,
    ),
    Case("preflight-unknown-path", "OPTIONS", "/nowhere", preflight(ORIGIN, "GET"), 200, PREFLIGHT_ALLOWED),
    Case(
        "preflight-refused-origin",
        "OPTIONS",
        "/api/items/1",
        preflight(OTHER, "PUT"),
        400,
        {},
        refused(f"origin '{OTHER}' is not allowed"),
    ),
    Case(
        "preflight-refused-method",
        "OPTIONS",
        "/api/items/1",
        preflight(ORIGIN, "DELETE"),
        400,
        {},
        refused("method 'DELETE' is not allowed (allowed: GET, POST, PUT)"),
    ),
    Case(
        "preflight-refused-header",
        "OPTIONS",
        "/api/items/1",
        preflight(ORIGIN, "PUT", "x-token, x-secret"),
        400,
        {},
        refused("request headers 'x-secret' are not allowed"),
    ),
    Case("get-allowed", "GET", "/api/items/7", {"origin": ORIGIN}, 200, ALLOWED, {"id": 7}),
    Case("get-disallowed", "GET", "/api/items/7", {"origin": OTHER}, 200, {}, {"id": 7}),
    Case("get-no-origin", "GET", "/api/items/7", {}, 200, {}, {"id": 7}),
    Case(
        "put-json-allowed",
        "PUT",
        "/api/items/7",
        {"origin": ORIGIN, "x-token": "t"},
        200,
        ALLOWED,
        {"id": 7, "name": "pen"},
        {"json": {"name": "pen"}},
    ),
    Case("error-404-allowed", "GET", "/nowhere", {"origin": ORIGIN}, 404, ALLOWED),
    Case("error-422-allowed", "GET", "/api/items/pen", {"origin": ORIGIN}, 422, ALLOWED),
    Case("error-500-allowed", "GET", "/api/boom", {"origin": ORIGIN}, 500, ALLOWED),
    Case("error-405-options-without-preflight", "OPTIONS", "/api/items/7", {"origin": ORIGIN}, 405, ALLOWED),
    Case("error-404-disallowed", "GET", "/nowhere", {"origin": OTHER}, 404, {}),
]


@pytest.fixture(scope="module")
def servers() -> Iterator[CellServers]:
    started = CellServers(APP)
    yield started
    started.stop()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_case(cell: Cell, case: Case, servers: CellServers) -> None:
    server = servers(cell)
    response = httpx.request(case.method, server.url + case.path, headers=case.headers, timeout=10, **case.send)
    assert response.status_code == case.status, response.text
    answered = {name: value for name, value in response.headers.items() if name.startswith("access-control-")}
    assert answered == case.cors
    assert response.headers.get("vary") == "Origin"
    assert response.headers.get("x-request-id")
    if case.json is not ABSENT:
        assert response.json() == case.json


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_preflights_are_counted_under_their_route(cell: Cell, servers: CellServers) -> None:
    """On one connection, so that the scrape reaches the worker that answered: this counts, it checks no totals."""
    with httpx.Client(base_url=servers(cell).url, timeout=10) as client:
        for _ in range(2):
            assert client.options("/api/items/3", headers=preflight(ORIGIN, "PUT")).status_code == 200
        scraped = client.get("/metrics").text
    counted = {
        (sample.labels["method"], sample.labels["route"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if sample.name == "utilserve_requests_total"
    }
    assert counted.get(("OPTIONS", "/api/items/{item_id}", "200"), 0) >= 2, counted
