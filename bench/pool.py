"""Model pool: the toy model of examples/batched.py served over HTTP by utilserve's pools, LitServe and Ray Serve.

Each batch of up to 32 items costs 10 ms whatever its size, so no server
answers more than 3,200 items/s: the ratio to that limit says how much of the
batcher's capacity a stack delivers. One server at a time, so that none takes
CPU from another. Adding a row is one ``Row`` in ``ROWS``.
"""

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.support.servers import ROOT, exit_on_sigterm, request

from . import loadgen, report, serving
from .loadgen import UVICORN, Load
from .serving import Row

SECTION = "## Model pool"
LIMIT = 3200.0  # items/s: 32 items per 10 ms batch
TARGET_RATIO = 0.85  # of LIMIT, for utilserve at TARGET_CONCURRENCY
TARGET_CONCURRENCY = 128
TARGET_P50_MS = 11.0  # for utilserve at concurrency 1: the batch's 10 ms and 1 ms more
WARMUP_S = 2
WRK_TIMEOUT_S = 10
MODEL_APP = "examples.batched:app"
SOURCES = ["utilserve", "examples"]
LIBRARIES = "utilserve litserve ray uvicorn gunicorn starlette Flask fastapi uvloop httptools pydantic"
GUNICORN_GTHREAD = (
    "{python} -m gunicorn -k gthread -w 1 --threads 160 -b 127.0.0.1:{port} --graceful-timeout 5 "
    "--log-level warning {app}"
)
GUNICORN_SHARED = (
    "{python} -m gunicorn -c {root}/deploy/gunicorn.conf.py -w 4 --threads 40 -b 127.0.0.1:{port} "
    "--log-level warning {app}"
)


STARLETTE = Row(
    "utilserve-starlette",
    "starlette, uvicorn (1 process, uvloop, httptools); thread pool",
    f"UTILSERVE_BACKEND=starlette UTILSERVE_POOL=thread {UVICORN}",
    "starlette uvicorn",
)
FLASK_PROCESS = Row(
    "utilserve-flask-process",
    "flask, gunicorn gthread (4 workers x 40 threads, deploy/gunicorn.conf.py); one shared process pool",
    f"UTILSERVE_BACKEND=flask UTILSERVE_POOL=process {GUNICORN_SHARED}",
    "flask gunicorn",
)
ROWS = [  # each serving the toy model at ``POST /double``, ``{"x": 2}`` -> ``{"y": 4.0}``
    STARLETTE,
    Row(
        "utilserve-flask",
        "flask, gunicorn gthread (1 worker, 160 threads); thread pool",
        f"UTILSERVE_BACKEND=flask UTILSERVE_POOL=thread {GUNICORN_GTHREAD}",
        "flask gunicorn",
    ),
    FLASK_PROCESS,
    Row(
        "utilserve-starlette-ray",
        "starlette, uvicorn (1 process, uvloop, httptools); Ray pool (1 replica, local Ray started by the server)",
        f"UTILSERVE_BACKEND=starlette UTILSERVE_POOL=ray RAY_USAGE_STATS_ENABLED=0 {UVICORN}",
        "starlette uvicorn ray",
        start_timeout=180,
        stop_timeout=40,
    ),
    Row(
        "litserve",
        "1 API server process + 1 inference worker (cpu); max_batch_size=32, batch_timeout=0.005",
        "LITSERVE_DISABLE_TELEMETRY=1 {python} -m bench.apps.pool_litserve --port {port}",
        "litserve",
        label="LitServe",
    ),
    Row(
        "ray",
        "HTTP proxy + 1 replica; @serve.batch(32, 0.005 s), max_ongoing_requests=128; "
        "time.sleep in the async batch method",
        "RAY_USAGE_STATS_ENABLED=0 {python} -m bench.apps.pool_ray --port {port}",
        "ray",
        label="Ray Serve",
        start_timeout=180,
        stop_timeout=40,
    ),
]


@dataclass
class Result(serving.Outcome):
    loads: list[Load] = field(default_factory=list)  # the median run of each concurrency
    runs: dict[int, list[float]] = field(default_factory=dict)  # req/s of every run, by concurrency


def ratio(load: Load) -> float:
    """The share of the model's limit that ``load`` got."""
    return load.rps / LIMIT


def doubles(port: int) -> bool:
    """Ready once ``POST /double`` answers right (a 503 while the model loads is not ready yet)."""
    status, body = request(port, "POST", "/double", b'{"x": 2}', {"Content-Type": "application/json"})
    return status == 200 and json.loads(body) == {"y": 4.0}


