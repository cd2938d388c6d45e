"""Streaming: the toy streaming model of examples/stream.py over HTTP, and slow readers of a large stream.

Each step of the model costs 5 ms for up to 32 items and gives each item
one output, so no server streams more than 6,400 outputs/s. Each client
POSTs ``{"prompt": ..., "tokens": 64}`` to the model's route and reads the
event stream to its end, then sends the next (closed loop); it notes the
time to the first event and counts every event. One server at a time.
Adding a row is one ``Row`` in ``ROWS``.

``--slow-readers``: instead, a generator endpoint (``bench/apps/stream_blob.py``)
streams 10 MiB in 64 KiB chunks to 200 clients that each read 1 byte per
50 ms from a tiny receive buffer; the server's memory (RSS summed over its
processes) before and at the end, and the latency of another client that
keeps being served meanwhile.
"""

import argparse
import datetime as dt
import http.client
import json
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.servers import HOST, Server, exit_on_sigterm, request

from . import loadgen, pool, report, serving, sse_load
from .loadgen import UVICORN
from .serving import Row
from .sse_load import Cell, SlowReaders

SECTION = "## Streaming"
STEP_MS = 5.0
MAX_BATCH = 32
LIMIT = MAX_BATCH / STEP_MS * 1000  # outputs/s: 32 outputs per 5 ms step
TOKENS = 64
PATH = "/generate"
BODY = json.dumps({"prompt": "the quick brown fox jumps over the lazy dog", "tokens": TOKENS}).encode()
MODEL_APP = "examples.stream:app"
BLOB_APP = "bench.apps.stream_blob:app"
SOURCES = ["utilserve", "examples", "bench"]
LIBRARIES = "utilserve litserve ray uvicorn gunicorn starlette Flask fastapi uvloop httptools httpx pydantic"
TARGET_CONCURRENCY = 128
TARGETS = {  # row name -> least share of LIMIT at TARGET_CONCURRENCY
    "utilserve-starlette": 0.85,
    "utilserve-flask-process": 0.75,
}
TARGET_FIRST_MS = {"utilserve-starlette": STEP_MS + 1.0}  # p50 at c=1: one step and 1 ms more
SLOW_CLIENTS, SLOW_SIZE, SLOW_CHUNK = 200, 10 * 1024 * 1024, 64 * 1024
SLOW_INTERVAL_S, SLOW_RCVBUF = 0.05, 1024
SLOW_TARGET_MB = 100.0
PROBE_EVERY_S = 0.5
PROBE_PATH = f"/blob?size={SLOW_CHUNK}&chunk={SLOW_CHUNK}"


GUNICORN_SLOW = pool.GUNICORN_SHARED.replace("--threads 40", "--threads 64")
ROWS = [  # each streaming the toy model at ``POST /generate``: one ``data: {...}`` event per output
    pool.STARLETTE,
    pool.FLASK_PROCESS,
    Row(
        "native-starlette",
        "starlette, uvicorn (1 process, uvloop, httptools); each request steps on its own thread hop, no batching",
        UVICORN,
        "starlette uvicorn",
        label="Starlette alone",
        app="bench.apps.stream_native:app",
    ),
    Row(
        "litserve",
        "1 API server process + 1 inference worker (cpu); stream=True, ContinuousBatchingLoop, 32 items at most",
        "LITSERVE_DISABLE_TELEMETRY=1 {python} -m bench.apps.stream_litserve --port {port} --loop continuous",
        "litserve",
        label="LitServe",
    ),
    Row(
        "ray",
        "HTTP proxy + 1 replica; StreamingResponse of an async generator; @serve.batch(32, 0.005 s) on an async "
        "generator (static batches), each step in asyncio.to_thread; max_ongoing_requests=256",
        "RAY_USAGE_STATS_ENABLED=0 {python} -m bench.apps.stream_ray --port {port}",
        "ray",
        label="Ray Serve",
        start_timeout=180,
        stop_timeout=40,
    ),
]
SLOW_ROWS = [
    Row(
        "utilserve-starlette",
        "starlette, uvicorn (1 process, uvloop, httptools)",
        f"UTILSERVE_BACKEND=starlette {UVICORN}",
        "starlette uvicorn",
    ),
    Row(
        "utilserve-flask",
        "flask, gunicorn gthread (4 workers x 64 threads, deploy/gunicorn.conf.py)",
        f"UTILSERVE_BACKEND=flask UTILSERVE_POOL=thread {GUNICORN_SLOW}",
        "flask gunicorn",
    ),
]


