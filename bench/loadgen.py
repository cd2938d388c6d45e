"""A server, and wrk against it: wrk's report, and the CPU that the server, wrk and the rest of the machine spent."""

import itertools
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import BIN, ROOT, Server, free_port

UVICORN = (
    "{python} -m uvicorn {app} --host 127.0.0.1 --port {port} --no-access-log --loop uvloop --http httptools "
    "--log-level warning"
)
FAILED = (RuntimeError, ValueError, subprocess.TimeoutExpired)  # a server that failed to start or to serve
_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True)
class Load:
    """One wrk run: what ``wrk --latency`` reports, and the CPU spent during it."""

    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx answers + socket errors
    ended_at: float  # wall clock
    wall_s: float
    server_us_per_request: float  # the server's CPU time per request
    server_cpu: float  # CPU seconds per wall second, as the next two: 1.0 is one CPU busy
    wrk_cpu: float
    other_cpu: float  # the rest of the machine: other work, and the bench itself

    def summary(self) -> str:
        """One line for the console."""
        return (
            f"{self.rps:8.0f} req/s  p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:7.2f} ms  "
            f"CPU server {self.server_cpu:.2f} ({self.server_us_per_request:.0f} µs/req) "
            f"wrk {self.wrk_cpu:.2f} other {self.other_cpu:.2f}" + (f"  {self.errors} ERRORS" if self.errors else "")
        )


def server(command: str, app: str = "", cwd: Path | str = ROOT) -> Server:
    """A server on a free port: ``command`` is ``NAME=value ... argv``, with {python}, {bin} (the folder of this
    Python's programs), {prefix} (its environment), {root}, {port} and {app} filled in."""
    port = free_port()
    values = {"python": sys.executable, "bin": BIN, "prefix": sys.prefix, "root": ROOT, "port": port, "app": app}
    words = [word.format(**values) for word in command.split()]
    assignments = list(itertools.takewhile(lambda word: "=" in word, words))
    return Server(words[len(assignments) :], port, dict(word.split("=", 1) for word in assignments), cwd)


def run(server: Server, path: str, n: int, duration: int, timeout: int, script: str = "", cpus: str = "") -> Load:
    """``wrk --latency`` with ``n`` connections for ``duration`` whole seconds, on ``cpus`` only if given, with the Lua
    ``script`` if given; RuntimeError if it failed."""
    taskset = f"taskset -c {cpus} " if cpus else ""
    argv = f"{taskset}wrk -t{min(2, n)} -c{n} -d{duration}s --latency --timeout={timeout}s".split()
    argv += ["-s", script] if script else []
    server_cpu, machine_cpu = server.cpu_seconds(), _machine_cpu_seconds()
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    done = subprocess.run(
        [*argv, server.url + path], capture_output=True, text=True, timeout=duration + timeout + 30, check=False
    )
    wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or "Requests/sec:" not in done.stdout:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def find(pattern: str) -> tuple[str, ...]:
        if (match := re.search(pattern, done.stdout, re.MULTILINE)) is None:
            raise RuntimeError(f"no {pattern!r} in wrk's report:\n{done.stdout}")
        return match.groups()

    def latency_ms(percentile: int) -> float:
        number, unit = find(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m|h)[ \t]*$")
        return float(number) * _MS[unit]

    errors = re.findall(r"(?:Non-2xx or 3xx responses:|connect|read|write|timeout) (\d+)", done.stdout)
    server_s, requests = server.cpu_seconds() - server_cpu, int(find(r"(\d+) requests in")[0])
    wrk_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Load(
        connections=n,
        rps=float(find(r"Requests/sec:\s+([\d.]+)")[0]),
        p50_ms=latency_ms(50),
        p99_ms=latency_ms(99),
        errors=sum(map(int, errors)),
        ended_at=time.time(),
        wall_s=wall,
        server_us_per_request=server_s / max(requests, 1) * 1e6,
        server_cpu=server_s / wall,
        wrk_cpu=wrk_s / wall,
        other_cpu=max(0.0, (_machine_cpu_seconds() - machine_cpu - server_s - wrk_s) / wall),
    )


def _machine_cpu_seconds() -> float:
    """Busy (not idle, not iowait) CPU seconds of the whole machine since boot, from /proc/stat."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]  # user .. steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