def measure(row: Row, concurrency: Sequence[int], duration: int, runs: int) -> Result:
    """Serve ``row``; per concurrency a warm-up, then ``runs`` loads back to back. The server stops whatever happens."""
    result, script = Result(row), str(ROOT / "bench" / "wrk" / "post_double.lua")
    with serving.served(result, MODEL_APP, doubles) as server:
        serving.ready(result, server)
        for n in concurrency:
            loadgen.run(server, "/double", n, WARMUP_S, WRK_TIMEOUT_S, script)
            loads = [loadgen.run(server, "/double", n, duration, WRK_TIMEOUT_S, script) for _ in range(runs)]
            for load in loads:
                print(f"  c={n:<4} {load.summary()}  ratio {ratio(load):.2f}", flush=True)
                if load.errors:
                    result.error = f"c={n}: wrk saw {load.errors} non-2xx/socket errors"
            result.runs[n] = [load.rps for load in loads]
            result.loads.append(sorted(loads, key=lambda load: load.rps)[(runs - 1) // 2])
    return result


LOAD_COLUMNS = "N: | req/s: | p50 ms: | p99 ms: | ratio to 3,200/s: | CPU server / wrk / other"


def load_cells(load: Load) -> list[str]:
    """The cells of LOAD_COLUMNS."""
    latency = [f"{load.p50_ms:.2f}", f"{load.p99_ms:.2f}"]
    cpu = f"{load.server_cpu:.2f} / {load.wrk_cpu:.2f} / {load.other_cpu:.2f}"
    return [str(load.connections), f"{load.rps:,.0f}", *latency, f"**{ratio(load):.2f}**", cpu]


def targets(results: list[Result]) -> list[str]:
    """Whether each utilserve row met its targets."""
    lines = []
    for result in (r for r in results if r.row.label == "utilserve"):
        by_n, where = {load.connections: load for load in result.loads}, result.row.stack.split(";")[0]
        if load := by_n.get(TARGET_CONCURRENCY):
            lines.append(
                f"- utilserve ({where}) at c={TARGET_CONCURRENCY}: {ratio(load):.2f} of the limit, target ≥ "
                f"{TARGET_RATIO:.2f}: {report.verdict(ratio(load) >= TARGET_RATIO)}"
            )
        if load := by_n.get(1):
            lines.append(
                f"- utilserve ({where}) at c=1: p50 {load.p50_ms:.2f} ms, target ≤ {TARGET_P50_MS:.0f} ms: "
                f"{report.verdict(load.p50_ms <= TARGET_P50_MS)}"
            )
    return lines or [f"- (c=1 and c={TARGET_CONCURRENCY} were not both measured for a utilserve row)"]


def render(
    results: list[Result], skipped: list[str], args: argparse.Namespace, started: dt.datetime, load: tuple[str, str]
) -> list[str]:
    rows = [line for r in results for line in serving.lines(r.row, [load_cells(load) for load in r.loads], 6)]
    median = f"{args.runs} measurements back to back per cell, the median one (by req/s) shown"
    lines = [
        "The toy model of `examples/batched.py` (`Doubler`: each batch of up to 32 items costs 10 ms of "
        "`time.sleep`, whatever its size; so at most **3,200 items/s**) served over HTTP at `POST /double` "
        '(`{"x": 2}` → `{"y": 4.0}`) by each stack in turn, one server alive at a time. Load: '
        f"`wrk -t2 -c<N> -d{args.duration}s --latency -s bench/wrk/post_double.lua` (closed loop: N connections, "
        f"each sending its next request as soon as the last is answered; `-t1` at N=1) after a {WARMUP_S} s "
        f"warm-up at the same N; {median if args.runs > 1 else 'one measurement per cell'}. One item per request, "
        "so req/s = items/s; ratio = req/s ÷ 3,200.",
        "",
        *report.setting(
            started, f"{report.machine()}. wrk runs on the same CPUs as the server.", LIBRARIES, SOURCES, load
        ),
        "",
        *report.table(f"stack | server, pool | {LOAD_COLUMNS}", rows),
        "",
        "CPU server / wrk / other: CPU seconds per wall second during the measured load, of the server's processes "
        "(all of them: Ray's raylet, GCS, proxy and replica; LitServe's API server and worker), of wrk, and of "
        f"everything else on the machine (other work sharing it); the machine has {os.cpu_count()} CPUs in all.",
        *report.block("Targets:", targets(results)),
        "",
        serving.startup(results, "launch to first successful POST"),
    ]
    per_run = [
        f"- {r.row.name} c={n}: {', '.join(f'{rps:,.0f}' for rps in rates)}"
        for r in results
        for n, rates in r.runs.items()
    ]
    lines += report.block("Per-run req/s:", per_run if args.runs > 1 else [])
    return lines + serving.problems(results, skipped)


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """The options of the load, which ``bench.shared`` and ``bench.diagnostics.pool`` take too."""
    parser.add_argument("--duration", type=int, default=8, help="whole seconds of measured load per cell")
    parser.add_argument(
        "--concurrency", type=lambda text: [int(n) for n in text.split(",")], default=[1, 32, 128], help="wrk -c values"
    )
    parser.add_argument("--runs", type=int, default=3, help="measurements per cell; the median is shown")


def main() -> int:
    parser = report.parser("bench.pool", __doc__)
    report.add_names(parser, "--rows", [row.name for row in ROWS])
    add_load_options(parser)
    args = parser.parse_args()
    exit_on_sigterm()
    started, load_start, skipped = dt.datetime.now(dt.UTC), report.loadavg(), []
    results = [
        measure(row, args.concurrency, args.duration, args.runs) for row in serving.chosen(ROWS, args.rows, skipped)
    ]
    report.publish(SECTION, render(results, skipped, args, started, (load_start, report.loadavg())), not args.no_write)
    return 1 if any(r.error or r.survivors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
