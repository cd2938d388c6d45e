"""Adapter overhead: utilserve hello-world vs each framework's native hello-world, under the same server.

A row per backend of ``utilserve/backends/`` whose framework is installed. A
fresh server per app and run, one at a time, in alternating order, so that
drift in other work on the machine weighs on both apps alike.

``--payloads`` measures JSON bodies of growing size instead: a POST that
both apps validate into the same pydantic model (``apps/payload_*.py``),
on starlette and flask unless ``--backends`` says otherwise.

``--observability`` measures three apps per row instead (starlette and flask
unless ``--backends`` says otherwise): the native hello-world, utilserve's
with metrics and the access log off, and utilserve's with everything on as
by default, its access log written to the server's log file.
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
import tempfile
from dataclasses import dataclass, field

from tests.support.servers import exit_on_sigterm, request

from . import loadgen, report
from .apps import payload_model
from .loadgen import Load

SECTION = "## Adapter overhead"
OBSERVABILITY_SECTION = "## Observability overhead"
OBSERVABILITY_BACKENDS = ["starlette", "flask"]
PAYLOAD_SECTION = "## Payload sizes"
PAYLOAD_SIZES = {"100 B": (100, 64), "10 KB": (10_000, 64), "100 KB": (100_000, 16), "1 MB": (1_000_000, 4)}
"""Bytes, and wrk connections: fewer for larger bodies, each of which takes a server milliseconds to read."""
PAYLOAD_NATIVE = {
    "starlette": "bench.apps.payload_native:starlette_app",
    "flask": "bench.apps.payload_native:flask_app",
}
TARGET_RATIO = 0.90
"""Payload sizes and observability: utilserve ÷ native."""
ADAPTER_TARGET = 0.95
"""Adapter overhead: both the req/s ratio and the CPU ratio."""
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
    "uWSGI": (
        "{bin}/uwsgi --http11-socket 127.0.0.1:{port} --master --processes 1 --threads 8 --enable-threads --need-app "
        "--die-on-term --disable-logging --virtualenv {prefix} --module {app}"
    ),
}
WSGI = {"gunicorn gthread", "uWSGI"}  # servers whose apps, both, have ``def`` endpoints, not ``async def``


@dataclass(frozen=True)
class Variant:
    label: str
    backend: str  # utilserve/backends/<backend>.py; also the framework's module
    server: str  # key of SERVERS
    native: str  # the framework's own hello-world, module:attribute
    utilserve: str = US_APP
    body: bytes = b""  # POSTed to /ingest when given, else GET /hello
    script: str = ""  # the wrk script that sends ``body``
    size: str = ""  # ``body``'s size, in words
    connections: int = 0  # wrk's, when not ``--connections``

    @property
    def path(self) -> str:
        return "/ingest" if self.body else "/hello"


VARIANTS = [
    Variant("starlette", "starlette", "uvicorn", "bench.apps.native_starlette:app"),
    Variant("fastapi", "fastapi", "uvicorn", "bench.apps.native_fastapi:app"),
    Variant("flask", "flask", "gunicorn gthread", "bench.apps.native_flask:app"),
    Variant("flask-uwsgi", "flask", "uWSGI", "bench.apps.native_flask:app"),
    Variant("django-wsgi", "django", "gunicorn gthread", "bench.apps.native_django:wsgi_app"),
    Variant("django-asgi", "django", "uvicorn", "bench.apps.native_django:asgi_app"),
    Variant("falcon-wsgi", "falcon", "gunicorn gthread", "bench.apps.native_falcon:wsgi_app"),
    Variant("falcon-asgi", "falcon", "uvicorn", "bench.apps.native_falcon:asgi_app"),
    Variant("sanic", "sanic", "sanic", "bench.apps.native_sanic:app"),
    Variant("tornado", "tornado", "tornado", "bench.apps.native_tornado:app"),
]
BACKENDS = list(dict.fromkeys(v.backend for v in VARIANTS))


@dataclass(frozen=True)
class Side:
    """One of the apps of a row: the native one, or utilserve's with ``env`` (``NAME=value ...``) added."""

    name: str
    native: bool = False
    env: str = ""