@dataclass
class Result(serving.Outcome):
    cells: list[Cell] = field(default_factory=list)
    server_cpu: dict[int, float] = field(default_factory=dict)  # by clients
    other_cpu: dict[int, float] = field(default_factory=dict)
    skipped: str | None = None  # why the row could not be measured in this checkout


def probe(port: int) -> tuple[int, str, bytes]:
    """One short stream: status, content type and body (a 503 while the model loads)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        body = json.dumps({"prompt": "ready", "tokens": 2})
        connection.request("POST", PATH, body, {"Content-Type": "application/json", "Accept": "text/event-stream"})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def streams(status: int, body: bytes) -> bool:
    return status == 200 and body.count(sse_load.EVENT) == 2


def why_not(status: int, content_type: str, body: bytes) -> str:
    """The server's answer to a stream it did not give, in a line."""
    detail = body[:300].decode(errors="replace")
    try:
        error = json.loads(body)["error"]
        detail = error.get("detail", {}).get("exception") or error.get("message") or detail
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return f"`POST {PATH}` answered HTTP {status} ({content_type or 'no content type'}): {detail}".strip()


def measure(row: Row, concurrency: list[int], warmup: float, duration: float, client: str) -> Result:
    result = Result(row)
    answer: list[tuple[int, str, bytes]] = []

    def answered(
        port: int,
    ) -> bool:  # ready once the route answers, but the 503 of a model loading, or a 404 (Ray deploying)
        answer[:] = [probe(port)]
        return answer[0][0] not in (404, 503)

    with serving.served(result, MODEL_APP, answered) as server:
        status, content_type, body = answer[0]
        if not streams(status, body):
            result.skipped = why_not(status, content_type, body)
            print(f"  {row.name}: cannot stream here: {result.skipped}", flush=True)
            return result
        serving.ready(result, server)
        for n in concurrency:
            cpu, machine = server.cpu_seconds(), loadgen._machine_cpu_seconds()
            cell = sse_load.run_load(server.port, PATH, BODY, n, warmup, duration, client)
            # the server's and the machine's CPU over warm-up and load together: the clients never pause between
            spent, wall = server.cpu_seconds() - cpu, warmup + cell.wall_s
            result.server_cpu[n] = spent / wall
            result.other_cpu[n] = max(0.0, (loadgen._machine_cpu_seconds() - machine - spent) / wall - cell.client_cpu)
            result.cells.append(cell)
            print(f"  c={n:<4} {summary(cell)}  server CPU {result.server_cpu[n]:.2f}", flush=True)
            if cell.errors:
                result.error = result.error or f"c={n}: {cell.errors} failed streams ({cell.error})"
            time.sleep(0.5)  # let the streams dropped at the end of the load go
    return result


def summary(cell: Cell) -> str:
    return (
        f"{cell.outputs_per_s:8.0f} outputs/s ({cell.outputs_per_s / LIMIT:.2f})  "
        f"{cell.requests_per_s:6.1f} streams/s  "
        f"first p50 {cell.first_p50_ms:7.2f} ms p99 {cell.first_p99_ms:8.2f} ms  "
        f"stream p50 {cell.whole_p50_ms:7.0f} ms  {cell.censored} still waiting  client CPU {cell.client_cpu:.2f} "
        f"({cell.client_us_per_output:.0f} µs/output)" + (f"  {cell.errors} ERRORS" if cell.errors else "")
    )


