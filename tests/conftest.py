"""Fixtures shared by the test areas: real servers, and the log and processes of the pool tests' models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .support.processes import Processes
from .support.servers import Server


@pytest.fixture
def running() -> Iterator[Callable[[Server], Server]]:
    """Hand it a started server, ``running(serve(cell, app))``: if still running when the test ends, it is stopped."""
    started: list[Server] = []

    def own(server: Server) -> Server:
        started.append(server)
        return server

    yield own
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(start_server: Callable[[], Server]) -> Iterator[Server]:
    """One server for all the tests of a module, which says what it serves with a ``start_server`` fixture."""
    started = start_server()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    """A client of the module's server."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def model_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The log the models keep: ``$MODEL_LOG`` here and in every process the test starts."""
    path = tmp_path / "model.log"
    monkeypatch.setenv("MODEL_LOG", str(path))
    return path


@pytest.fixture
def processes(model_log: Path) -> Iterator[Processes]:
    """The processes the test saw; any still alive when it ends are killed."""
    seen = Processes(model_log)
    yield seen
    seen.kill_leftovers()