ADAPTER_SIDES = (Side("native", native=True), Side("utilserve"))
OFF = "UTILSERVE_METRICS=0 UTILSERVE_ACCESS_LOG=0"
OBSERVABILITY_SIDES = (Side("native", native=True), Side("off", env=OFF), Side("on"))
"""``on`` is utilserve's default: request ids, metrics and the access log; ``off`` keeps the request ids alone."""


@dataclass
class Row:
    variant: Variant
    loads: dict[str, list[Load]] = field(default_factory=dict)
    error: str | None = None
    log_lines: dict[str, list[int]] = field(default_factory=dict)  # access log lines in the server's log, per run

    @property
    def native(self) -> list[Load]:
        return self.loads.get("native", [])

    @property
    def utilserve(self) -> list[Load]:
        return self.loads.get("utilserve", [])

    def complete(self) -> bool:
        return bool(self.loads) and all(self.loads.values())

    def median(self, side: str, metric: str) -> float:
        return statistics.median(getattr(load, metric) for load in self.loads[side])

    def rps_ratio(self, side: str, base: str) -> float:
        return self.median(side, "rps") / self.median(base, "rps")

    def cpu_ratio(self, side: str, base: str) -> float:
        """The throughput ratio that CPU per request implies: ``base``'s CPU ÷ ``side``'s."""
        return self.median(base, CPU) / self.median(side, CPU)

    def both(self, metric: str, spec: str) -> str:
        return f"{self.median('native', metric):{spec}} / {self.median('utilserve', metric):{spec}}"

    @property
    def ratio(self) -> float:
        return self.median("utilserve", "rps") / self.median("native", "rps")

    @property
    def meets_target(self) -> bool:
        """Judged unrounded (0.947 misses 0.95), on req/s and on CPU alike."""
        return min(self.ratio, self.cpu_ratio("utilserve", "native")) >= ADAPTER_TARGET

    def cells(self) -> list[str]:
        """The table's cells after backend and server."""
        if not (self.native and self.utilserve):
            return ["-", "-", "-", "failed: see below", "", "", "", ""]
        paired = statistics.median(u.rps / n.rps for n, u in zip(self.native, self.utilserve, strict=False))
        rps = [f"{self.median(side, 'rps'):,.0f}" for side in ("native", "utilserve")]
        ratio = f"**{self.ratio:.2f}**" + ("" if self.meets_target else " ⚠")
        latency = [self.both(metric, ".2f") for metric in ("p50_ms", "p99_ms")]
        cpu = self.cpu_ratio("utilserve", "native")
        return [*rps, ratio, *latency, f"{paired:.2f}", self.both(CPU, ".0f"), f"{cpu:.2f}"]


def shown(argv: str) -> str:
    """A server's argv as a reader would type it: ``{port}`` and ``{app}`` stay, the paths of this machine go."""
    return argv.replace("{python}", "python").replace("{bin}/", "").replace("{prefix}", "$VIRTUAL_ENV")


def server_installed(name: str) -> bool:
    """Whether the server's program is here: uWSGI is one of its own, the others run as modules of this Python."""
    program = SERVERS[name].split()[0]
    return program == "{python}" or os.access(program.format(bin=loadgen.BIN), os.X_OK)


def answers_hello(port: int) -> bool:
    """Ready once ``GET /hello`` answers as expected; any other answer is a broken app: fail at once."""
    status, body = request(port, "GET", "/hello")
    if status != 200 or json.loads(body) != {"message": "hello world"}:
        raise RuntimeError(f"GET /hello answered {status} {body[:300]!r}")
    return True


def ingests(port: int, body: bytes) -> bool:
    """Ready once ``POST /ingest`` with ``body`` answers its count of entries; any other answer fails at once."""
    status, answer = request(port, "POST", "/ingest", body, {"Content-Type": "application/json"})
    if status != 200 or json.loads(answer) != {"count": len(json.loads(body)["entries"])}:
        raise RuntimeError(f"POST /ingest answered {status} {answer[:300]!r}")
    return True


