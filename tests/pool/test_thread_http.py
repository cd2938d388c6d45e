"""The in-process pool over real HTTP, on a sync (flask@gunicorn) and an async (starlette@uvicorn) cell."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..support.cells import GUNICORN, UVICORN
from ..support.pool_over_http import assert_overload_is_503_then_recovers, burst
from ..support.servers import Cell, Server, serve


def gunicorn(workers: int, threads: int) -> tuple[str, ...]:
    """The matrix's gunicorn command with enough threads to overload a model queue."""
    return (*GUNICORN[: GUNICORN.index("-w")], "-w", str(workers), "--threads", str(threads), GUNICORN[-1])


POOL_CELLS = [Cell("starlette@uvicorn", "starlette", UVICORN), Cell("flask@gunicorn", "flask", gunicorn(2, 64))]
SINGLE = [Cell("starlette@uvicorn", "starlette", UVICORN), Cell("flask@gunicorn-1", "flask", gunicorn(1, 4))]
"""One serving process, so one pool: a test can know what is queued ahead of a request."""
APP = "tests.apps.pool_thread:app"


@pytest.fixture(params=POOL_CELLS, ids=[c.name for c in POOL_CELLS])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    log = tmp_path / "model.log"
    server = serve(request.param, APP, env={"MODEL_LOG": str(log)})
    yield server, log
    server.stop()


def events(log: Path, model: str) -> list[dict]:
    if not log.exists():
        return []
    return [e for e in map(json.loads, log.read_text().splitlines()) if e["model"] == model]


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(server.url + "/readyz").status_code != 200:
        assert time.monotonic() < deadline, "models never became ready"
        time.sleep(0.05)


def test_concurrent_requests_form_batches(served: tuple[Server, Path]) -> None:
    server, log = served
    wait_ready(server)
    responses = burst(server, "/api/batching", [{"x": i} for i in range(256)], threads=64)
    assert [r.json() for r in responses] == [{"y": 2 * i} for i in range(256)]
    sizes = [e["size"] for e in events(log, "batching")]
    assert sum(sizes) == 256
    assert max(sizes) > 1, sizes
    assert max(sizes) <= 8, sizes


def test_overload_answers_503_and_recovers(served: tuple[Server, Path]) -> None:
    server, _ = served
    wait_ready(server)
    assert_overload_is_503_then_recovers(server)


@pytest.mark.parametrize("cell", SINGLE, ids=[c.name for c in SINGLE])
def test_deadline_passed_in_queue_is_504_and_never_reaches_the_model(cell: Cell, tmp_path: Path) -> None:
    log = tmp_path / "model.log"
    server = serve(cell, APP, env={"MODEL_LOG": str(log)})
    try:
        wait_ready(server)
        late = request_behind_three(server, log)
    finally:
        server.stop()
    assert late.status_code == 504, late.text
    assert late.json()["error"]["status"] == 504
    seen = [x for e in events(log, "slow") for x in e["seen"]]
    assert 77 not in seen and sorted(seen) == [0, 1, 2], seen


def request_behind_three(server: Server, log: Path) -> httpx.Response:
    """Three 50 ms items occupy the Slow model; once it runs the first, a fourth with a 5 ms deadline queues."""
    with ThreadPoolExecutor(4) as pool:
        blockers = [pool.submit(httpx.get, server.url + f"/api/slow?x={i}", timeout=30) for i in range(3)]
        deadline = time.monotonic() + 30
        while not events(log, "slow"):
            assert time.monotonic() < deadline, "the Slow model never started"
            time.sleep(0.001)
        late = httpx.get(server.url + "/api/slow?x=77&timeout=0.005", timeout=30)
        assert all(b.result().status_code == 200 for b in blockers)
    return late


def test_item_errors_stay_with_their_item_and_batch_errors_map(served: tuple[Server, Path]) -> None:
    server, _ = served
    wait_ready(server)
    responses = burst(server, "/api/picky", [{"x": x} for x in (1, -2, 3, -4)], threads=4)
    assert [r.status_code for r in responses] == [200, 400, 200, 400]
    assert responses[0].json() == {"y": 2}
    assert responses[1].json() == {"error": {"status": 400, "message": "model Picky: ValueError: -2 is negative"}}
    whole = burst(server, "/api/picky", [{"x": 999}], threads=1)[0]
    assert whole.json() == {"error": {"status": 409, "message": "999 is too big"}}
    via_endpoint = httpx.get(server.url + "/api/picky?x=-1")
    assert via_endpoint.json() == {"error": {"status": 400, "message": "picky: model Picky: ValueError: -1 is negative"}}
    assert httpx.post(server.url + "/api/picky", json={"x": 4}).json() == {"y": 8}


@pytest.mark.parametrize("cell", SINGLE, ids=[c.name for c in SINGLE])
def test_readyz_waits_for_setup_and_teardown_runs_at_shutdown(cell: Cell, tmp_path: Path) -> None:
    log = tmp_path / "model.log"
    server = serve(cell, APP, env={"MODEL_LOG": str(log), "SETUP_SECONDS": "2"})
    try:
        loading = httpx.get(server.url + "/readyz")
        assert loading.status_code == 503 and loading.headers["retry-after"] == "1"
        assert loading.json()["error"]["detail"]["models"]["SlowSetup"] == "loading"
        early = httpx.post(server.url + "/api/setup", json={"x": 1})
        assert early.status_code == 503 and early.json()["error"]["message"] == "model SlowSetup is not ready"
        wait_ready(server)
        assert httpx.post(server.url + "/api/setup", json={"x": 1}).json() == {"y": 2}
    finally:
        server.stop()
    assert [e["event"] for e in events(log, "slow_setup")] == ["setup", "teardown"]