def targets(results: list[Result]) -> list[str]:
    lines = []
    for result in results:
        name, by_n = result.row.name, {cell.clients: cell for cell in result.cells}
        if name in TARGETS:
            least = TARGETS[name]
            if cell := by_n.get(TARGET_CONCURRENCY):
                share = cell.outputs_per_s / LIMIT
                lines.append(
                    f"- {name} at c={TARGET_CONCURRENCY}: {share:.2f} of the limit ({cell.outputs_per_s:,.0f} "
                    f"outputs/s), target ≥ {least:.2f}: {report.verdict(share >= least)}"
                )
            else:
                lines.append(f"- {name} at c={TARGET_CONCURRENCY}, target ≥ {least:.2f}: not measured.")
        if name in TARGET_FIRST_MS:
            most = TARGET_FIRST_MS[name]
            if cell := by_n.get(1):
                lines.append(
                    f"- {name} at c=1: time to first output p50 {cell.first_p50_ms:.2f} ms, target ≤ {most:.0f} ms: "
                    f"{report.verdict(cell.first_p50_ms <= most)}"
                )
            else:
                lines.append(f"- {name} at c=1, target p50 ≤ {most:.0f} ms: not measured.")
    return lines


COLUMNS = (
    "N: | outputs/s: | ratio to 6,400/s: | streams/s: | first output p50 ms: | p99 ms: | whole stream p50 ms: "
    "| CPU server / client / other"
)


def render(results: list[Result], skipped: list[str], args: argparse.Namespace, started: dt.datetime) -> list[str]:
    rows = [line for r in results for line in serving.lines(r.row, [cells_of(r, c) for c in r.cells], 8, r.skipped)]
    client = (
        "raw sockets on asyncio streams under uvloop (one `read` per arrival; events counted by scanning the bytes "
        "for `data:`, the chunked framing's end found by its last bytes)"
        if args.client == "raw"
        else "httpx `AsyncClient.stream` + `aiter_raw` (the bytes scanned for `data:`)"
    )
    machine = (
        f"{report.machine(wrk=False)}; **shared with other work** (other engineers' tests ran at the same time: see "
        'the "other" CPU column and the load average). The clients run on the same CPUs as the server.'
    )
    lines = [
        "The streaming toy model of `examples/stream.py` (`Generator`: each step costs 5 ms of `time.sleep` for up "
        "to 32 items and gives each one output; so at most **6,400 outputs/s**) at `POST /generate`, each stack in "
        f"turn, one server alive at a time. Load: N closed-loop clients in one process ({client}), each on one "
        f"keep-alive connection POSTing `{BODY.decode()}` and reading the event stream to its end before the next; "
        f"{args.warmup:g} s of warm-up, then {args.duration:g} s measured, one measurement per cell. outputs/s: "
        "events received in the measured seconds; first output: from sending the request to the arrival of its "
        "first event, over the streams whose first event came in those seconds and, as what they had waited so far "
        "(a lower bound), those still waiting at the end; whole stream: from sending to the end of the stream, the "
        "same way. Each stream is 64 outputs, so "
        "streams/s x 64 ≈ outputs/s.",
        "",
        *report.setting(started, machine, LIBRARIES, SOURCES, (args.load_start, report.loadavg())),
        "",
        *report.table(f"stack | server, pool | {COLUMNS}", rows),
        "",
        "CPU server / client / other: CPU seconds per wall second, of the server's processes (all of them), of the "
        "load generator, and of everything else on the machine (other work sharing it); the server's and the "
        f"rest's over warm-up and measurement together. The machine has {os.cpu_count()} CPUs in all.",
        *report.block("Targets:", targets(results) or ["- (no utilserve row with a target was measured)"]),
        "",
        serving.startup(results, "launch to the first answer of the route"),
    ]
    return lines + serving.problems(results, skipped)


def cells_of(result: Result, cell: Cell) -> list[str]:
    n = cell.clients
    cpu = f"{result.server_cpu.get(n, math.nan):.2f} / {cell.client_cpu:.2f} / {result.other_cpu.get(n, math.nan):.2f}"
    return [
        str(n),
        f"{cell.outputs_per_s:,.0f}",
        f"**{cell.outputs_per_s / LIMIT:.2f}**",
        f"{cell.requests_per_s:,.1f}",
        f"{cell.first_p50_ms:.2f}",
        f"{cell.first_p99_ms:.2f}" + (f" ({cell.censored} still waiting)" if cell.censored else ""),
        f"{cell.whole_p50_ms:,.0f}",
        cpu,
    ]