def payload_variants(backends: list[str], folder: str) -> list[Variant]:
    """A variant per backend and size, its body and wrk script written into ``folder``."""
    variants = []
    for size, (length, connections) in PAYLOAD_SIZES.items():
        body = payload_model.body(length)
        path = os.path.join(folder, f"{length}.json")
        with open(path, "wb") as file:
            file.write(body)
        script = os.path.join(folder, f"{length}.lua")
        with open(script, "w") as file:
            file.write(
                f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"local file = io.open({json.dumps(path)}, 'rb')\nwrk.body = file:read('*a')\nfile:close()\n"
            )
        for v in (v for v in VARIANTS if v.label in backends and v.label in PAYLOAD_NATIVE):
            native, app = PAYLOAD_NATIVE[v.label], "bench.apps.payload_utilserve:app"
            variants.append(Variant(v.label, v.backend, v.server, native, app, body, script, size, connections))
    return variants


def access_log_lines(path: str) -> int:
    """Lines of the access log in a server's log file: its stdout and stderr, where the default handler writes."""
    with open(path, "rb") as log:
        return sum(1 for line in log if b" GET /hello 200 " in line)


def measure(variant: Variant, args: argparse.Namespace, sides: tuple[Side, ...] = ADAPTER_SIDES) -> Row:
    """Each side's loads, a fresh server per side and run, the order of the sides reversed every other run.

    A server's stdout and stderr go to a log file (``tests.support.servers``),
    as under a process manager; it is removed after the run, kept if the run
    failed or wrk saw errors. utilserve's metrics go to a fresh directory per run.
    """
    row = Row(variant, {side.name: [] for side in sides}, log_lines={side.name: [] for side in sides})
    taskset = f"taskset -c {args.server_cpus}" if args.server_cpus else ""
    env = f"UTILSERVE_BACKEND={variant.backend} UTILSERVE_ASYNCHRONOUS={0 if variant.server in WSGI else 1}"
    for run in range(args.runs):
        for side in sides if run % 2 == 0 else sides[::-1]:
            app = variant.native if side.native else variant.utilserve
            metrics_dir = tempfile.mkdtemp(prefix="utilserve-bench-metrics-")
            words = f"{env} PROMETHEUS_MULTIPROC_DIR={metrics_dir} {side.env} {taskset} {SERVERS[variant.server]}"
            server = loadgen.server(words, app)
            try:
                ready = functools.partial(ingests, server.port, variant.body) if variant.body else None
                server.start(60, probe=ready or functools.partial(answers_hello, server.port))
                wrk = functools.partial(
                    loadgen.run,
                    server,
                    variant.path,
                    variant.connections or args.connections,
                    timeout=WRK_TIMEOUT_S,
                    script=variant.script,
                )
                if args.warmup:
                    wrk(args.warmup, cpus=args.wrk_cpus)
                load = wrk(args.duration, cpus=args.wrk_cpus)
            except loadgen.FAILED as error:
                row.error = f"{side.name}: {str(error).strip()}"
                print(f"  {variant.label} {side.name}: FAILED (log {server.log.name})\n{error}", file=sys.stderr)
                return row
            finally:
                server.stop(10)
                shutil.rmtree(metrics_dir, ignore_errors=True)
            server.log.close()
            lines = access_log_lines(server.log.name)
            row.loads[side.name].append(load)
            row.log_lines[side.name].append(lines)
            print(
                f"  {variant.label:12} run {run + 1}/{args.runs} {side.name:9} {load.summary()}  log {lines}",
                flush=True,
            )
            if load.errors:
                row.error = f"{side.name}: wrk saw {load.errors} non-2xx/socket errors (server log {server.log.name})"
            else:
                os.unlink(server.log.name)
    return row


