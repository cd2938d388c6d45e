"""Real servers for tests and benchmarks: started on a free loopback port, stopped with nothing left behind.

A server runs in a session of its own. Its processes are that session plus
every descendant that left it (Ray's workers change session, a pool
supervisor may), so ``Server.stop`` finds and stops all of them. Servers
still running when Python exits are stopped then.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PER_SERVER = ("PROMETHEUS_MULTIPROC_DIR", "UTILSERVE_METRICS")
"""Set in this process by the services that tests build in it; each server picks its own."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """Status and body of one request on a connection of its own; OSError while nothing listens."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body, dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def cmdline(pid: int) -> str:
    """The command line of ``pid``, arguments joined by spaces; "?" once it is gone."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return "?"


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name, which may hold spaces: [0] state, [1] ppid, [3] session, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in "ZX"


@dataclass(frozen=True)
class Cell:
    """One backend under one real server; ``argv`` may use {python} {bin} {app} {module} {port}."""

    name: str
    backend: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def command(self, app: str, port: int) -> list[str]:
        module = app.partition(":")[0]
        values = {
            "python": sys.executable,
            "bin": str(BIN),
            "app": app,
            "module": module,
            "port": str(port),
            "prefix": sys.prefix,
        }
        return [part.format(**values) for part in self.argv]


class Server:
    """A server process on 127.0.0.1 in a session of its own; ``url`` is its base address."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str] | None = None, cwd: Path | str = ROOT) -> None:
        self.argv = argv
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.cwd = cwd
        self.log = tempfile.NamedTemporaryFile(prefix="utilserve-server-", suffix=".log", delete=False)  # noqa: SIM115 - open while the server writes to it
        inherited = {name: value for name, value in os.environ.items() if name not in PER_SERVER}
        self.env = {**inherited, "PYTHONPATH": str(ROOT), **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: set[int] = set()
        self.killed: list[str] = []  # what the last stop had to SIGKILL, as "pid command line"
        self.survivors: list[str] = []  # what was alive even after that

    def start(self, timeout: float = 60.0, probe: str | Callable[[], bool] = "/livez") -> Server:
        """Start, and return once ``probe`` (a path answering 200, or a callable returning True) says ready.

        A callable may raise OSError while nothing listens; any other exception gives up at once.
        """
        self.process = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _running.add(self)
        ready = probe if callable(probe) else lambda: request(self.port, "GET", probe, timeout=2)[0] == 200
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(OSError):
                if ready():
                    self.members()  # remember them now: some may leave the session before ``stop``
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready within {timeout}s:\n{self.output()}")

    def members(self) -> list[int]:
        """Live processes of the server: its session, their descendants, and every one seen before."""
        if self.process is None:
            return []
        table = {
            int(entry.name): fields
            for entry in os.scandir("/proc")
            if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None
        }
        found = {pid for pid, fields in table.items() if int(fields[3]) == self.process.pid} | {self.process.pid}
        while more := {pid for pid, fields in table.items() if int(fields[1]) in found} - found:
            found |= more
        live = sorted(pid for pid in (found | self.seen) & table.keys() if table[pid][0] not in "ZX")
        self.seen.update(live)
        return live

    def children(self) -> set[int]:
        """Live processes whose parent is the server's first process (a gunicorn master's workers)."""
        assert self.process is not None
        return {pid for pid in self.members() if (fields := _stat(pid)) and int(fields[1]) == self.process.pid}

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the server's live processes."""
        ticks = sum(int(fields[11]) + int(fields[12]) for pid in self.members() if (fields := _stat(pid)))
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 20.0, grace: float = 0.0, signum: int = signal.SIGTERM) -> int | None:
        """Signal the server (SIGTERM) and wait up to ``timeout`` for it; give the rest of its processes ``grace``
        seconds to exit on their own, then SIGKILL whatever is left."""
        if self.process is None:
            return None
        self.members()
        if self.process.poll() is None:
            self.process.send_signal(signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        deadline = time.monotonic() + grace
        while (left := [pid for pid in sorted(self.seen) if _alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.killed = [f"{pid} {cmdline(pid)[:120]}" for pid in left]
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + 1.0
        while (left := [pid for pid in left if _alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.survivors = [f"{pid} {cmdline(pid)[:120]}" for pid in left]
        self.seen.clear()  # all gone: their numbers may go to other processes from now on
        _running.discard(self)
        return self.process.returncode

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-20000:]


_running: set[Server] = set()


@atexit.register
def _stop_running() -> None:
    for server in list(_running):
        server.stop()


def exit_on_sigterm() -> None:
    """Make SIGTERM exit through SystemExit, so that ``finally`` blocks and the exit hook stop the servers."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def serve(cell: Cell, app: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    cell_env = {"UTILSERVE_BACKEND": cell.backend, **dict(cell.env), **(env or {})}
    return Server(cell.command(app, port), port, cell_env).start()


class CellServers:
    """One server of ``app`` per cell, started when a test first asks for it; :meth:`stop` ends them all."""

    def __init__(self, app: str) -> None:
        self.app = app
        self.started: dict[str, Server] = {}

    def __call__(self, cell: Cell) -> Server:
        if cell.name not in self.started:
            self.started[cell.name] = serve(cell, self.app)
        return self.started[cell.name]

    def stop(self) -> None:
        for server in self.started.values():
            server.stop()
