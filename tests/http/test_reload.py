"""`utilserve run --reload`: an edit to the service module is served after the restart, with no child left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ..support.servers import ROOT, Server, free_port, request

SERVICE = """
from utilserve import API, Service, api


class RootAPI(API):
    @api.get
    def version(self) -> str:
        return "{answer}"


service = Service(__name__, name="reloaded", backend="{backend}", api=RootAPI, route="/api")
"""


def _answer(port: int) -> bytes | None:
    try:
        status, body = request(port, "GET", "/api/version", timeout=2)
    except OSError:
        return None
    return body if status == 200 else None


def _served(port: int, expected: bytes, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answer(port) == expected:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("backend", ["flask", "starlette"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_edit_is_served_after_the_restart(
    backend: str, signum: int, tmp_path: Path, running: Callable[[Server], Server]
) -> None:
    module = tmp_path / "reloaded.py"
    module.write_text(SERVICE.format(answer="first", backend=backend))
    port = free_port()
    argv = [sys.executable, "-m", "utilserve", "run", "reloaded:service", "--reload", "--port", str(port)]
    server = running(Server(argv, port, cwd=tmp_path).start())
    assert _answer(port) == b"first"
    (first_child,) = server.children()

    module.write_text(SERVICE.format(answer="second", backend=backend))
    assert _served(port, b"second"), server.output()
    (second_child,) = server.children()
    assert second_child != first_child

    assert server.stop(signum=signum) == 0
    assert server.killed == [], server.output()


def test_reload_options_are_checked(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "utilserve", "run", "reloaded:service"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    alone = subprocess.run([*run, "--reload-dir", "."], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert alone.returncode != 0 and "--reload-dir needs --reload" in alone.stderr
    missing = tmp_path / "missing"
    absent = subprocess.run(
        [*run, "--reload", "--reload-dir", str(missing)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert absent.returncode != 0 and f"--reload-dir {missing} is not a directory" in absent.stderr
