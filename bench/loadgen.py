"""wrk against a server: its report, and the CPU that the server, wrk and the rest of the machine spent meanwhile."""

import os
import re
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import Server

_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True)
class Load:
    """One wrk run: what ``wrk --latency`` reports, and the CPU seconds spent during it."""

    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx answers + socket errors
    ended_at: float  # wall clock
    wall_s: float
    server_cpu_s: float
    wrk_cpu_s: float
    machine_cpu_s: float  # every CPU of the machine: the server's, wrk's and other work's

    @property
    def server_us_per_request(self) -> float:
        return self.server_cpu_s / max(self.requests, 1) * 1e6

    @property
    def server_cpu(self) -> float:
        """CPU seconds per wall second, as the next two: 1.0 is one CPU busy."""
        return self.server_cpu_s / self.wall_s

    @property
    def wrk_cpu(self) -> float:
        return self.wrk_cpu_s / self.wall_s

    @property
    def other_cpu(self) -> float:
        """The rest of the machine: other work, and the bench itself."""
        return max(0.0, self.machine_cpu_s / self.wall_s - self.server_cpu - self.wrk_cpu)


def run(
    server: Server,
    path: str,
    connections: int,
    duration: int,
    timeout: int,
    script: Path | None = None,
    cpus: str | None = None,
) -> Load:
    """``wrk --latency`` for ``duration`` whole seconds, on ``cpus`` only if given; RuntimeError if it failed."""
    argv = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        f"--timeout={timeout}s",
        *(["-s", str(script)] if script else []),
        server.url + path,
    ]
    server_cpu, machine_cpu = server.cpu_seconds(), _machine_cpu_seconds()
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    done = subprocess.run(
        (["taskset", "-c", cpus] if cpus else []) + argv,
        capture_output=True,
        text=True,
        timeout=duration + timeout + 30,
        check=False,
    )
    wall, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or "Requests/sec:" not in done.stdout:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def find(pattern: str) -> tuple[str, ...]:
        if (match := re.search(pattern, done.stdout, re.MULTILINE)) is None:
            raise RuntimeError(f"no {pattern!r} in wrk's report:\n{done.stdout}")
        return match.groups()

    def latency_ms(percentile: int) -> float:
        number, unit = find(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m|h)$")
        return float(number) * _MS[unit]

    errors = re.findall(r"(?:Non-2xx or 3xx responses:|connect|read|write|timeout) (\d+)", done.stdout)
    return Load(
        connections=connections,
        rps=float(find(r"Requests/sec:\s+([\d.]+)")[0]),
        p50_ms=latency_ms(50),
        p99_ms=latency_ms(99),
        requests=int(find(r"(\d+) requests in")[0]),
        errors=sum(map(int, errors)),
        ended_at=time.time(),
        wall_s=wall,
        server_cpu_s=server.cpu_seconds() - server_cpu,
        wrk_cpu_s=after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        machine_cpu_s=_machine_cpu_seconds() - machine_cpu,
    )


def _machine_cpu_seconds() -> float:
    """Busy (not idle, not iowait) CPU seconds of the whole machine since boot, from /proc/stat."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]  # user .. steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
