"""What the HTTP benchmarks share: servers in a session of their own, wrk, and the report's helpers.

A server starts in a new session so that it can be found and stopped whole:
its processes are that session plus every descendant that left it (Ray's
workers, or utilserve's pool supervisor, started by a web worker), and
``Server.stop`` checks that none of them is left. Servers still running when
the bench exits are stopped then; ``exit_on_sigterm`` makes a SIGTERM exit
the same way, so an interrupted run leaves no server behind.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import http.client
import os
import platform
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
NOTES = "### Notes"

# --- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nobody listens on, so that a server never meets a leftover one."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of one request to the server on ``port``, on a connection of its own; OSError if none."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body, dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [0] state, [1] ppid, [2] pgrp, [3] session, ...

    None once the process is gone. Split after the last ")" because the command name may hold spaces.
    """
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent."""
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in "ZX"


def cmdline(pid: int) -> str:
    """The command line of ``pid``, arguments joined by spaces; "?" once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _described(pid: int) -> str:
    return f"{pid} {cmdline(pid)[:120]}"


class Stopped(NamedTuple):
    """How ``Server.stop`` went."""

    exited: bool  # the leader exited within the stop timeout after SIGTERM
    killed: list[str]  # still running a stop timeout after that: SIGKILLed ("pid command line")
    survivors: list[str]  # alive even after SIGKILL; should be []


_live: list[Server] = []


class Server:
    """A command in a session of its own; ``stop`` SIGTERMs it, then SIGKILLs whatever of it is left.

    Members are the processes of its session (Ray's workers change process
    group but keep the session) plus every descendant seen while it ran, so a
    process that left the session is still found, and still stopped.
    """

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], *, name: str, stop_timeout: float,
                 cwd: Path | str = ROOT, term_group: bool = False) -> None:
        """``stop_timeout`` is waited for the leader after SIGTERM and again for the rest; ``term_group``
        sends the SIGTERM to the leader's whole process group instead of the leader alone."""
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.stop_timeout = stop_timeout
        self.term_group = term_group
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: set[int] = set()

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        _live.append(self)

    def wait_ready(self, probe: Callable[[], str | None], timeout: float, interval: float) -> None:
        """Call ``probe`` every ``interval`` s until it returns None (ready).

        ``probe`` returns why the server is not ready yet, raises OSError while
        nothing listens, or raises RuntimeError to give up at once. Raises
        RuntimeError with the server's log if it exits or ``timeout`` passes.
        """
        assert self.process is not None
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                why = probe()
            except OSError as error:
                why = repr(error)
            if why is None:
                self.members()  # remember them now: some may leave the session before ``stop``
                return
            last = why
            time.sleep(interval)
        raise RuntimeError(f"server not ready within {timeout:g}s ({last}):\n{self.output()}")

    def members(self) -> list[int]:
        """Live (non-zombie) processes of this server; remembers them for ``stop``."""
        if self.process is None:
            return []
        leader = self.process.pid
        table = {int(entry.name): fields for entry in os.scandir("/proc")
                 if entry.name.isdigit() and (fields := proc_stat(int(entry.name))) is not None}
        found = {pid for pid, fields in table.items() if pid == leader or int(fields[3]) == leader}
        while more := {pid for pid, fields in table.items() if int(fields[1]) in found} - found:
            found |= more  # descendants that left the session
        live = sorted(pid for pid in found | (self.seen & table.keys()) if table[pid][0] not in "ZX")
        self.seen |= set(live)
        return live

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of the server's live processes."""
        ticks = 0
        for pid in self.members():
            if (fields := proc_stat(pid)) is not None:
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> Stopped:
        """SIGTERM, let the rest exit on its own (a pool supervisor drains and stops its model worker
        after its web worker is gone), SIGKILL what is left, and say what survived even that."""
        process = self.process
        if process is None:
            return Stopped(True, [], [])
        self.members()
        with contextlib.suppress(ProcessLookupError):
            if self.term_group:
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.stop_timeout)
            exited = True
        except subprocess.TimeoutExpired:
            exited = False
        deadline = time.monotonic() + self.stop_timeout
        while (left := [pid for pid in sorted(self.seen) if alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        killed = [_described(pid) for pid in left]
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        time.sleep(0.5)  # let the SIGKILLed go before looking for survivors
        survivors = [_described(pid) for pid in sorted(self.seen) if alive(pid)]
        self.process = None
        if self in _live:
            _live.remove(self)
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)
        return Stopped(exited, killed, survivors)

    def output(self) -> str:
        """The end of the server's log, for error messages."""
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]


