"""A service's life on real servers: no cold-start 503s, and a SIGTERM that answers every request in flight.

Each pre-fork worker starts its service as it starts, and requests wait for
loading models; at SIGTERM, accepted requests are answered, the pool drains
and the shutdown hooks run.
"""

from __future__ import annotations

import collections
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ..support.cells import cell_named
from ..support.models.log import events
from ..support.pool_over_http import assert_sigterm_drains, burst, wait_ready
from ..support.processes import wait_until
from ..support.servers import BIN, Cell, Server, free_port, serve

APP = "tests.apps.cold_start:app"
SETUP_SECONDS = "2"
GUNICORN = ("-m", "gunicorn", "-b", "127.0.0.1:{port}", "-w", "4", "--graceful-timeout", "5")
UWSGI = (
    "--http11-socket",
    "127.0.0.1:{port}",
    "--master",
    "--processes",
    "4",
    "--threads",
    "8",
    "--need-app",
    "--die-on-term",
    "--disable-logging",
    "--module",
    APP,
)
SERVERS = {
    "gunicorn-sync": ("python", (*GUNICORN, APP)),
    "gunicorn-preload": ("python", (*GUNICORN, "--preload", APP)),
    "gunicorn-gthread": ("python", (*GUNICORN, "-k", "gthread", "--threads", "8", APP)),
    "uwsgi": ("uwsgi", UWSGI),
    "uwsgi-lazy-apps": ("uwsgi", (*UWSGI, "--lazy-apps")),
}


def accepting(port: int) -> Callable[[], bool]:
    """Ready as soon as the port accepts a connection: the burst must not wait for any worker."""

    def probe() -> bool:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True

    return probe


def start(server: str, pool: str, model_log: Path, *extra: str) -> Server:
    program, arguments = SERVERS[server]
    port = free_port()
    executable = str(BIN / program) if program == "uwsgi" else str(BIN / "python")
    argv = [executable, *(part.format(port=port) for part in arguments), *extra]
    env = {"UTILSERVE_POOL": pool, "SETUP_SECONDS": SETUP_SECONDS, "MODEL_LOG": str(model_log)}
    return Server(argv, port, env).start(probe=accepting(port))


@pytest.mark.parametrize("pool", ["thread", "process"])
@pytest.mark.parametrize("server", list(SERVERS))
def test_a_burst_at_boot_gets_only_200s(
    server: str, pool: str, model_log: Path, running: Callable[[Server], Server]
) -> None:
    """400 requests at concurrency 64, sent as the port opens, while every model still takes 2 s to load."""
    served = running(start(server, pool, model_log))
    answers = burst(served, "/setup", [{"x": i} for i in range(400)], threads=64)
    statuses = collections.Counter(answer.status_code for answer in answers)
    assert statuses == {200: 400}, (statuses, served.output())
    assert all(answer.json() == {"y": 2 * i} for i, answer in enumerate(answers))
    loaders = collections.Counter(event["pid"] for event in events(model_log, event="setup"))
    expected = 4 if pool == "thread" else 1  # a model per web worker, or one model that they all share
    assert len(loaders) == expected and set(loaders.values()) == {1}, loaders


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_workers_recycled_by_max_requests_start_before_their_first_request(
    pool: str, model_log: Path, running: Callable[[Server], Server]
) -> None:
    """gunicorn replaces each worker after 50 requests: its successor loads while the burst goes on."""
    served = running(start("gunicorn-sync", pool, model_log, "--max-requests", "50"))
    answers = burst(served, "/setup", [{"x": i} for i in range(400)], threads=64)
    statuses = collections.Counter(answer.status_code for answer in answers)
    assert statuses == {200: 400}, (statuses, served.output())
    if pool == "thread":
        loaders = {event["pid"] for event in events(model_log, event="setup")}
        assert len(loaders) > 4, f"no worker was recycled: {loaders}"


@pytest.mark.parametrize("server", list(SERVERS))
def test_every_worker_loads_its_models_before_any_request(
    server: str, model_log: Path, running: Callable[[Server], Server]
) -> None:
    """The startup hooks and models of each of the 4 workers start with the worker, not at its first request."""
    running(start(server, "thread", model_log))
    wait_until(lambda: len(events(model_log, event="setup")) == 4, "4 workers loading their model", timeout=30)
    assert len({event["pid"] for event in events(model_log, event="setup")}) == 4


NO_LIFESPAN = [cell_named("starlette@uvicorn-no-lifespan"), cell_named("django-asgi@daphne")]


@pytest.mark.parametrize("cell", NO_LIFESPAN, ids=[cell.name for cell in NO_LIFESPAN])
def test_a_service_starts_at_its_first_request_where_the_server_sends_no_lifespan(
    cell: Cell, running: Callable[[Server], Server]
) -> None:
    """These servers never send lifespan's startup: the first request starts the hooks and the models."""
    server = running(serve(cell, "examples.batched:app"))
    wait_ready(server)
    assert httpx.post(server.url + "/double", json={"x": 2}).json() == {"y": 4.0}


DRAINING = [
    cell_named(name)
    for name in (
        "tornado@tornado",
        "sanic@sanic",
        "starlette@uvicorn",
        "starlette@hypercorn",
        "flask@gunicorn",
        "flask@uwsgi",
    )
]


DRAINING_POOLS = [(cell, "thread") for cell in DRAINING] + [
    (cell_named(name), "process") for name in ("flask@gunicorn", "flask@uwsgi")
]


@pytest.mark.parametrize(("cell", "pool"), DRAINING_POOLS, ids=[f"{cell.name}-{pool}" for cell, pool in DRAINING_POOLS])
def test_sigterm_answers_every_request_in_flight_and_runs_the_shutdown_hook(
    cell: Cell, pool: str, model_log: Path, running: Callable[[Server], Server]
) -> None:
    """16 requests that each hold the model for a second are in flight when the server gets SIGTERM."""
    server = running(serve(cell, "tests.apps.draining:app", env={"UTILSERVE_POOL": pool}))
    wait_ready(server, in_a_row=4)
    assert_sigterm_drains(server, model_log)