def render(
    rows: list[Row], skipped: list[str], args: argparse.Namespace, started: dt.datetime, load: tuple[str, str]
) -> list[str]:
    pinning = f"server pinned to CPU {args.server_cpus} and wrk to CPU {args.wrk_cpus} (`taskset`)."
    used = dict.fromkeys(row.variant.server for row in rows)  # the servers, in the order of the rows
    below = [row.variant.label for row in rows if row.native and row.utilserve and not row.meets_target]
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
        "- One server process (WSGI: one gunicorn gthread or uWSGI worker with 8 threads) so that a core is left to "
        "wrk; " + (pinning if args.server_cpus else "no CPU pinning."),
        "- Servers, the same argv for both apps of a row (`{app}` is the row's native app, listed with the "
        "per-run numbers below, or `bench.apps.us_hello:app`):",
        *(f"  - {name}: `{shown(SERVERS[name])}`" for name in used),
        "",
        *report.table(
            "backend | server | native req/s: | utilserve req/s: | ratio: | p50 native / utilserve (ms) | "
            "p99 native / utilserve (ms) | paired ratio: | server CPU µs/req native / utilserve | CPU ratio:",
            [[row.variant.label, row.variant.server, *row.cells()] for row in rows],
        ),
        "",
        f"Target: ratio and CPU ratio ≥ {ADAPTER_TARGET:.2f}."
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
    return lines + (["", f"Not measured (not installed): {', '.join(skipped)}."] if skipped else [])


def setting(
    rows: list[Row], args: argparse.Namespace, started: dt.datetime, load: tuple[str, str], apps: str
) -> list[str]:
    """The lines under a section's opening words: when, where, which versions, and each server's argv."""
    pinning = f"server pinned to CPU {args.server_cpus} and wrk to CPU {args.wrk_cpus} (`taskset`)."
    return [
        *report.provenance(started),
        f"- Machine: {report.machine()}",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in report.versions(LIBRARIES).items()),
        f"- utilserve source: {report.source_state(['utilserve'])}",
        f"- 1-minute load average at start / end: {load[0]} / {load[1]}",
        "- One server process (WSGI: one gunicorn gthread or uWSGI worker with 8 threads); "
        + (pinning if args.server_cpus else "no CPU pinning."),
        f"- Servers, the same argv for {apps} of a row:",
        *(f"  - {name}: `{shown(SERVERS[name])}`" for name in dict.fromkeys(row.variant.server for row in rows)),
    ]


