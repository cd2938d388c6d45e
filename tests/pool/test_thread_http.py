"""The in-process pool over real HTTP, on a sync (flask@gunicorn) and an async (starlette@uvicorn) cell, and uWSGI."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..support.cells import cell_named, gunicorn
from ..support.models.log import events
from ..support.models.thread import LONG
from ..support.pool_over_http import assert_overload_is_503_then_recovers, burst, wait_ready
from ..support.processes import alive, wait_until
from ..support.servers import Cell, Server, serve

POOL_CELLS = [cell_named("starlette@uvicorn"), Cell("flask@gunicorn", "flask", gunicorn(2, 64))]
"""starlette@uvicorn, and flask@gunicorn with threads enough to overload a model's queue."""
SINGLE = [cell_named("starlette@uvicorn"), Cell("flask@gunicorn-1", "flask", gunicorn(1, 4))]
"""One serving process, so one pool: a test can know what is queued ahead of a request."""
APP = "tests.apps.pool_thread:app"
EXIT_S = 10.0
"""How long a signalled uWSGI worker may take to exit; its master kills one that hangs only after 60 s."""


@pytest.fixture(params=POOL_CELLS, ids=[c.name for c in POOL_CELLS])
def served(request: pytest.FixtureRequest, model_log: Path, running: Callable[[Server], Server]) -> Server:
    return running(serve(request.param, APP, env={"MODEL_LOG": str(model_log)}))


def test_concurrent_requests_form_batches(served: Server, model_log: Path) -> None:
    wait_ready(served)
    responses = burst(served, "/api/batching", [{"x": i} for i in range(256)], threads=64)
    assert [r.json() for r in responses] == [{"y": 2 * i} for i in range(256)]
    sizes = [e["size"] for e in events(model_log, model="batching")]
    assert sum(sizes) == 256
    assert max(sizes) > 1, sizes
    assert max(sizes) <= 8, sizes


def test_overload_answers_503_and_recovers(served: Server) -> None:
    wait_ready(served)
    assert_overload_is_503_then_recovers(served)


@pytest.mark.parametrize("cell", SINGLE, ids=[c.name for c in SINGLE])
def test_deadline_passed_in_queue_is_504_and_never_reaches_the_model(
    cell: Cell, model_log: Path, running: Callable[[Server], Server]
) -> None:
    server = running(serve(cell, APP, env={"MODEL_LOG": str(model_log)}))
    wait_ready(server)
    late = request_behind_three(server, model_log)
    assert late.status_code == 504, late.text
    assert late.json()["error"]["status"] == 504
    seen = [x for e in events(model_log, model="slow") for x in e["seen"]]
    assert 77 not in seen and sorted(seen) == [LONG, LONG + 1, LONG + 2], seen


def request_behind_three(server: Server, log: Path) -> httpx.Response:
    """Three 2 s items occupy the Slow model; once it runs the first, a fourth with a 5 ms deadline queues.

    Two seconds, not Slow's usual 50 ms: on a loaded machine the fourth came
    after the first had ended, found the model idle and ran.
    """
    with ThreadPoolExecutor(4) as pool:
        blockers = [pool.submit(httpx.get, server.url + f"/api/slow?x={LONG + i}", timeout=30) for i in range(3)]
        deadline = time.monotonic() + 30
        while not events(log, model="slow"):
            assert time.monotonic() < deadline, "the Slow model never started"
            time.sleep(0.001)
        late = httpx.get(server.url + "/api/slow?x=77&timeout=0.005", timeout=30)
        assert all(b.result().status_code == 200 for b in blockers)
    return late


def test_item_errors_stay_with_their_item_and_batch_errors_map(served: Server) -> None:
    wait_ready(served)
    responses = burst(served, "/api/picky", [{"x": x} for x in (1, -2, 3, -4)], threads=4)
    assert [r.status_code for r in responses] == [200, 400, 200, 400]
    assert responses[0].json() == {"y": 2}
    assert responses[1].json() == {"error": {"status": 400, "message": "model Picky: ValueError: -2 is negative"}}
    whole = burst(served, "/api/picky", [{"x": 999}], threads=1)[0]
    assert whole.json() == {"error": {"status": 409, "message": "999 is too big"}}
    via_endpoint = httpx.get(served.url + "/api/picky?x=-1")
    assert via_endpoint.json() == {
        "error": {"status": 400, "message": "picky: model Picky: ValueError: -1 is negative"}
    }
    assert httpx.post(served.url + "/api/picky", json={"x": 4}).json() == {"y": 8}


@pytest.mark.parametrize("cell", SINGLE, ids=[c.name for c in SINGLE])
def test_readyz_says_loading_requests_wait_for_setup_and_teardown_runs_at_shutdown(
    cell: Cell, model_log: Path, running: Callable[[Server], Server]
) -> None:
    server = running(serve(cell, APP, env={"MODEL_LOG": str(model_log), "SETUP_SECONDS": "2"}))
    loading = httpx.get(server.url + "/readyz")
    assert loading.status_code == 503 and loading.headers["retry-after"] == "1"
    assert loading.json()["error"]["detail"]["models"]["SlowSetup"] == "loading"
    early = httpx.post(server.url + "/api/setup", json={"x": 1}, timeout=30)
    assert early.json() == {"y": 2}
    wait_ready(server)
    assert httpx.post(server.url + "/api/setup", json={"x": 1}).json() == {"y": 2}
    server.stop()
    assert [e["event"] for e in events(model_log, model="slow_setup")] == ["setup", "teardown"]


def test_uwsgi_a_worker_whose_model_thread_is_offered_its_signal_still_exits(
    model_log: Path, running: Callable[[Server], Server]
) -> None:
    """uWSGI runs a worker's exit on the thread that took the signal; on a model thread that exit never ends.

    A thread takes a signal sent to its process when the main thread has
    one pending already (a SIGTERM to the group, then the master's SIGINT).
    ``kill`` aimed at a thread's id offers the signal to that thread first:
    the model thread must leave it to the main thread, and the worker exits.
    """
    env = {"MODEL_LOG": str(model_log), "UTILSERVE_POOL": "thread", "HOLD_MS": "0"}
    env |= {"UTILSERVE_ACCESS_LOG": "0", "UTILSERVE_METRICS": "0"}  # no log or metrics writer: 2 threads in all
    server = running(serve(cell_named("flask@uwsgi"), "tests.apps.draining:app", env))
    wait_ready(server, in_a_row=4)
    assert httpx.get(server.url + "/api/hold?x=1").json()["y"] == 2
    worker = next(iter(server.children()))
    tasks = wait_until(lambda: len(found := os.listdir(f"/proc/{worker}/task")) == 2 and found, "only the model thread")
    model_thread = next(int(task) for task in tasks if int(task) != worker)
    os.kill(model_thread, signal.SIGINT)
    wait_until(lambda: not alive(worker), f"web worker {worker} to exit", EXIT_S)
