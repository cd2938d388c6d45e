"""Adapter overhead: utilserve hello-world vs each framework's native hello-world.

    python -m bench.overhead [--backends flask,starlette,...] [--duration 5] [--runs 3] [--connections 64]

For every backend whose adapter module ``utilserve/backends/<name>.py``
exists, both apps answer ``GET /hello`` with ``{"message": "hello world"}``
under the same server, process count and flags.  They are served in turn
(one server alive at a time, a fresh process per run), alternating which goes
first, and loaded with ``wrk -t2 -c<connections> -d<duration>s --latency``.
The medians over the runs go into the "## Adapter overhead" section of
BENCHMARKS.md (only that section is rewritten) and the raw numbers into
bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import http.client
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
RESULTS = ROOT / "bench" / "results"
SECTION = "## Adapter overhead"
EXPECTED = {"message": "hello world"}
TARGET_RATIO = 0.90
HOST = "127.0.0.1"

# --- servers: the same argv for the native and the utilserve app of a row ----------------------

UVICORN = (
    "{python}",
    "-m",
    "uvicorn",
    "{app}",
    "--host",
    HOST,
    "--port",
    "{port}",
    "--no-access-log",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--log-level",
    "warning",
)
GUNICORN = (
    "{python}",
    "-m",
    "gunicorn",
    "-k",
    "gthread",
    "-w",
    "1",
    "--threads",
    "8",
    "-b",
    HOST + ":{port}",
    "--graceful-timeout",
    "5",
    "--log-level",
    "warning",
    "{app}",
)
SANIC = (
    "{python}",
    "-m",
    "sanic",
    "{app}",
    "--host",
    HOST,
    "--port",
    "{port}",
    "--single-process",
    "--no-access-logs",
    "--no-motd",
)
TORNADO = ("{python}", "-m", "bench.apps.tornado_server", "{app}", "--host", HOST, "--port", "{port}")

SERVERS = {  # key: (argv template, name in the table)
    "uvicorn": (UVICORN, "uvicorn"),
    "gunicorn": (GUNICORN, "gunicorn gthread"),
    "sanic": (SANIC, "sanic"),
    "tornado": (TORNADO, "tornado"),
}

US_APP = "bench.apps.us_hello:app"


@dataclass(frozen=True)
class Variant:
    """One table row: a backend under one server, its native app and the utilserve app."""

    backend: str  # adapter module name: utilserve/backends/<backend>.py
    label: str
    server: str  # key of SERVERS
    native: str  # module:attribute
    endpoint: str  # "sync" or "async", for both apps
    env: tuple[tuple[str, str], ...] = ()


VARIANTS = [
    Variant("starlette", "starlette", "uvicorn", "bench.apps.native_starlette:app", "async"),
    Variant("fastapi", "fastapi", "uvicorn", "bench.apps.native_fastapi:app", "async"),
    Variant("flask", "flask", "gunicorn", "bench.apps.native_flask:app", "sync"),
    Variant(
        "django",
        "django-wsgi",
        "gunicorn",
        "bench.apps.native_django:wsgi_app",
        "sync",
        (("UTILSERVE_ASYNCHRONOUS", "0"),),
    ),
    Variant(
        "django",
        "django-asgi",
        "uvicorn",
        "bench.apps.native_django:asgi_app",
        "async",
        (("UTILSERVE_ASYNCHRONOUS", "1"),),
    ),
    Variant(
        "falcon",
        "falcon-wsgi",
        "gunicorn",
        "bench.apps.native_falcon:wsgi_app",
        "sync",
        (("UTILSERVE_ASYNCHRONOUS", "0"),),
    ),
    Variant(
        "falcon",
        "falcon-asgi",
        "uvicorn",
        "bench.apps.native_falcon:asgi_app",
        "async",
        (("UTILSERVE_ASYNCHRONOUS", "1"),),
    ),
    Variant("sanic", "sanic", "sanic", "bench.apps.native_sanic:app", "async"),
    Variant("tornado", "tornado", "tornado", "bench.apps.native_tornado:app", "async"),
]
BACKENDS = list(dict.fromkeys(v.backend for v in VARIANTS))
LIBRARIES = [
    "utilserve",
    "starlette",
    "fastapi",
    "Flask",
    "Werkzeug",
    "Django",
    "falcon",
    "sanic",
    "tornado",
    "uvicorn",
    "gunicorn",
    "httptools",
    "uvloop",
    "pydantic",
    "pydantic_core",
]


def adapter_present(backend: str) -> bool:
    """The adapter module exists and its framework is installed (the module names match the backend names)."""
    return (ROOT / "utilserve" / "backends" / f"{backend}.py").is_file() and importlib.util.find_spec(backend) is not None


# --- processes -------------------------------------------------------------------------------------

_live: list[Server] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """One server process in its own session; ``stop`` ends the whole group (SIGTERM, then SIGKILL)."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str], cpus: str | None) -> None:
        self.argv = (["taskset", "-c", cpus] if cpus else []) + argv
        self.port = port
        self.env = env
        self.log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float) -> None:
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        _live.append(self)
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                status, body = get(self.port, "/hello")
            except OSError as error:
                last = repr(error)
                time.sleep(0.1)
                continue
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if status == 200 and payload == EXPECTED:
                return
            raise RuntimeError(f"GET /hello answered {status} {body[:300]!r}, expected 200 {EXPECTED}\n{self.output()}")
        raise RuntimeError(f"server not ready within {timeout}s ({last}):\n{self.output()}")

    def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):  # workers, or anything else left in the group
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self.process = None
        if self in _live:
            _live.remove(self)
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the live processes of this server's process group."""
        if self.process is None:
            return 0.0
        ticks = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.process.pid:  # pgrp: the server leads its own session and group
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@atexit.register
def _stop_all() -> None:
    for server in list(_live):  # noqa: PERF101 - stop() removes the server from _live
        server.stop(timeout=5)