def render_observability(
    rows: list[Row], skipped: list[str], args: argparse.Namespace, started: dt.datetime, load: tuple[str, str]
) -> list[str]:
    complete = [row for row in rows if row.complete()]
    below = [row.variant.label for row in complete if row.rps_ratio("on", "native") < TARGET_RATIO]

    def cells(row: Row) -> list[str]:
        if not row.complete():
            return ["failed: see below", *[""] * 9]
        ratio = row.rps_ratio("on", "native")
        trio = [f"{row.median(side, 'rps'):,.0f}" for side in ("native", "off", "on")]
        return [
            *trio,
            f"**{ratio:.2f}**" + ("" if ratio >= TARGET_RATIO else " ⚠"),
            f"{row.rps_ratio('on', 'off'):.2f}",
            f"{row.rps_ratio('off', 'native'):.2f}",
            " / ".join(f"{row.median(side, CPU):.0f}" for side in ("native", "off", "on")),
            f"{row.cpu_ratio('on', 'native'):.2f}",
            f"{row.cpu_ratio('on', 'off'):.2f}",
            " / ".join(f"{row.median(side, 'p99_ms'):.2f}" for side in ("native", "off", "on")),
        ]

    lines = [
        "What utilserve's observability costs on a hello-world: three apps answering `GET /hello` with "
        '`{"message": "hello world"}` under the same server, process count and flags: the framework\'s native '
        "hello-world (`bench/apps/native_*.py`), and utilserve's (`bench/apps/us_hello.py`) twice, "
        f"**off** (`{OFF}`: no metrics, no access log; the request id and the tracing hook stay, as they "
        "cannot be turned off) and **on** (the defaults: request ids, Prometheus metrics in multiprocess "
        "mode, one access log line per request). The access log goes to the default handler on stderr, which "
        "the bench sends with stdout to the server's log file, as a process manager would; the metrics to a "
        "fresh `PROMETHEUS_MULTIPROC_DIR` per run. One server at a time, a fresh process per app and run, the "
        f"order of the three reversed every other run. Load: `wrk -t2 -c{args.connections} -d{args.duration}s "
        f"--latency --timeout {WRK_TIMEOUT_S}s`"
        + (f" after a {args.warmup} s warm-up load; " if args.warmup else " (no warm-up); ")
        + f"medians of {args.runs} runs. Endpoints are `async def` on async servers and `def` on WSGI ones.",
        "",
        *setting(rows, args, started, load, "the three apps"),
        "",
        *report.table(
            "backend | server | native req/s: | off req/s: | on req/s: | on ÷ native: | on ÷ off: | off ÷ native: | "
            "server CPU µs/req native / off / on | CPU ratio on ÷ native: | CPU ratio on ÷ off: | "
            "p99 native / off / on (ms)",
            [[row.variant.label, row.variant.server, *cells(row)] for row in rows],
        ),
        "",
        f"Target: on ÷ native ≥ {TARGET_RATIO:.2f} (req/s)."
        + (f" Below target: {', '.join(below)} (⚠)." if below else " All measured rows meet it."),
        "",
        "- on ÷ native, on ÷ off, off ÷ native: ratios of median req/s.",
        "- server CPU µs/req: user+system CPU of the server's processes during the measured load ÷ requests "
        "served; a CPU ratio is the slower side's CPU per request inverted (native ÷ on, off ÷ on): the "
        "throughput ratio on a core of their own, the least sensitive to other work on the machine.",
        "",
        "Per run, req/s native / off / on (order reversed every other run), and in brackets the access log "
        "lines that on's server log file held after the run (warm-up included):",
        "",
    ]
    for row in rows:
        runs = zip(*(row.loads.get(side, []) for side in ("native", "off", "on")), row.log_lines["on"], strict=False)
        trios = "; ".join(f"{n.rps:,.0f} / {off.rps:,.0f} / {on.rps:,.0f} ({logged:,})" for n, off, on, logged in runs)
        lines.append(f"- {row.variant.label} (native `{row.variant.native}`): {trios or 'no complete run'}")
        if not row.error and (any(row.log_lines["native"] + row.log_lines["off"]) or not all(row.log_lines["on"])):
            row.error = f"access log lines native / off / on: {row.log_lines}, expected only on's"
    problems = [f"- {row.variant.label}: {row.error.splitlines()[0]}" for row in rows if row.error]
    lines += report.block("Problems:", problems)
    return lines + (["", f"Not measured (not installed): {', '.join(skipped)}."] if skipped else [])


def render_payloads(
    rows: list[Row], skipped: list[str], args: argparse.Namespace, started: dt.datetime, load: tuple[str, str]
) -> list[str]:
    below = [f"{row.variant.label} {row.variant.size}" for row in rows if row.complete() and row.ratio < TARGET_RATIO]

    def cells(row: Row) -> list[str]:
        if not row.complete():
            return ["failed: see below", *[""] * 5]
        return [
            row.both("rps", ",.0f"),
            f"**{row.ratio:.2f}**" + ("" if row.ratio >= TARGET_RATIO else " ⚠"),
            row.both(CPU, ",.0f"),
            f"{row.cpu_ratio('utilserve', 'native'):.2f}",
            row.both("p50_ms", ".2f"),
            row.both("p99_ms", ".2f"),
        ]

    return [
        "What a growing JSON body costs: `POST /ingest` with a body that both apps validate into the same pydantic "
        "model (`bench/apps/payload_model.py`: a list of entries of an int, a string, a float and a list of "
        'strings) and answer `{"count": N}`. Native: the framework\'s own app calling `Payload.model_validate_json` '
        "on the raw body (`bench/apps/payload_native.py`); utilserve: an endpoint taking `payload: Payload` "
        "(`bench/apps/payload_utilserve.py`), with the defaults (metrics and access log on). The same server, "
        "process count and flags for both, a fresh process per app and run, the order alternating. Load: "
        f"`wrk -t2 -c<N> -d{args.duration}s --latency --timeout {WRK_TIMEOUT_S}s` with the body "
        f"from a file" + (f" after a {args.warmup} s warm-up load; " if args.warmup else "; ") + f"medians of "
        f"{args.runs} runs.",
        "",
        *setting(rows, args, started, load, "both apps"),
        "",
        *report.table(
            "backend | body | bytes: | N: | req/s native / utilserve | ratio: | server CPU µs/req native / utilserve | "
            "CPU ratio: | p50 native / utilserve (ms) | p99 native / utilserve (ms)",
            [
                [
                    row.variant.label,
                    row.variant.size,
                    f"{len(row.variant.body):,}",
                    row.variant.connections,
                    *cells(row),
                ]
                for row in rows
            ],
        ),
        "",
        f"Target: ratio ≥ {TARGET_RATIO:.2f} at every size."
        + (f" Below target: {', '.join(below)} (⚠)." if below else " All measured rows meet it."),
        *report.block(
            "Problems:", [f"- {r.variant.label} {r.variant.size}: {r.error.splitlines()[0]}" for r in rows if r.error]
        ),
        *(["", f"Not measured (not installed): {', '.join(skipped)}."] if skipped else []),
    ]


