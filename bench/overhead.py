"""Adapter overhead: utilserve hello-world vs each framework's native hello-world, under the same server.

A row per backend of ``utilserve/backends/`` whose framework is installed. A
fresh server per app and run, one at a time, in alternating order, so that
drift in other work on the machine weighs on both apps alike.
"""

import argparse
import datetime as dt
import functools
import importlib.util
import json
import os
import shutil
import statistics
import sys
from dataclasses import dataclass, field

from tests.support.servers import exit_on_sigterm, request

from . import loadgen, report
from .loadgen import Load

SECTION = "## Adapter overhead"
TARGET_RATIO = 0.90
WRK_TIMEOUT_S = 5
US_APP = "bench.apps.us_hello:app"
CPU = "server_us_per_request"  # the measure least sensitive to other work on the machine
LIBRARIES = (
    "utilserve starlette fastapi Flask Werkzeug Django falcon sanic tornado uvicorn gunicorn httptools uvloop pydantic "
    "pydantic_core"
)
SERVERS = {  # by name in the table: the same argv for both apps of a row, with {python}, {app} and {port} filled in
    "uvicorn": loadgen.UVICORN,
    "gunicorn gthread": (
        "{python} -m gunicorn -k gthread -w 1 --threads 8 -b 127.0.0.1:{port} --graceful-timeout 5 --log-level warning "
        "{app}"
    ),
    "sanic": "{python} -m sanic {app} --host 127.0.0.1 --port {port} --single-process --no-access-logs --no-motd",
    "tornado": "{python} -m bench.apps.tornado_server {app} --host 127.0.0.1 --port {port}",
}
WSGI = {"gunicorn gthread"}  # servers whose apps, both, have ``def`` endpoints, not ``async def``


@dataclass(frozen=True)
class Variant:
    label: str
    backend: str  # utilserve/backends/<backend>.py; also the framework's module
    server: str  # key of SERVERS
    native: str  # the framework's own hello-world, module:attribute


VARIANTS = [
    Variant("starlette", "starlette", "uvicorn", "bench.apps.native_starlette:app"),
    Variant("fastapi", "fastapi", "uvicorn", "bench.apps.native_fastapi:app"),
    Variant("flask", "flask", "gunicorn gthread", "bench.apps.native_flask:app"),
    Variant("django-wsgi", "django", "gunicorn gthread", "bench.apps.native_django:wsgi_app"),
    Variant("django-asgi", "django", "uvicorn", "bench.apps.native_django:asgi_app"),
    Variant("falcon-wsgi", "falcon", "gunicorn gthread", "bench.apps.native_falcon:wsgi_app"),
    Variant("falcon-asgi", "falcon", "uvicorn", "bench.apps.native_falcon:asgi_app"),
    Variant("sanic", "sanic", "sanic", "bench.apps.native_sanic:app"),
    Variant("tornado", "tornado", "tornado", "bench.apps.native_tornado:app"),
]
BACKENDS = list(dict.fromkeys(v.backend for v in VARIANTS))


@dataclass
class Row:
    variant: Variant
    native: list[Load] = field(default_factory=list)
    utilserve: list[Load] = field(default_factory=list)
    error: str | None = None

    def median(self, side: str, metric: str) -> float:
        return statistics.median(getattr(load, metric) for load in getattr(self, side))

    def both(self, metric: str, spec: str) -> str:
        return f"{self.median('native', metric):{spec}} / {self.median('utilserve', metric):{spec}}"

    @property
    def ratio(self) -> float:
        return self.median("utilserve", "rps") / self.median("native", "rps")

    def cells(self) -> list[str]:
        """The table's cells after backend and server; the ratio is judged unrounded (0.897 misses 0.90)."""
        if not (self.native and self.utilserve):
            return ["-", "-", "-", "failed: see below", "", "", "", ""]
        paired = statistics.median(u.rps / n.rps for n, u in zip(self.native, self.utilserve, strict=False))
        rps = [f"{self.median(side, 'rps'):,.0f}" for side in ("native", "utilserve")]
        ratio = f"**{self.ratio:.2f}**" + ("" if self.ratio >= TARGET_RATIO else " ⚠")
        latency = [self.both(metric, ".2f") for metric in ("p50_ms", "p99_ms")]
        cpu = self.median("native", CPU) / self.median("utilserve", CPU)
        return [*rps, ratio, *latency, f"{paired:.2f}", self.both(CPU, ".0f"), f"{cpu:.2f}"]


def answers_hello(port: int) -> bool:
    """Ready once ``GET /hello`` answers as expected; any other answer is a broken app: fail at once."""
    status, body = request(port, "GET", "/hello")
    if status != 200 or json.loads(body) != {"message": "hello world"}:
        raise RuntimeError(f"GET /hello answered {status} {body[:300]!r}")
    return True


def measure(variant: Variant, args: argparse.Namespace) -> Row:
    row, taskset = Row(variant), f"taskset -c {args.server_cpus}" if args.server_cpus else ""
    env = f"UTILSERVE_BACKEND={variant.backend} UTILSERVE_ASYNCHRONOUS={0 if variant.server in WSGI else 1}"
    for run in range(args.runs):
        for side in ["native", "utilserve"] if run % 2 == 0 else ["utilserve", "native"]:
            app = variant.native if side == "native" else US_APP
            server = loadgen.server(f"{env} {taskset} {SERVERS[variant.server]}", app)
            try:
                server.start(60, probe=functools.partial(answers_hello, server.port))
                if args.warmup:
                    loadgen.run(server, "/hello", args.connections, args.warmup, WRK_TIMEOUT_S, cpus=args.wrk_cpus)
                load = loadgen.run(server, "/hello", args.connections, args.duration, WRK_TIMEOUT_S, cpus=args.wrk_cpus)
            except loadgen.FAILED as error:
                row.error = f"{side}: {str(error).strip()}"
                print(f"  {variant.label} {side}: FAILED\n{error}", file=sys.stderr, flush=True)
                return row
            finally:
                server.stop(10)
            getattr(row, side).append(load)
            print(f"  {variant.label:12} run {run + 1}/{args.runs} {side:9} {load.summary()}", flush=True)
            if load.errors:
                row.error = f"{side}: wrk saw {load.errors} non-2xx/socket errors"
    return row


