"""Real servers for tests: started on a free loopback port, stopped by the fixture."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Cell:
    """One backend under one real server; ``argv`` may use {python} {bin} {app} {module} {port}."""

    name: str
    backend: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def command(self, app: str, port: int) -> list[str]:
        module = app.partition(":")[0]
        values = {"python": sys.executable, "bin": str(BIN), "app": app, "module": module, "port": str(port),
                  "prefix": sys.prefix}
        return [part.format(**values) for part in self.argv]


class Server:
    """A server process on 127.0.0.1; ``url`` is its base address."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile(prefix="utilserve-server-", suffix=".log", delete=False)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0, probe: str = "/livez") -> Server:
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", probe)
                if connection.getresponse().status == 200:
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer {probe} within {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the server, wait for it, and make sure nothing of its group is left."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-20000:]


def serve(cell: Cell, app: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    cell_env = {"UTILSERVE_BACKEND": cell.backend, **dict(cell.env), **(env or {})}
    return Server(cell.command(app, port), port, cell_env).start()