@atexit.register
def _stop_all() -> None:
    for server in list(_live):  # noqa: PERF101 - stop() removes the server from _live
        server.stop()


def _exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Make SIGTERM exit through SystemExit, so that ``finally`` blocks and the exit hook stop the servers."""
    signal.signal(signal.SIGTERM, _exit)


# --- wrk ---------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


class WrkStats(NamedTuple):
    """What a ``wrk --latency`` report says."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx + socket errors


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(argv: list[str], timeout: float) -> WrkStats:
    """Run wrk (``argv`` with --latency) and read its report; RuntimeError with its output if it failed."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    out = done.stdout
    if done.returncode != 0 or "Requests/sec:" not in out:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{out}\n{done.stderr}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(found.group(1))
    if found := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(n) for n in found.groups())
    return WrkStats(rps, p50, p99, requests, errors)


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment for a server: the repository importable first, no .pyc written into it, plus ``extra``."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


# --- report ------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the numbers were measured on: CPUs, kernel, Python and wrk."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk_version.splitlines() or ["?"])[0].split(" Copyright")[0].strip(),
    }


def provenance(command: str, started: dt.datetime) -> list[str]:
    """A section's opening lines: the command that made it, as a code block, and when it ran."""
    return ["```", command, "```", "", f"- Date: {started.strftime('%Y-%m-%d %H:%M %Z').strip()}"]


def describe(info: dict[str, str]) -> str:
    """``machine()``'s CPUs, kernel and Python in words, for a report's "- Machine:" line."""
    return f"{info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}, Python {info['python']}"


def loadavg() -> str:
    """The 1-minute load average: how busy the machine was with other work."""
    with contextlib.suppress(OSError):
        return Path("/proc/loadavg").read_text().split()[0]
    return "?"


def versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the distributions ``names``; those not installed are left out."""
    found = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def source_state(paths: Sequence[str]) -> str:
    """The commit measured, and whether ``paths`` (folders of the repository) had uncommitted changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True,
                           text=True, check=False).stdout.strip()
    if not head:
        return "not a git checkout"
    return f"git {head}" + (" + uncommitted changes under " + " or ".join(f"{p}/" for p in paths) if dirty else "")


def _section_bounds(lines: list[str], title: str) -> tuple[int, int] | None:
    start = next((i for i, line in enumerate(lines) if line.rstrip("\r\n") == title), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return start, end


def current_notes(title: str, path: Path = BENCHMARKS) -> str:
    """The hand-written "### Notes" subsection of section ``title``, kept across runs ("" if none)."""
    if not path.exists():
        return ""
    lines = path.read_text().splitlines(keepends=True)
    bounds = _section_bounds(lines, title)
    if bounds is None:
        return ""
    body = lines[bounds[0]:bounds[1]]
    start = next((i for i, line in enumerate(body) if line.rstrip("\r\n") == NOTES), None)
    if start is None:
        return ""
    end = next((i for i in range(start + 1, len(body)) if body[i].startswith("### ")), len(body))
    return "".join(body[start:end]).rstrip("\n") + "\n"


def write_section(section: str, title: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) section ``title`` of BENCHMARKS.md; every other byte of the file stays as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if not text.startswith("# Benchmarks"):
        text = "# Benchmarks\n\n" + text
    lines = text.splitlines(keepends=True)
    bounds = _section_bounds(lines, title)
    if bounds is None:
        head = text if text.endswith("\n") else text + "\n"
        new = head + ("" if head.endswith("\n\n") else "\n") + section
    else:
        start, end = bounds
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    path.write_text(new)
