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
import contextlib
import datetime as dt
import functools
import importlib.util
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field

from . import harness
from .harness import BENCHMARKS, HOST, RESULTS, ROOT

SECTION = "## Adapter overhead"
EXPECTED = {"message": "hello world"}
TARGET_RATIO = 0.90
STOP_TIMEOUT_S = 10.0  # after SIGTERM, before SIGKILL
SOURCES = ("utilserve",)  # the code under test, for harness.source_state()

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


# --- processes and wrk --------------------------------------------------------------------------


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    """``argv`` run on ``cpus`` only (``taskset``), so that the server and wrk do not take each other's CPU."""
    return (["taskset", "-c", cpus] if cpus else []) + argv


def hello(server: harness.Server, port: int) -> None:
    """Ready once ``GET /hello`` answers as expected; any other answer is a broken app: fail at once."""
    status, body = harness.request(port, "GET", "/hello")
    with contextlib.suppress(ValueError):
        if status == 200 and json.loads(body) == EXPECTED:
            return
    raise RuntimeError(f"GET /hello answered {status} {body[:300]!r}, expected 200 {EXPECTED}\n{server.output()}")


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx + socket errors
    cpu_us: float = 0.0  # server CPU time (user + system, all its processes) per request, microseconds


def wrk(port: int, threads: int, connections: int, duration: float, timeout: float, cpus: str | None) -> Load:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency", f"--timeout={timeout:g}s",
            f"http://{HOST}:{port}/hello"]
    return Load(*harness.run_wrk(pinned(argv, cpus), duration + timeout + 30))


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
    base_env = harness.child_env({"UTILSERVE_BACKEND": variant.backend, "BENCH_ENDPOINT": variant.endpoint,
                                  **dict(variant.env)})
    apps = {"native": variant.native, "utilserve": US_APP}
    for run in range(args.runs):
        order = ["native", "utilserve"] if run % 2 == 0 else ["utilserve", "native"]
        for side in order:
            port = harness.free_port()
            argv = [part.format(python=sys.executable, app=apps[side], port=port) for part in template]
            # SIGTERM to the whole process group (bench/README.md): gunicorn's worker gets it with the master
            server = harness.Server(pinned(argv, args.server_cpus), base_env, name="server",
                                    stop_timeout=STOP_TIMEOUT_S, term_group=True)
            try:
                server.start()
                server.wait_ready(functools.partial(hello, server, port), args.start_timeout, 0.1)
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


def versions() -> dict[str, str]:
    """Installed versions; utilserve run from the source tree (not installed) is said to be so."""
    found = harness.versions(LIBRARIES)
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
    info = harness.machine()
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
        *harness.provenance(command_line(args), started),
        f"- Machine: {harness.describe(info)}, {info['wrk']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"- utilserve source: {harness.source_state(SOURCES)}",
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

    harness.exit_on_sigterm()
    started = dt.datetime.now().astimezone()
    load_start = harness.loadavg()
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

    section = render(rows, skipped, args, started, (load_start, harness.loadavg()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = RESULTS / f"overhead-{started.strftime('%Y%m%d-%H%M%S')}.json"
    raw.write_text(
        json.dumps(
            {
                "command": command_line(args),
                "date": started.isoformat(),
                "machine": harness.machine(),
                "versions": versions(),
                "rows": [asdict(r) for r in rows],
            },
            indent=2,
        )
    )
    print(section)
    if not args.no_write:
        harness.write_section(section, SECTION)
        print(f"wrote {SECTION!r} to {BENCHMARKS} (raw: {raw.relative_to(ROOT)})")
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
