"""Model pool: the 10 ms-per-batch toy model served over HTTP by utilserve, LitServe and Ray Serve.

    python -m bench.pool [--duration 8] [--concurrency 1,32,128] [--runs 3] [--rows utilserve-starlette,...]
                         [--warmup 2] [--batch-stats] [--py-spy] [--no-write]

The model is ``examples.batched.Doubler``: each batch of up to 32 items costs
10 ms (``time.sleep``) whatever its size, so no server can answer more than
32 / 10 ms = 3,200 items/s. Every row serves it at ``POST /double`` with
``{"x": 2}`` -> ``{"y": 4.0}`` on a free loopback port, one row at a time:
start, wait for a successful POST, then per concurrency a warm-up and
``--runs`` measurements back to back (the median is reported) with
``wrk -c N`` (closed loop: N connections, each sending its next request when
the last one is answered; bench/wrk/post_double.lua sets the POST). Every
server is stopped after its row (SIGTERM, then SIGKILL to everything left in
its session) and the run fails if any process survives.

Rows are the ``ROWS`` list below: adding a row (another pool kind, server or
library) is one ``Row(...)`` entry. Results go into the "## Model pool"
section of BENCHMARKS.md (only that section is rewritten; a "### Notes"
subsection written by hand inside it is kept) and raw numbers into
bench/results/ (git-ignored).

For investigating, not for the table: ``--batch-stats`` swaps the utilserve
rows' app for bench/diagnostics/counting_app.py (the same model, recording its
batch sizes and where each batch's cycle goes; LitServe and Ray count batch
sizes too) and adds the mean batch size per measurement; ``--py-spy`` records
the utilserve servers with py-spy during the first measurement at the
highest concurrency (collapsed stacks in bench/results/); ``DIAGNOSTIC_ROWS``
(selected by name with ``--rows``) are variants of the utilserve rows.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import harness
from .harness import BENCHMARKS, HOST, RESULTS, ROOT

LUA = ROOT / "bench" / "wrk" / "post_double.lua"
SECTION = "## Model pool"
SOURCES = ("utilserve", "examples")  # the code under test, for harness.source_state()
PATH = "/double"
BODY = b'{"x": 2}'
EXPECTED = {"y": 4.0}
LIMIT = 3200.0  # items/s: 32 items per 10 ms batch
BATCH_COST_MS = 10.0
TARGET_RATIO = 0.85  # utilserve at concurrency TARGET_CONCURRENCY
TARGET_CONCURRENCY = 128
TARGET_P50_SLACK_MS = 1.0  # utilserve at concurrency 1: p50 within 1 ms of the 10 ms batch cost
LIBRARIES = ["utilserve", "litserve", "ray", "uvicorn", "gunicorn", "starlette", "Flask", "fastapi", "uvloop",
             "httptools", "pydantic"]

# --- rows: one entry each ----------------------------------------------------------------------------

UVICORN = ("{python}", "-m", "uvicorn", "{app}", "--host", "{host}", "--port", "{port}", "--no-access-log",
           "--loop", "uvloop", "--http", "httptools", "--log-level", "warning")
GUNICORN_GTHREAD = ("{python}", "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", "160",
                    "-b", "{host}:{port}", "--graceful-timeout", "5", "--log-level", "warning", "{app}")
GUNICORN_SHARED = ("{python}", "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "-w", "4", "--threads", "40",
                   "-b", "{host}:{port}", "--log-level", "warning", "{app}")
US_APP = "examples.batched:app"
US_APP_INSTRUMENTED = "bench.diagnostics.counting_app:app"


@dataclass(frozen=True)
class Row:
    """One table row: a server command serving the toy model at ``POST /double``.

    ``argv`` is formatted with ``python``, ``host``, ``port`` and ``app``
    (``app`` is ``US_APP``, or ``US_APP_INSTRUMENTED`` under --batch-stats,
    for rows with ``utilserve=True``).
    """

    name: str  # --rows key
    label: str  # first column
    stack: str  # server / pool in words
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    utilserve: bool = False  # held to the targets; its app is swappable for the instrumented copy
    requires: tuple[str, ...] = ()  # importable modules; the row is skipped without them
    start_timeout: float = 60.0
    stop_timeout: float = 15.0  # after SIGTERM, before SIGKILL
    app: str | None = None  # the {app} of argv when not the default one


ROWS = [
    Row("utilserve-starlette", "utilserve", "starlette, uvicorn (1 process, uvloop, httptools); thread pool",
        UVICORN, (("UTILSERVE_BACKEND", "starlette"), ("UTILSERVE_POOL", "thread")), utilserve=True,
        requires=("starlette", "uvicorn")),
    Row("utilserve-flask", "utilserve", "flask, gunicorn gthread (1 worker, 160 threads); thread pool",
        GUNICORN_GTHREAD, (("UTILSERVE_BACKEND", "flask"), ("UTILSERVE_POOL", "thread")), utilserve=True,
        requires=("flask", "gunicorn")),
    Row("utilserve-flask-process", "utilserve", "flask, gunicorn gthread (4 workers x 40 threads, "
        "deploy/gunicorn.conf.py); one shared process pool", GUNICORN_SHARED,
        (("UTILSERVE_BACKEND", "flask"), ("UTILSERVE_POOL", "process")), utilserve=True,
        requires=("flask", "gunicorn"), start_timeout=90),
    Row("utilserve-starlette-ray", "utilserve", "starlette, uvicorn (1 process, uvloop, httptools); Ray pool "
        "(1 replica, local Ray started by the server)", UVICORN,
        (("UTILSERVE_BACKEND", "starlette"), ("UTILSERVE_POOL", "ray")), utilserve=True,
        requires=("starlette", "uvicorn", "ray.serve"), start_timeout=180, stop_timeout=40),
    Row("litserve", "LitServe", "1 API server process + 1 inference worker (cpu); max_batch_size=32, "
        "batch_timeout=0.005", ("{python}", "-m", "bench.apps.pool_litserve", "--host", "{host}", "--port", "{port}"),
        requires=("litserve",), start_timeout=90),
    Row("ray", "Ray Serve", "HTTP proxy + 1 replica; @serve.batch(32, 0.005 s), max_ongoing_requests=128; "
        "time.sleep in the async batch method", ("{python}", "-m", "bench.apps.pool_ray", "--host", "{host}",
                                                 "--port", "{port}"),
        requires=("ray.serve",), start_timeout=180, stop_timeout=40),
]
# Not in the default run: variants for investigating the utilserve rows (they always run the
# instrumented app, bench/diagnostics/counting_app.py; see its docstring for the knobs).
DIAGNOSTIC_ROWS = [
    Row("diag-flask-sync", "utilserve (diag)", "flask, gunicorn gthread (1 worker, 160 threads); thread pool; "
        "sync endpoint calling predict()", GUNICORN_GTHREAD,
        (("UTILSERVE_BACKEND", "flask"), ("BENCH_SYNC_ENDPOINT", "1")), utilserve=True, requires=("flask", "gunicorn"),
        app=US_APP_INSTRUMENTED),
    Row("diag-flask-sync-switch", "utilserve (diag)", "flask, gunicorn gthread (1 worker, 160 threads); thread pool; "
        "sync endpoint; sys.setswitchinterval(0.0005)", GUNICORN_GTHREAD,
        (("UTILSERVE_BACKEND", "flask"), ("BENCH_SYNC_ENDPOINT", "1"), ("BENCH_SWITCH_INTERVAL", "0.0005")),
        utilserve=True, requires=("flask", "gunicorn"), app=US_APP_INSTRUMENTED),
    Row("diag-starlette-switch", "utilserve (diag)", "starlette, uvicorn (1 process, uvloop, httptools); thread pool; "
        "sys.setswitchinterval(0.0005)", UVICORN,
        (("UTILSERVE_BACKEND", "starlette"), ("BENCH_SWITCH_INTERVAL", "0.0005")), utilserve=True,
        requires=("starlette", "uvicorn"), app=US_APP_INSTRUMENTED),
    Row("diag-native-starlette", "native (diag)", "starlette, uvicorn (1 process, uvloop, httptools); "
        "asyncio.to_thread per request, no batching (a floor for c=1 only)", UVICORN,
        requires=("starlette", "uvicorn"), app="bench.apps.pool_native:app"),
    Row("diag-ray-async-sleep", "Ray Serve (diag)", "as the ray row, but the batch method awaits "
        "asyncio.sleep(0.010) instead of time.sleep", ("{python}", "-m", "bench.apps.pool_ray", "--host", "{host}",
                                                     "--port", "{port}", "--async-sleep"),
        requires=("ray.serve",), start_timeout=180, stop_timeout=40),
]
ROW_NAMES = [row.name for row in ROWS]
ALL_ROWS = ROWS + DIAGNOSTIC_ROWS


def available(row: Row) -> str | None:
    """Why ``row`` cannot run here, or None."""
    import importlib.util

    for module in row.requires:
        try:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        except (ImportError, ValueError):
            return f"{module} is not installed"
    return None


# --- processes -------------------------------------------------------------------------------------


class Server(harness.Server):
    """A row's server, ready once ``POST /double`` answers; run in a scratch cwd (LitServe and Ray write
    files into theirs), removed when it stops."""

    def __init__(self, row: Row, argv: list[str], port: int, env: dict[str, str]) -> None:
        super().__init__(argv, env, name="pool", stop_timeout=row.stop_timeout,
                         cwd=tempfile.mkdtemp(prefix="bench-pool-cwd-"))
        self.row = row
        self.port = port

    def start(self) -> None:
        super().start()
        self.wait_ready(self._not_ready, self.row.start_timeout, 0.2)

    def _not_ready(self) -> str | None:
        status, body = harness.request(self.port, "POST", PATH, BODY, {"Content-Type": "application/json"})
        with contextlib.suppress(ValueError):
            if status == 200 and json.loads(body) == EXPECTED:
                return None
        return f"{status} {body[:200]!r}"  # e.g. 503 while the model loads

    def stop(self) -> harness.Stopped:
        stopped = super().stop()
        if not stopped.exited:
            print(f"  {self.row.name}: no exit {self.row.stop_timeout:g}s after SIGTERM; SIGKILL", flush=True)
        shutil.rmtree(self.cwd, ignore_errors=True)
        return stopped


# --- wrk ---------------------------------------------------------------------------------------------


@dataclass
class Load:
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx + socket errors
    server_cpu: float = 0.0  # server CPU time / wall time (1.0 = one core busy)
    wrk_cpu: float = 0.0
    other_cpu: float = 0.0  # the rest of the machine's busy CPU: other people's work, the bench itself
    mean_batch: float | None = None  # --batch-stats only
    batch_sizes: dict[str, int] | None = None
    phase_ms: dict[str, float] | None = None  # --batch-stats, instrumented utilserve app: mean ms per phase

    @property
    def ratio(self) -> float:
        return self.rps / LIMIT


def machine_busy_seconds() -> float:
    """Busy (non-idle, non-iowait) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, connections: int, duration: int, timeout: int) -> Load:
    threads = min(2, connections)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", f"--timeout={timeout}s",
            "-s", str(LUA), f"http://{HOST}:{port}{PATH}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    stats = harness.run_wrk(argv, duration + timeout + 30)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall
    return Load(connections, *stats, wrk_cpu=wrk_cpu)