def render(
    rows: list[Row], skipped: list[str], args: argparse.Namespace, started: dt.datetime, load: tuple[str, str]
) -> list[str]:
    pinning = f"server pinned to CPU {args.server_cpus} and wrk to CPU {args.wrk_cpus} (`taskset`)."
    used = dict.fromkeys(row.variant.server for row in rows)  # the servers, in the order of the rows
    below = [row.variant.label for row in rows if row.native and row.utilserve and row.ratio < TARGET_RATIO]
    lines = [
        "utilserve hello-world (`bench/apps/us_hello.py`) against the same framework's native hello-world "
        '(`bench/apps/native_*.py`), both answering `GET /hello` with `{"message": "hello world"}`, under the '
        "same server, process count and flags, one server at a time, a fresh process per run, alternating which "
        f"app goes first. Load: `wrk -t2 -c{args.connections} -d{args.duration}s --latency --timeout "
        f"{WRK_TIMEOUT_S}s`"
        + (f" after a {args.warmup} s warm-up load; " if args.warmup else " (no warm-up); ")
        + f"medians of {args.runs} runs. Endpoints are `async def` on async servers and `def` on WSGI ones, "
        "in both apps.",
        "",
        *report.provenance(started),
        f"- Machine: {report.machine()}",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in report.versions(LIBRARIES).items()),
        f"- utilserve source: {report.source_state(['utilserve'])}",
        f"- 1-minute load average at start / end: {load[0]} / {load[1]} (other work on the machine adds noise; "
        "the order alternates and medians are taken to even it out)",
        "- One server process (WSGI: one gunicorn gthread worker with 8 threads) so that a core is left to wrk; "
        + (pinning if args.server_cpus else "no CPU pinning."),
        "- Servers, the same argv for both apps of a row (`{app}` is the row's native app, listed with the "
        "per-run numbers below, or `bench.apps.us_hello:app`):",
        *(f"  - {name}: `{SERVERS[name].replace('{python}', 'python')}`" for name in used),
        "",
        *report.table(
            "backend | server | native req/s: | utilserve req/s: | ratio: | p50 native / utilserve (ms) | "
            "p99 native / utilserve (ms) | paired ratio: | server CPU µs/req native / utilserve | CPU ratio:",
            [[row.variant.label, row.variant.server, *row.cells()] for row in rows],
        ),
        "",
        f"Target: ratio utilserve/native ≥ {TARGET_RATIO:.2f}."
        + (f" Below target: {', '.join(below)} (⚠)." if below else " All measured rows meet it."),
        "",
        "- ratio: median utilserve req/s ÷ median native req/s (the headline number).",
        "- paired ratio: median over runs of utilserve ÷ native req/s of the same run (the two loads back to back, "
        "so slow drift in background load cancels).",
        "- server CPU µs/req: user+system CPU of the server's process group during the measured load ÷ requests "
        "served; CPU ratio = native ÷ utilserve, i.e. the throughput ratio the two apps would show on a core of "
        "their own. It is the least sensitive to other work on the machine.",
        "",
        "Per run, req/s native → utilserve (order alternates: odd runs native first):",
        "",
    ]
    for row in rows:
        runs = zip(row.native, row.utilserve, strict=False)
        pairs = "; ".join(f"{n.rps:,.0f} → {u.rps:,.0f}" for n, u in runs) or "no complete run"
        endpoints = "def" if row.variant.server in WSGI else "async def"
        lines.append(f"- {row.variant.label} (native `{row.variant.native}`, `{endpoints}` endpoints): {pairs}")
    problems = [f"- {row.variant.label}: {row.error.splitlines()[0]}" for row in rows if row.error]
    lines += report.block("Problems:", problems)
    return lines + (["", f"Not measured (framework not installed): {', '.join(skipped)}."] if skipped else [])


def main() -> int:
    parser = report.parser("bench.overhead", __doc__)
    report.add_names(parser, "--backends", BACKENDS)
    parser.add_argument("--duration", type=int, default=5, help="whole seconds of load per wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per app, alternating order")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c")
    parser.add_argument("--warmup", type=int, default=1, help="whole seconds of unmeasured load before each run")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True, help="pin the server to CPU 0")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    pin = args.pin and len(cpus) >= 2 and shutil.which("taskset") is not None
    args.server_cpus, args.wrk_cpus = (str(cpus[0]), ",".join(map(str, cpus[1:]))) if pin else ("", "")

    exit_on_sigterm()
    started, load_start, rows, skipped = dt.datetime.now().astimezone(), report.loadavg(), [], []
    for backend in args.backends:
        if not importlib.util.find_spec(backend):
            skipped.append(backend)
            print(f"skip {backend}: not installed", flush=True)
            continue
        for variant in (v for v in VARIANTS if v.backend == backend):
            print(f"{variant.label} under {variant.server}", flush=True)
            rows.append(measure(variant, args))
    report.publish(SECTION, render(rows, skipped, args, started, (load_start, report.loadavg())), not args.no_write)
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
