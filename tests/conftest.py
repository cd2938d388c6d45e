"""Fixtures shared by the test areas: real servers, and the log and processes of the pool tests' models;
and the end-of-run summary of what the tools written by others counted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import httpx
import pytest

from .support import tally
from .support.browser import REPORTS
from .support.browser import browser as browser
from .support.network import enter_private_network
from .support.processes import Processes
from .support.servers import Server

logging.getLogger("utilserve.access").addHandler(logging.NullHandler())
"""Services built in this process log their requests nowhere; the servers that tests start keep their own."""


NETWORK = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Run in a network namespace of the run's own, loopback only, where this machine allows one (CI must)."""
    why_not = enter_private_network()
    if why_not is not None and os.environ.get("CI"):
        raise pytest.UsageError(f"CI runs the tests in a private network namespace, which failed: {why_not}")
    config.stash[NETWORK] = "a private namespace, loopback only" if why_not is None else f"the host's ({why_not})"


def pytest_report_header(config: pytest.Config) -> str:
    return f"network: {config.stash[NETWORK]}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The counts of the tools written by others (schemathesis, wsgiref's validator), for the issue notes to quote."""
    terminalreporter.write_line(f"network: {terminalreporter.config.stash[NETWORK]}")
    counted = tally.lines()
    if counted:
        terminalreporter.section("tools written by others")
        for line in counted:
            terminalreporter.write_line(line)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, for fixtures that save what a failed test saw (``browser``)."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


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