# --- the benchmark -----------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    label: str
    stack: str
    utilserve: bool
    loads: list[Load] = field(default_factory=list)
    runs: dict[int, list[float]] = field(default_factory=dict)  # concurrency -> req/s of every run
    error: str | None = None
    survivors: list[str] = field(default_factory=list)
    startup_s: float = 0.0


def _read_stats(path: Path) -> dict[str, Any]:
    time.sleep(0.5)  # no load now: let the dump thread catch up with the last batches
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return {"batches": 0, "items": 0, "sizes": {}}


def _stats_delta(
    before: dict[str, Any], after: dict[str, Any]
) -> tuple[float | None, dict[str, int], dict[str, float]]:
    """Mean batch size, batch-size histogram and mean ms per timed phase between two snapshots."""
    batches = after["batches"] - before["batches"]
    items = after["items"] - before["items"]
    sizes = {k: v - before["sizes"].get(k, 0) for k, v in after["sizes"].items()}
    times = {}
    for name, (total, count) in after.get("times", {}).items():
        old_total, old_count = before.get("times", {}).get(name, (0.0, 0))
        if count > old_count:
            times[name] = (total - old_total) / (count - old_count) * 1000
    return (items / batches if batches else None), {k: v for k, v in sizes.items() if v}, times


def _py_spy(server: Server, seconds: int, label: str, stamp: str) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy")
    if exe is None or server.process is None:
        print("  py-spy not found; skipping the profile", flush=True)
        return None
    out = RESULTS / f"pool-{stamp}-{label}.txt"
    argv = [exe, "record", "--pid", str(server.process.pid), "--duration", str(seconds), "--rate", "200",
            "--format", "raw", "--threads", "--subprocesses", "--nonblocking", "--output", str(out)]
    print(f"  py-spy -> {out.relative_to(ROOT)}", flush=True)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def measure(row: Row, args: argparse.Namespace, stamp: str) -> Result:
    result = Result(row.name, row.label, row.stack, row.utilserve)
    port = harness.free_port()
    app = row.app or (US_APP_INSTRUMENTED if (row.utilserve and args.batch_stats) else US_APP)
    argv = [part.format(python=sys.executable, host=HOST, port=port, app=app) for part in row.argv]
    stats_path = Path(tempfile.gettempdir()) / f"bench-pool-stats-{os.getpid()}-{row.name}.json"
    env = harness.child_env({"RAY_USAGE_STATS_ENABLED": "0", "LITSERVE_DISABLE_TELEMETRY": "1", **dict(row.env)})
    if args.batch_stats:
        env["BENCH_BATCH_STATS"] = str(stats_path)
    server = Server(row, argv, port, env)
    started = time.monotonic()
    try:
        server.start()
        result.startup_s = time.monotonic() - started
        print(f"  ready in {result.startup_s:.1f}s on port {port} ({len(server.members())} processes)", flush=True)
        for concurrency in args.concurrency:
            loads: list[Load] = []
            for run in range(args.runs):
                if args.warmup and run == 0:  # later runs follow a measurement at the same concurrency
                    wrk(port, concurrency, args.warmup, args.wrk_timeout)
                before = _read_stats(stats_path) if args.batch_stats else None
                spy = None
                if args.py_spy and run == 0 and concurrency == max(args.concurrency) and row.utilserve:
                    spy = _py_spy(server, args.duration, f"{row.name}-c{concurrency}", stamp)
                cpu, busy = server.cpu_seconds(), machine_busy_seconds()
                t0 = time.monotonic()
                load = wrk(port, concurrency, args.duration, args.wrk_timeout)
                wall = time.monotonic() - t0
                load.server_cpu = (server.cpu_seconds() - cpu) / wall
                load.other_cpu = max(0.0, (machine_busy_seconds() - busy) / wall - load.server_cpu - load.wrk_cpu)
                if spy is not None:
                    spy.wait(timeout=args.duration + 30)
                if before is not None:
                    load.mean_batch, load.batch_sizes, load.phase_ms = _stats_delta(before, _read_stats(stats_path))
                loads.append(load)
                batch = f"  mean batch {load.mean_batch:.1f}" if load.mean_batch else ""
                if load.phase_ms:
                    batch += " (ms per batch: " + ", ".join(f"{k} {v:.2f}" for k, v in load.phase_ms.items()) + ")"
                note = f"  {load.errors} ERRORS" if load.errors else ""
                print(f"  c={concurrency:<4} {load.rps:8.0f} req/s  ratio {load.ratio:.2f}  p50 {load.p50_ms:6.2f} ms"
                      f"  p99 {load.p99_ms:7.2f} ms  CPU server {load.server_cpu:.2f} wrk {load.wrk_cpu:.2f}"
                      f" other {load.other_cpu:.2f}"
                      f"{batch}{note}", flush=True)
                if load.errors:
                    result.error = f"c={concurrency}: wrk saw {load.errors} non-2xx/socket errors"
            result.runs[concurrency] = [load.rps for load in loads]
            result.loads.append(sorted(loads, key=lambda load: load.rps)[(len(loads) - 1) // 2])  # the median run
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        result.error = str(error).strip()
        print(f"  {row.name}: FAILED\n{error}", file=sys.stderr, flush=True)
    finally:
        result.survivors = server.stop().survivors
        with contextlib.suppress(OSError):
            stats_path.unlink()
    if result.survivors:
        print(f"  {row.name}: processes left after SIGKILL: {result.survivors}", file=sys.stderr, flush=True)
    return result


# --- report ------------------------------------------------------------------------------------------


def command_line(args: argparse.Namespace) -> str:
    parts = ["python", "-m", "bench.pool", "--duration", str(args.duration),
             "--concurrency", ",".join(map(str, args.concurrency))]
    if args.rows != ROW_NAMES:
        parts += ["--rows", ",".join(args.rows)]
    if args.warmup != 2:
        parts += ["--warmup", str(args.warmup)]
    if args.runs != 3:
        parts += ["--runs", str(args.runs)]
    if args.batch_stats:
        parts.append("--batch-stats")
    if args.py_spy:
        parts.append("--py-spy")
    return shlex.join(parts)


def _targets(results: list[Result], concurrencies: list[int]) -> list[str]:
    lines = []
    for result in (r for r in results if r.utilserve):
        by_c = {load.concurrency: load for load in result.loads}
        where = result.stack.split(";")[0]
        if TARGET_CONCURRENCY in by_c:
            ratio = by_c[TARGET_CONCURRENCY].ratio
            verdict = "met" if ratio >= TARGET_RATIO else "**missed**"
            lines.append(f"- utilserve ({where}) at c={TARGET_CONCURRENCY}: {ratio:.2f} of the limit, "
                         f"target ≥ {TARGET_RATIO:.2f}: {verdict}.")
        if 1 in by_c:
            p50 = by_c[1].p50_ms
            verdict = "met" if p50 <= BATCH_COST_MS + TARGET_P50_SLACK_MS else "**missed**"
            lines.append(f"- utilserve ({where}) at c=1: p50 {p50:.2f} ms, target ≤ "
                         f"{BATCH_COST_MS + TARGET_P50_SLACK_MS:.0f} ms: {verdict}.")
    if not lines:
        lines.append(f"- (c=1 and c={TARGET_CONCURRENCY} were not both measured for a utilserve row)")
    return lines


def render(results: list[Result], skipped: list[str], args: argparse.Namespace, started: dt.datetime,
           load: tuple[str, str], notes: str) -> str:
    info = harness.machine()
    found = harness.versions(LIBRARIES)
    utilserve_version = found.pop("utilserve", "?")
    lines = [
        SECTION,
        "",
        "The toy model of `examples/batched.py` (`Doubler`: each batch of up to 32 items costs 10 ms of "
        "`time.sleep`, whatever its size; so at most **3,200 items/s**) served over HTTP at `POST /double` "
        "(`{\"x\": 2}` → `{\"y\": 4.0}`) by each stack in turn, one server alive at a time. Load: "
        f"`wrk -t2 -c<N> -d{args.duration}s --latency -s bench/wrk/post_double.lua` (closed loop: N "
        "connections, each sending its next request as soon as the last is answered; `-t1` at N=1) after a "
        f"{args.warmup} s warm-up at the same N"
        + (f"; {args.runs} measurements back to back per cell, the median one (by req/s) shown"
           if args.runs > 1 else "; one measurement per cell")
        + ". One item per request, so req/s = items/s; ratio = req/s ÷ 3,200.",
        "",
        *harness.provenance(command_line(args), started),
        f"- Machine: {harness.describe(info)}, {info['wrk']}. wrk runs on the same CPUs as the server.",
        f"- Versions: utilserve {utilserve_version} ({harness.source_state(SOURCES)}), "
        + ", ".join(f"{k} {v}" for k, v in found.items()),
        f"- 1-minute load average at start / end: {load[0]} / {load[1]}",
        "",
        "| stack | server, pool | N | req/s | p50 ms | p99 ms | ratio to 3,200/s | CPU server / wrk / other"
        + (" | mean batch |" if args.batch_stats else " |"),
        "|---|---|---:|---:|---:|---:|---:|---|" + ("---:|" if args.batch_stats else ""),
    ]
    for result in results:
        if not result.loads:
            cells = [result.label, result.stack, "-", "failed: see Problems"] + [""] * (5 if args.batch_stats else 4)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        for index, entry in enumerate(result.loads):
            first = index == 0
            cells = [result.label if first else "", result.stack if first else "", str(entry.concurrency),
                     f"{entry.rps:,.0f}", f"{entry.p50_ms:.2f}", f"{entry.p99_ms:.2f}", f"**{entry.ratio:.2f}**",
                     f"{entry.server_cpu:.2f} / {entry.wrk_cpu:.2f} / {entry.other_cpu:.2f}"]
            if args.batch_stats:
                cells.append(f"{entry.mean_batch:.1f}" if entry.mean_batch else "-")
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        ("CPU server / wrk / other: CPU seconds per wall second during the measured load, of the server's "
         "processes (all of them: Ray's raylet, GCS, proxy and replica; LitServe's API server and worker), of wrk, "
         f"and of everything else on the machine (other work sharing it); the machine has {info['nproc']} CPUs "
         "in all."),
        "",
        "Targets:",
        "",
        *_targets(results, args.concurrency),
        "",
        "Startup (launch to first successful POST): "
        + ", ".join(f"{r.name} {r.startup_s:.1f} s" for r in results if r.startup_s)
        + ". Every server was stopped after its row (SIGTERM, then SIGKILL to anything left in its session); "
        + ("processes left over: " + "; ".join(f"{r.name}: {r.survivors}" for r in results if r.survivors)
           if any(r.survivors for r in results) else "none was left over.") ,
    ]
    if args.runs > 1:
        lines += ["", "Per-run req/s:", ""]
        for result in results:
            for concurrency, rates in result.runs.items():
                lines.append(f"- {result.name} c={concurrency}: " + ", ".join(f"{rate:,.0f}" for rate in rates))
    problems = [r for r in results if r.error]
    if problems:
        lines += ["", "Problems:", ""]
        lines += [f"- {r.name}: {r.error.splitlines()[0]}" for r in problems if r.error]
    if skipped:
        lines += ["", "Not measured: " + "; ".join(skipped) + "."]
    lines.append("")
    if notes:
        lines += [notes.rstrip("\n"), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pool", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="whole seconds of measured load per cell (default 8)")
    parser.add_argument("--concurrency", default="1,32,128", help="comma-separated wrk -c values (default 1,32,128)")
    parser.add_argument("--rows", default=",".join(ROW_NAMES),
                        help=f"comma-separated, from {','.join(ROW_NAMES)} (default: these) and the diagnostic "
                        f"{','.join(row.name for row in DIAGNOSTIC_ROWS)}")
    parser.add_argument("--warmup", type=int, default=2, help="whole seconds of unmeasured load before each cell")
    parser.add_argument("--runs", type=int, default=3,
                        help="measurements per cell, back to back on the same server; the median (by req/s) is "
                        "reported (default 3)")
    parser.add_argument("--wrk-timeout", type=int, default=10, help="wrk --timeout per request, whole seconds")
    parser.add_argument("--batch-stats", action="store_true",
                        help="count batch sizes (utilserve rows run bench/diagnostics/counting_app.py)")
    parser.add_argument("--py-spy", action="store_true",
                        help="py-spy record the utilserve servers at the highest concurrency (bench/results/)")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing BENCHMARKS.md")
    args = parser.parse_args(argv)
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        parser.error("--concurrency takes comma-separated integers")
    if not args.concurrency or min(args.concurrency) < 1:
        parser.error("--concurrency values must be >= 1")
    if args.duration < 1 or args.warmup < 0 or args.runs < 1:
        parser.error("need --duration >= 1, --warmup >= 0, --runs >= 1 (wrk takes whole seconds)")
    args.rows = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = sorted(set(args.rows) - {row.name for row in ALL_ROWS})
    if unknown:
        parser.error(f"unknown rows {unknown}: choose from {','.join(row.name for row in ALL_ROWS)}")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk)")

    harness.exit_on_sigterm()
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    load_start = harness.loadavg()
    results: list[Result] = []
    skipped: list[str] = []
    for row in (r for r in ALL_ROWS if r.name in args.rows):
        if (why := available(row)) is not None:
            skipped.append(f"{row.name} ({why})")
            print(f"skip {row.name}: {why}", flush=True)
            continue
        print(f"{row.name}: {row.stack}", flush=True)
        results.append(measure(row, args, stamp))

    notes = harness.current_notes(SECTION)
    section = render(results, skipped, args, started, (load_start, harness.loadavg()), notes)
    raw = RESULTS / f"pool-{stamp}.json"
    raw.write_text(json.dumps({"command": command_line(args), "date": started.isoformat(),
                               "machine": harness.machine(), "versions": harness.versions(LIBRARIES),
                               "results": [asdict(r) for r in results]}, indent=2))
    print(section)
    if not args.no_write:
        harness.write_section(section, SECTION)
        print(f"wrote {SECTION!r} to {BENCHMARKS} (raw: {raw.relative_to(ROOT)})")
    return 1 if any(r.error or r.survivors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