# Slow readers


def rss_mb(server: Server) -> float:
    """Resident memory of the server's live processes, summed, in MB (10^6 bytes)."""
    total = 0
    for pid in server.members():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total / 1e6


@dataclass
class SlowResult(serving.Outcome):
    before_mb: float = 0.0
    end_mb: float = 0.0
    peak_mb: float = 0.0
    seen: SlowReaders | None = None
    server_cpu: float = 0.0


def measure_slow(row: Row, clients: int, seconds: float) -> SlowResult:
    result = SlowResult(row)
    with serving.served(result, BLOB_APP, PROBE_PATH) as server:
        for _ in range(3):  # a few requests first, so that "before" is a server that has served
            request(server.port, "GET", PROBE_PATH)
        result.before_mb = result.peak_mb = rss_mb(server)
        cpu = server.cpu_seconds()
        path = f"/blob?size={SLOW_SIZE}&chunk={SLOW_CHUNK}"
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                result.peak_mb = max(result.peak_mb, rss_mb(server))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        try:
            result.seen = sse_load.slow_readers(
                server.port, path, clients, seconds, SLOW_INTERVAL_S, SLOW_RCVBUF, PROBE_PATH, PROBE_EVERY_S
            )
            result.end_mb = rss_mb(server)  # the slow readers are gone only just now
        finally:
            done.set()
            sampler.join()
        result.peak_mb = max(result.peak_mb, result.end_mb)
        result.server_cpu = (server.cpu_seconds() - cpu) / (time.monotonic() - started)
        seen = result.seen
        print(
            f"  RSS {result.before_mb:.1f} MB -> {result.end_mb:.1f} MB at the end (peak {result.peak_mb:.1f}); "
            f"{seen.connected} connected, {seen.answered_200} answered 200, {seen.closed_early} closed early; "
            f"probe {len(seen.probe_ms)} ok p50 {sse_load.median(seen.probe_ms):.1f} ms max "
            f"{max(seen.probe_ms, default=math.nan):.1f} ms, {seen.probe_failures} failed {seen.probe_error}; "
            f"server CPU "
            f"{result.server_cpu:.2f}",
            flush=True,
        )
    return result


def render_slow(results: list[SlowResult], args: argparse.Namespace, started: dt.datetime) -> list[str]:
    found, rows = report.versions(LIBRARIES), []
    for r in results:
        seen = r.seen
        if seen is None:
            rows.append([r.row.stack, "failed: see Problems", "", "", "", "", ""])
            continue
        grown = r.end_mb - r.before_mb
        probe = (
            f"{len(seen.probe_ms)} served, p50 {sse_load.median(seen.probe_ms):.1f} ms, max "
            f"{max(seen.probe_ms, default=math.nan):.1f} ms; {seen.probe_failures} failed"
            + (f" ({seen.probe_error})" if seen.probe_error else "")
        )
        rows.append(
            [
                r.row.stack,
                f"{seen.connected} / {seen.answered_200}",
                f"{r.before_mb:.1f}",
                f"{r.end_mb:.1f} (peak {r.peak_mb:.1f})",
                f"**{grown:+.1f}**",
                probe,
                f"{r.server_cpu:.2f}",
            ]
        )
    verdicts = [
        f"- {r.row.name}: RSS grew {r.end_mb - r.before_mb:+.1f} MB, target < {SLOW_TARGET_MB:.0f} MB: "
        f"{report.verdict(r.end_mb - r.before_mb < SLOW_TARGET_MB)}"
        for r in results
        if r.seen
    ] + [
        f"- {r.row.name}: the other client was answered every time meanwhile: "
        f"{report.verdict(r.seen.probe_failures == 0 and bool(r.seen.probe_ms))}"
        for r in results
        if r.seen
    ]
    return [
        "### Slow readers",
        "",
        f"`GET /blob?size={SLOW_SIZE}&chunk={SLOW_CHUNK}` of `bench/apps/stream_blob.py` (a sync generator "
        f"yielding 64 KiB chunks of a 10 MiB body) to {args.slow_clients} clients at once, each reading 1 byte "
        f"every {SLOW_INTERVAL_S * 1000:.0f} ms (raw sockets, `SO_RCVBUF` {SLOW_RCVBUF} set before connecting; all "
        f"polled from one thread), for {args.slow_seconds:g} s. Meanwhile another client GETs `{PROBE_PATH}` "
        f"(one 64 KiB chunk) on a new connection every {PROBE_EVERY_S:g} s. RSS: VmRSS summed over the server's "
        "processes (from /proc), after a few requests (before) and as the slow readers leave (end); peak: the "
        "largest of 1 s samples.",
        "",
        *report.provenance(started),
        f"- Machine: {report.machine(wrk=False)}; shared with other work.",
        f"- Versions: utilserve {found.get('utilserve', '?')} ({report.source_state(SOURCES)}), uvicorn "
        f"{found.get('uvicorn', '?')}, gunicorn {found.get('gunicorn', '?')}, Flask {found.get('Flask', '?')}, "
        f"starlette {found.get('starlette', '?')}",
        "",
        *report.table(
            "server | slow readers connected / answered 200 | RSS before MB: | RSS end MB: | grown MB: "
            "| other client meanwhile | CPU server",
            rows,
        ),
        *report.block("Targets:", verdicts),
        *report.block(
            "Problems:",
            [f"- {r.row.name}: {r.error.splitlines()[0]}" for r in results if r.error]
            + [f"- {r.row.name}: left over {r.survivors}" for r in results if r.survivors],
        ),
    ]