def main() -> int:
    parser = report.parser("bench.overhead", __doc__)
    report.add_names(parser, "--backends", BACKENDS)
    parser.add_argument(
        "--observability",
        action="store_true",
        help="native vs utilserve with metrics and access log off vs on, into the section "
        f"{OBSERVABILITY_SECTION!r} (--backends defaults to {','.join(OBSERVABILITY_BACKENDS)})",
    )
    parser.add_argument(
        "--payloads",
        action="store_true",
        help=f"JSON bodies of {', '.join(PAYLOAD_SIZES)}, into the section {PAYLOAD_SECTION!r} "
        f"(--backends defaults to {','.join(OBSERVABILITY_BACKENDS)})",
    )
    parser.add_argument("--duration", type=int, default=5, help="whole seconds of load per wrk run")
    parser.add_argument("--runs", type=int, default=3, help="runs per app, alternating order")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c")
    parser.add_argument("--warmup", type=int, default=1, help="whole seconds of unmeasured load before each run")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True, help="pin the server to CPU 0")
    args = parser.parse_args()
    if (args.observability or args.payloads) and not any(arg.startswith("--backends") for arg in sys.argv[1:]):
        args.backends = OBSERVABILITY_BACKENDS
    sides = OBSERVABILITY_SIDES if args.observability else ADAPTER_SIDES
    cpus = sorted(os.sched_getaffinity(0))
    pin = args.pin and len(cpus) >= 2 and shutil.which("taskset") is not None
    args.server_cpus, args.wrk_cpus = (str(cpus[0]), ",".join(map(str, cpus[1:]))) if pin else ("", "")

    exit_on_sigterm()
    started, load_start, rows = dt.datetime.now().astimezone(), report.loadavg(), []
    skipped = [backend for backend in args.backends if not importlib.util.find_spec(backend)]
    installed = [backend for backend in args.backends if backend not in skipped]
    for backend in skipped:
        print(f"skip {backend}: not installed", flush=True)
    if args.payloads:
        with tempfile.TemporaryDirectory(prefix="bench-payloads-") as folder:
            for variant in payload_variants(installed, folder):
                print(f"{variant.label} {variant.size} under {variant.server}", flush=True)
                rows.append(measure(variant, args))
        lines = render_payloads(rows, skipped, args, started, (load_start, report.loadavg()))
        report.publish(PAYLOAD_SECTION, lines, not args.no_write)
        return 1 if any(row.error for row in rows) else 0
    for backend in installed:
        for variant in (v for v in VARIANTS if v.backend == backend):
            if not server_installed(variant.server):
                print(f"skip {variant.label}: {variant.server} not installed", flush=True)
                skipped.append(f"{variant.label} ({variant.server})")
                continue
            print(f"{variant.label} under {variant.server}", flush=True)
            rows.append(measure(variant, args, sides))
    title, write = (OBSERVABILITY_SECTION, render_observability) if args.observability else (SECTION, render)
    report.publish(title, write(rows, skipped, args, started, (load_start, report.loadavg())), not args.no_write)
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