def _on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


# --- wrk ---------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx + socket errors
    cpu_us: float = 0.0  # server CPU time (user + system, whole process group) per request, microseconds


def wrk(port: int, threads: int, connections: int, duration: float, timeout: float, cpus: str | None) -> Load:
    argv = (["taskset", "-c", cpus] if cpus else []) + [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        f"--timeout={timeout:g}s",
        f"http://{HOST}:{port}/hello",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + timeout + 30, check=False)
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
    return Load(rps, p50, p99, requests, errors)


# --- the benchmark -----------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    backend: str
    server: str
    endpoint: str
    native: list[Load] = field(default_factory=list)
    utilserve: list[Load] = field(default_factory=list)
    error: str | None = None

    def median(self, side: str, metric: str) -> float:
        return statistics.median(getattr(load, metric) for load in getattr(self, side))

    @property
    def ratio(self) -> float:
        """Median utilserve req/s over median native req/s: the headline number."""
        return self.median("utilserve", "rps") / self.median("native", "rps")

    @property
    def paired_ratio(self) -> float:
        """Median over runs of utilserve/native req/s within one run (the two loads are back to back)."""
        return statistics.median(u.rps / n.rps for n, u in zip(self.native, self.utilserve))

    @property
    def cpu_ratio(self) -> float:
        """Native over utilserve server CPU per request: throughput ratio on an otherwise idle core."""
        return self.median("native", "cpu_us") / self.median("utilserve", "cpu_us")


def measure(variant: Variant, args: argparse.Namespace) -> Row:
    row = Row(variant.label, variant.backend, variant.server, variant.endpoint)
    template, _ = SERVERS[variant.server]
    base_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONDONTWRITEBYTECODE": "1",
        "UTILSERVE_BACKEND": variant.backend,
        "BENCH_ENDPOINT": variant.endpoint,
        **dict(variant.env),
    }
    apps = {"native": variant.native, "utilserve": US_APP}
    for run in range(args.runs):
        order = ["native", "utilserve"] if run % 2 == 0 else ["utilserve", "native"]
        for side in order:
            port = free_port()
            argv = [part.format(python=sys.executable, app=apps[side], port=port) for part in template]
            server = Server(argv, port, base_env, args.server_cpus)
            try:
                server.start(args.start_timeout)
                if args.warmup > 0:
                    wrk(port, 2, args.connections, args.warmup, args.wrk_timeout, args.wrk_cpus)
                cpu = server.cpu_seconds()
                load = wrk(port, 2, args.connections, args.duration, args.wrk_timeout, args.wrk_cpus)
                load.cpu_us = (server.cpu_seconds() - cpu) / max(load.requests, 1) * 1e6
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                row.error = f"{side}: {str(error).strip()}"
                print(f"  {variant.label} {side}: FAILED\n{error}", file=sys.stderr, flush=True)
                return row
            finally:
                server.stop()
            getattr(row, side).append(load)
            note = f", {load.errors} errors" if load.errors else ""
            print(
                f"  {variant.label:12} run {run + 1}/{args.runs} {side:9} {load.rps:10.0f} req/s  "
                f"p50 {load.p50_ms:.2f} ms  p99 {load.p99_ms:.2f} ms  server CPU {load.cpu_us:.0f} us/req{note}",
                flush=True,
            )
            if load.errors:
                row.error = f"{side}: wrk saw {load.errors} non-2xx/socket errors"
    return row


