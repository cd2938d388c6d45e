"""Startup hooks run once in each serving process before it serves; shutdown hooks after SIGTERM."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ..support.cells import CELLS
from ..support.servers import Cell, Server, serve


@pytest.mark.parametrize("cell", CELLS, ids=[c.name for c in CELLS])
def test_hooks_run_once_per_process_and_at_sigterm(
    cell: Cell, tmp_path: Path, running: Callable[[Server], Server]
) -> None:
    log = tmp_path / "hooks.log"
    server = running(serve(cell, "tests.apps.hooks:app", env={"HOOKS_LOG": str(log)}))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        pids = {client.get("/api/pid").json()["pid"] for _ in range(40)}
    server.stop()
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
