"""Startup hooks run once in each serving process before it serves; shutdown hooks after SIGTERM."""

from __future__ import annotations

import collections
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ..support.cells import CELLS
from ..support.processes import wait_until
from ..support.servers import Cell, Server, free_port, serve

STOPPED_BY_SIGINT = {
    "starlette@uvicorn-no-lifespan": "with --lifespan off, uvicorn ends its process at SIGTERM by raising the signal "
    "again at its default action once it has drained: no exit handler runs, so no shutdown hook; Ctrl-C exits cleanly",
}
"""Cells whose server leaves no way to run shutdown hooks at SIGTERM, and why; they are stopped with SIGINT."""


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_hooks_run_once_per_process_and_at_sigterm(
    cell: Cell, tmp_path: Path, running: Callable[[Server], Server]
) -> None:
    log = tmp_path / "hooks.log"
    server = running(serve(cell, "tests.apps.hooks:app", env={"HOOKS_LOG": str(log)}))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        pids = {client.get("/api/pid").json()["pid"] for _ in range(40)}
    server.stop(signum=signal.SIGINT if cell.name in STOPPED_BY_SIGINT else signal.SIGTERM)
    lines = [line.split() for line in log.read_text().splitlines()]
    events = collections.Counter((event, int(pid)) for event, pid in lines)
    for pid in pids:
        assert events[("startup", pid)] == 1 and events[("astartup", pid)] == 1, lines
        assert events[("ashutdown", pid)] == 1 and events[("shutdown", pid)] == 1, (lines, server.output())
    order = [event for event, pid in lines if int(pid) == min(pids)]
    assert order == ["startup", "astartup", "shutdown", "ashutdown"], lines  # shutdown in reverse order
    started = {pid for event, pid in events if event == "startup"}
    stopped = {pid for event, pid in events if event == "shutdown"}
    assert started == stopped, lines


GRANIAN = [cell for cell in CELLS if "granian" in cell.name]


@pytest.mark.parametrize("moment", ["importing", "built"])
@pytest.mark.parametrize("cell", GRANIAN, ids=[c.name for c in GRANIAN])
def test_a_granian_worker_told_to_stop_while_it_loads_the_app_exits_and_its_server_with_it(
    cell: Cell, moment: str, tmp_path: Path, running: Callable[[Server], Server]
) -> None:
    """Granian's worker inherits its master's handler until it has loaded the app: a SIGTERM then was lost.

    It now ends the worker as soon as the app is built, or at once if it comes after that.
    """
    log, claim = tmp_path / "hooks.log", tmp_path / "slow"
    claim.touch()
    env = {"HOOKS_LOG": str(log), "SLOW_TO_LOAD": str(claim), "SLOW_WHILE": moment}
    server = running(serve(cell, "tests.apps.slow_to_load:app", env=env))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        serving = client.get("/api/pid").json()["pid"]
    loading = int(wait_until(lambda: re.search(r"^loading (\d+)$", log.read_text(), re.M), "the slow worker")[1])

    returncode = server.stop(timeout=15)

    assert (returncode, server.killed) == (0, []), server.output()
    events = collections.Counter(line.split()[0] for line in log.read_text().splitlines() if str(loading) in line)
    assert events == {"loading": 1}, log.read_text()
    assert f"shutdown {serving}" in log.read_text()


SANIC = [cell for cell in CELLS if cell.backend == "sanic"]


@pytest.mark.parametrize("to", ["the group", "the workers"])
@pytest.mark.parametrize("cell", SANIC, ids=[c.name for c in SANIC])
def test_a_sanic_worker_told_to_stop_before_it_handles_signals_still_runs_its_shutdown_hooks(
    cell: Cell, to: str, tmp_path: Path, running: Callable[[Server], Server]
) -> None:
    """Sanic sets a worker's signal handlers after the startup hooks: a SIGTERM in between ended it at once.

    The SIGTERM goes to every process of the server, as systemd sends it to a service's
    processes, or to the workers alone.
    """
    log = tmp_path / "hooks.log"
    env = {"UTILSERVE_BACKEND": cell.backend, **dict(cell.env), "HOOKS_LOG": str(log)}
    port = free_port()
    server = Server(cell.command("tests.apps.sanic_signal_window:app", port), port, env)
    workers = 2
    running(server.start(probe=lambda: log.exists() and log.read_text().count("window") == workers))
    pids = {int(pid) for event, pid in (line.split() for line in log.read_text().splitlines()) if event == "window"}

    assert server.process is not None
    if to == "the group":
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(30)  # a second signal would have Sanic's manager kill its workers
    else:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        wait_until(lambda: log.read_text().count("ashutdown") == workers, "the workers' shutdown hooks", timeout=30)
    server.stop(timeout=30, grace=5)  # what is left of the server exits by itself

    lines = [line.split() for line in log.read_text().splitlines()]
    for pid in pids:
        events = [event for event, logged in lines if int(logged) == pid]
        assert events == ["startup", "astartup", "window", "shutdown", "ashutdown"], (lines, server.output())
    assert server.killed == [], server.output()