# --- report ------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
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


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/loadavg").read_text().split()[0]
    return "?"


def source_state() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "utilserve"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    if not head:
        return "not a git checkout"
    return f"git {head}" + (" + uncommitted changes under utilserve/" if dirty else "")


def versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    if "utilserve" not in found:
        import utilserve

        found["utilserve"] = f"{utilserve.__version__} (source tree)"
    return found


def command_line(args: argparse.Namespace) -> str:
    parts = [
        "python",
        "-m",
        "bench.overhead",
        "--backends",
        ",".join(args.backends),
        "--duration",
        f"{args.duration:g}",
        "--runs",
        str(args.runs),
        "--connections",
        str(args.connections),
    ]
    if args.warmup != 1:
        parts += ["--warmup", f"{args.warmup:g}"]
    if not args.pin:
        parts += ["--no-pin"]
    return shlex.join(parts)


def render(
    rows: list[Row], skipped: list[str], args: argparse.Namespace, started: dt.datetime, load: tuple[str, str]
) -> str:
    info = machine()
    lines = [
        SECTION,
        "",
        "utilserve hello-world (`bench/apps/us_hello.py`) against the same framework's native hello-world "
        '(`bench/apps/native_*.py`), both answering `GET /hello` with `{"message": "hello world"}`, '
        "under the same server, process count and flags, one server at a time, a fresh process per run, "
        "alternating which app goes first. Load: "
        f"`wrk -t2 -c{args.connections} -d{args.duration:g}s --latency --timeout {args.wrk_timeout}s`"
        + (f" after a {args.warmup:g} s warm-up load; " if args.warmup else " (no warm-up); ")
        + f"medians of {args.runs} runs. Endpoints are `async def` on async servers and `def` on WSGI ones, "
        "in both apps.",
        "",
        "```",
        command_line(args),
        "```",
        "",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M %Z').strip()}",
        (
            f"- Machine: {info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}, Python {info['python']}, "
            f"{info['wrk']}"
        ),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"- utilserve source: {source_state()}",
        (
            f"- 1-minute load average at start / end: {load[0]} / {load[1]} (other work on the machine adds noise; "
            "the order alternates and medians are taken to even it out)"
        ),
        "- One server process (WSGI: one gunicorn gthread worker with 8 threads) so that a core is left to wrk"
        + (
            f"; server pinned to CPU {args.server_cpus} and wrk to CPU {args.wrk_cpus} (`taskset`)."
            if args.pin
            else "; no CPU pinning."
        ),
        (
            "- Servers, the same argv for both apps of a row (`{app}` is the row's native app, listed with the "
            "per-run numbers below, or `bench.apps.us_hello:app`):"
        ),
        *(
            f"  - {name}: `{' '.join(template).replace('{python}', 'python')}`"
            for name, template in (
                (SERVERS[key][1], SERVERS[key][0]) for key in dict.fromkeys(row.server for row in rows)
            )
        ),
        "",
        (
            "| backend | server | native req/s | utilserve req/s | ratio | p50 native / utilserve (ms) "
            "| p99 native / utilserve (ms) | paired ratio | server CPU µs/req native / utilserve | CPU ratio |"
        ),
        "|---|---|---:|---:|---:|---|---|---:|---|---:|",
    ]
    below = []
    for row in rows:
        server = SERVERS[row.server][1]
        if not row.native or not row.utilserve:
            lines.append(f"| {row.label} | {server} | - | - | - | failed: see below | | | | |")
            continue
        ratio = row.ratio  # judged unrounded: 0.897 shows as 0.90 but misses the target
        mark = "" if ratio >= TARGET_RATIO else " ⚠"
        if ratio < TARGET_RATIO:
            below.append(row.label)
        lines.append(
            f"| {row.label} | {server} | {row.median('native', 'rps'):,.0f} | {row.median('utilserve', 'rps'):,.0f} "
            f"| **{ratio:.2f}**{mark} | {row.median('native', 'p50_ms'):.2f} / {row.median('utilserve', 'p50_ms'):.2f} "
            f"| {row.median('native', 'p99_ms'):.2f} / {row.median('utilserve', 'p99_ms'):.2f} "
            f"| {row.paired_ratio:.2f} | {row.median('native', 'cpu_us'):.0f} / {row.median('utilserve', 'cpu_us'):.0f} "
            f"| {row.cpu_ratio:.2f} |"
        )
    lines.append("")
    lines.append(
        f"Target: ratio utilserve/native ≥ {TARGET_RATIO:.2f}."
        + (f" Below target: {', '.join(below)} (⚠)." if below else " All measured rows meet it.")
    )
    lines.append("")
    lines.append("- ratio: median utilserve req/s ÷ median native req/s (the headline number).")
    lines.append(
        "- paired ratio: median over runs of utilserve ÷ native req/s of the same run "
        "(the two loads back to back, so slow drift in background load cancels)."
    )
    lines.append(
        "- server CPU µs/req: user+system CPU of the server's process group during the measured "
        "load ÷ requests served; CPU ratio = native ÷ utilserve, i.e. the throughput ratio the two apps "
        "would show on a core of their own. It is the least sensitive to other work on the machine."
    )
    lines.append("")
    lines.append("Per run, req/s native → utilserve (order alternates: odd runs native first):")
    lines.append("")
    natives = {v.label: v.native for v in VARIANTS}
    for row in rows:
        pairs = [f"{n.rps:,.0f} → {u.rps:,.0f}" for n, u in zip(row.native, row.utilserve)]
        lines.append(
            f"- {row.label} (native `{natives[row.label]}`, `{'async def' if row.endpoint == 'async' else 'def'}`"
            f" endpoints): " + ("; ".join(pairs) or "no complete run")
        )
    errors = [row for row in rows if row.error]
    if errors:
        lines.append("")
        lines.append("Problems:")
        lines.append("")
        for row in errors:
            first = row.error.splitlines()[0] if row.error else ""
            lines.append(f"- {row.label}: {first}")
    if skipped:
        lines.append("")
        lines.append(
            "Not measured (no adapter module `utilserve/backends/<name>.py` yet, or framework not "
            "installed): " + ", ".join(skipped) + "."
        )
    lines.append("")
    return "\n".join(lines)