def publish(lines: list[str], write: bool) -> None:
    """Put ``lines`` in as the part of the section they are: the load (before "### Slow readers") or the slow
    readers (that subsection); the other part and the notes stay as they were."""
    text = report.BENCHMARKS.read_text() if report.BENCHMARKS.exists() else ""
    old = re.search(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    body = old.group(0) if old else ""
    slow = re.search(r"^### Slow readers\n.*?(?=^### |\Z)", body, re.MULTILINE | re.DOTALL)
    if lines and lines[0] == "### Slow readers":
        load_part = body[len(SECTION) + 1 : slow.start() if slow else len(body)]
        load_part = re.sub(r"^### Notes\n.*", "", load_part, flags=re.MULTILINE | re.DOTALL).strip("\n")
        report.publish(SECTION, [*load_part.splitlines(), "", *lines], write)
    else:
        keep = slow.group(0).rstrip("\n").splitlines() if slow else []
        report.publish(SECTION, [*lines, *(["", *keep] if keep else [])], write)


def main() -> int:
    parser = report.parser("bench.stream", __doc__)
    report.add_names(parser, "--rows", [row.name for row in ROWS])
    parser.add_argument("--concurrency", type=lambda t: [int(n) for n in t.split(",")], default=[1, 32, 128])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each cell")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw", help="the load's HTTP client")
    parser.add_argument("--slow-readers", action="store_true", help="measure slow readers instead of the load")
    parser.add_argument(
        "--slow-rows", type=lambda t: t.split(","), default=[r.name for r in SLOW_ROWS], help="with --slow-readers"
    )
    parser.add_argument("--slow-clients", type=int, default=SLOW_CLIENTS)
    parser.add_argument("--slow-seconds", type=float, default=20.0)
    args = parser.parse_args()
    exit_on_sigterm()
    started, args.load_start = dt.datetime.now(dt.UTC), report.loadavg()
    if args.slow_readers:
        slow_results = []
        for row in (row for row in SLOW_ROWS if row.name in args.slow_rows):
            print(f"{row.name} (slow readers): {row.stack}", flush=True)
            slow_results.append(measure_slow(row, args.slow_clients, args.slow_seconds))
        publish(render_slow(slow_results, args, started), not args.no_write)
        return 1 if any(r.error or r.survivors for r in slow_results) else 0
    skipped: list[str] = []
    results = [
        measure(row, args.concurrency, args.warmup, args.duration, args.client)
        for row in serving.chosen(ROWS, args.rows, skipped)
    ]
    publish(render(results, skipped, args, started), not args.no_write)
    return 1 if any(r.error or r.survivors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
