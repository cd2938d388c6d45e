"""The shared process pool: IPC cost, throughput under ``gunicorn -w 4``, and memory.

    python -m bench.shared [--duration 8] [--runs 3] [--concurrency 1,32,128] [--rounds 5000]
                           [--parts ipc,throughput,memory] [--no-write]

(a) IPC (bench/pool_ipc.py): round trips of one tiny item, one at a time,
    from a bare socket echo up to the full path (web process -> model
    worker and back); then large ``bytes`` inputs, out of band vs
    inside the pickle stream.
(b) Throughput (bench/pool.py's harness and toy model, at most 3,200
    items/s): flask under ``gunicorn -c deploy/gunicorn.conf.py -w 4
    --threads 40`` with one process pool shared by the four workers, against
    the same server with a thread pool (a model) in each worker; and, as the
    ceiling of this web stack on this machine, the same server running a
    plain Flask app that answers ``POST /double`` at once, with no model;
    last, the process pool behind Starlette in uvicorn workers under the same
    deploy file (``UTILSERVE_WORKER_CLASS``), the ASGI variant.
(c) Memory (bench/shared_memory.py): 4 web workers + pool with a 200 MiB
    model, against one model per worker and the workers' own baseline.

Writes the "## Shared process pool" section of BENCHMARKS.md (a hand-written
"### Notes" subsection in it is kept) unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys

from . import harness, pool, pool_ipc, shared_memory
from .pool import GUNICORN_SHARED, Row

SECTION = "## Shared process pool"
PARTS = ("ipc", "throughput", "memory")
IPC_TARGET_US = 100.0
FLASK = (("UTILSERVE_BACKEND", "flask"),)
ASGI = (("UTILSERVE_BACKEND", "starlette"), ("UTILSERVE_WORKER_CLASS", "uvicorn_worker.UvicornWorker"))
ROWS = [
    Row("shared-process", "utilserve", "flask: one process pool shared by the 4 workers", GUNICORN_SHARED,
        (*FLASK, ("UTILSERVE_POOL", "process")), utilserve=True, requires=("flask", "gunicorn"), start_timeout=90),
    Row("shared-thread", "utilserve", "flask: a thread pool in each of the 4 workers (4 models)", GUNICORN_SHARED,
        (*FLASK, ("UTILSERVE_POOL", "thread")), requires=("flask", "gunicorn"), start_timeout=90),
    Row("shared-ceiling", "plain Flask", "no model: answers at once (the web stack's ceiling)", GUNICORN_SHARED,
        requires=("flask", "gunicorn"), app="bench.apps.pool_native_flask:app"),
    Row("shared-process-asgi", "utilserve", "starlette, uvicorn workers: one process pool shared by the 4 workers",
        GUNICORN_SHARED, (*ASGI, ("UTILSERVE_POOL", "process")), requires=("starlette", "gunicorn", "uvicorn_worker"),
        start_timeout=90),
]


def ipc_part(rounds: int, large_rounds: int) -> list[str]:
    small = pool_ipc.small(rounds)
    full = next(p50 for name, p50, _ in small if name.startswith("pool:"))
    verdict = "met" if full < IPC_TARGET_US else "**missed**"
    return [
        "### (a) IPC round trip",
        "",
        f"`python -m bench.pool_ipc --rounds {rounds} --large-rounds {large_rounds}` (one request at a time).",
        "",
        pool_ipc.markdown(small, pool_ipc.large(large_rounds)),
        f"Target: tiny item through the pool, p50 under {IPC_TARGET_US:.0f} µs: {full:.0f} µs, {verdict}.",
        "",
    ]


def throughput_part(args: argparse.Namespace, stamp: str) -> list[str]:
    lines = [
        "### (b) Throughput under gunicorn -w 4",
        "",
        ("`gunicorn -c deploy/gunicorn.conf.py -w 4 --threads 40` (gthread; uvicorn workers for the ASGI row), "
         "the toy model of `examples/batched.py` "
        f"(10 ms per batch of up to 32: at most 3,200 items/s), `wrk -c<N> -d{args.duration}s`, "
        f"{args.runs} runs per cell, the median shown."),
        "",
        "| serving | N | req/s | p50 ms | p99 ms | ratio to 3,200/s | CPU server / wrk / other |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    results = {}
    for row in ROWS:
        if (why := pool.available(row)) is not None:
            lines.append(f"| {row.label}: {row.stack} | - | not measured: {why} | | | | |")
            continue
        print(f"{row.name}: {row.stack}", flush=True)
        result = results[row.name] = pool.measure(row, args, stamp)
        if result.error or result.survivors:
            lines.append(f"| {row.label}: {row.stack} | - | failed: {result.error or result.survivors} | | | | |")
        for index, load in enumerate(result.loads):
            first = f"{row.label}: {row.stack}" if index == 0 else ""
            lines.append(
                f"| {first} | {load.concurrency} | {load.rps:,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} | "
                f"**{load.ratio:.2f}** | {load.server_cpu:.2f} / {load.wrk_cpu:.2f} / {load.other_cpu:.2f} |"
            )
    lines += ["", *_throughput_verdicts(results), ""]
    return lines


def _throughput_verdicts(results: dict[str, pool.Result]) -> list[str]:
    def at_target(name: str) -> pool.Load | None:
        result = results.get(name)
        loads = {load.concurrency: load for load in result.loads} if result else {}
        return loads.get(pool.TARGET_CONCURRENCY)

    names = ("shared-process", "shared-thread", "shared-ceiling", "shared-process-asgi")
    shared, per_worker, ceiling, asgi = (at_target(name) for name in names)
    if shared is None:
        return [f"Target: not measured at c={pool.TARGET_CONCURRENCY}."]
    lines = [_verdict("flask", shared)]
    if asgi is not None:
        lines.append(_verdict("starlette in uvicorn workers", asgi))
    if per_worker is not None:
        lines.append(f"- Process pool vs a thread pool per worker at c={pool.TARGET_CONCURRENCY}: "
                     f"{shared.rps / per_worker.rps:.2f}x the req/s.")
    if ceiling is not None:
        lines.append(f"- Ceiling: with no model at all this server answers {ceiling.rps:,.0f} req/s "
                     f"({ceiling.ratio:.2f} of 3,200/s); the process pool reaches {shared.rps / ceiling.rps:.2f} of it.")
    return lines


def _verdict(stack: str, load: pool.Load) -> str:
    verdict = "met" if load.ratio >= pool.TARGET_RATIO else "**missed**"
    return (f"- Target: process pool ({stack}) at c={pool.TARGET_CONCURRENCY} at least {pool.TARGET_RATIO:.2f} "
            f"of 3,200/s: {load.ratio:.2f}, {verdict}.")


def memory_part(settle_s: float) -> list[str]:
    rows = shared_memory.measure(settle_s=settle_s)
    return [
        "### (c) Memory: 4 web workers + a 200 MiB model",
        "",
        ("`python -m bench.shared_memory` (gunicorn -c deploy/gunicorn.conf.py -w 4, flask, "
        "bench/apps/shared_memory.py)."),
        "",
        shared_memory.markdown(rows),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shared", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {','.join(PARTS)}")
    parser.add_argument("--duration", type=int, default=8, help="whole seconds of measured load per cell")
    parser.add_argument("--concurrency", default="1,32,128", help="comma-separated wrk -c values")
    parser.add_argument("--runs", type=int, default=3, help="measurements per cell; the median is shown")
    parser.add_argument("--warmup", type=int, default=2, help="whole seconds of unmeasured load before each cell")
    parser.add_argument("--rounds", type=int, default=5000, help="round trips per IPC row")
    parser.add_argument("--large-rounds", type=int, default=20, help="round trips per large-input size")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between loading and reading memory")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing BENCHMARKS.md")
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    if unknown := sorted(set(parts) - set(PARTS)):
        parser.error(f"unknown parts {unknown}: choose from {','.join(PARTS)}")
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.wrk_timeout, args.batch_stats, args.py_spy = 10, False, False
    if "throughput" in parts and shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk)")

    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    info = harness.machine()
    lines = [
        SECTION,
        "",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M %Z').strip()}; `python -m bench.shared --parts {','.join(parts)}`",
        f"- Machine: {harness.describe(info)}; utilserve {harness.source_state(pool.SOURCES)}",
        f"- 1-minute load average at start: {harness.loadavg()}",
        "",
    ]
    if "ipc" in parts:
        lines += ipc_part(args.rounds, args.large_rounds)
    if "throughput" in parts:
        lines += throughput_part(args, stamp)
    if "memory" in parts:
        lines += memory_part(args.settle)
    lines.append(f"1-minute load average at end: {harness.loadavg()}")
    notes = harness.current_notes(SECTION)
    section = "\n".join(lines) + "\n" + (f"\n{notes}" if notes else "")
    print(section)
    if not args.no_write:
        harness.write_section(section, SECTION)
        print(f"wrote {SECTION!r} to {harness.BENCHMARKS}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