def write_section(section: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) this section of BENCHMARKS.md; every other section stays as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        head = text if text.endswith("\n") else text + "\n"
        new = head + "\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.overhead", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated subset of {','.join(BACKENDS)} (default: all with an adapter)",
    )
    parser.add_argument("--duration", type=int, default=5, help="whole seconds of load per wrk run (default 5)")
    parser.add_argument("--runs", type=int, default=3, help="runs per app, alternating order (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="whole seconds of unmeasured load before each run, 0 for none (default 1)"
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pin the server to the first CPU and wrk to the others (default: on with 2+ CPUs)",
    )
    parser.add_argument("--start-timeout", type=float, default=60)
    parser.add_argument("--wrk-timeout", type=int, default=5, help="wrk --timeout per request, whole seconds")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.runs < 1 or args.connections < 2 or args.warmup < 0:
        parser.error("need --duration >= 1, --runs >= 1, --connections >= 2, --warmup >= 0 (wrk takes whole seconds)")

    requested = [b.strip().lower() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(requested) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends {unknown}: choose from {','.join(BACKENDS)}")
    args.backends = requested
    args.server_cpus = args.wrk_cpus = None
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin is None:
        args.pin = len(cpus) >= 2 and shutil.which("taskset") is not None
    if args.pin:
        if len(cpus) < 2:
            parser.error("--pin needs at least 2 CPUs")
        args.server_cpus, args.wrk_cpus = str(cpus[0]), ",".join(map(str, cpus[1:]))

    signal.signal(signal.SIGTERM, _on_signal)
    started = dt.datetime.now().astimezone()
    load_start = loadavg()
    rows: list[Row] = []
    skipped: list[str] = []
    for backend in requested:
        if not adapter_present(backend):
            skipped.append(backend)
            print(f"skip {backend}: no utilserve/backends/{backend}.py, or {backend} is not installed", flush=True)
            continue
        for variant in (v for v in VARIANTS if v.backend == backend):
            print(f"{variant.label} under {variant.server}", flush=True)
            rows.append(measure(variant, args))

    section = render(rows, skipped, args, started, (load_start, loadavg()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = RESULTS / f"overhead-{started.strftime('%Y%m%d-%H%M%S')}.json"
    raw.write_text(
        json.dumps(
            {
                "command": command_line(args),
                "date": started.isoformat(),
                "machine": machine(),
                "versions": versions(),
                "rows": [asdict(r) for r in rows],
            },
            indent=2,
        )
    )
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"wrote {SECTION!r} to {BENCHMARKS} (raw: {raw.relative_to(ROOT)})")
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
