"""The shared process pool: IPC cost, throughput under ``gunicorn -w 4``, and memory.

    python -m bench.shared [--parts ipc,throughput,memory] [--runs 3] [--duration 8] [--concurrency 1,32,128]
                           [--no-write]

One section from ``bench.pool_ipc``, ``bench.pool``'s toy model under ``deploy/gunicorn.conf.py`` with four
web workers (one shared pool against a model per worker), and ``bench.shared_memory``.
"""

import argparse
import datetime as dt
import sys

from tests.support.servers import exit_on_sigterm

from . import pool, pool_ipc, report, shared_memory
from .loadgen import Load
from .pool import GUNICORN_SHARED, Row

SECTION = "## Shared process pool"
PARTS = ("ipc", "throughput", "memory")
IPC_ROUNDS, IPC_LARGE_ROUNDS = 5000, 20
IPC_TARGET_US = 100.0
ROWS = [
    Row(
        "shared-process",
        "utilserve",
        "flask: one process pool shared by the 4 workers",
        GUNICORN_SHARED,
        "UTILSERVE_BACKEND=flask UTILSERVE_POOL=process",
        ("flask", "gunicorn"),
        utilserve=True,
        start_timeout=90,
    ),
    Row(
        "shared-thread",
        "utilserve",
        "flask: a thread pool in each of the 4 workers (4 models)",
        GUNICORN_SHARED,
        "UTILSERVE_BACKEND=flask UTILSERVE_POOL=thread",
        ("flask", "gunicorn"),
        start_timeout=90,
    ),
    Row(
        "shared-ceiling",
        "plain Flask",
        "no model: answers at once (the web stack's ceiling)",
        GUNICORN_SHARED,
        "",
        ("flask", "gunicorn"),
        app="bench.apps.pool_native_flask:app",
    ),
    Row(
        "shared-process-asgi",
        "utilserve",
        "starlette, uvicorn workers: one process pool shared by the 4 workers",
        GUNICORN_SHARED,
        "UTILSERVE_BACKEND=starlette UTILSERVE_WORKER_CLASS=uvicorn_worker.UvicornWorker UTILSERVE_POOL=process",
        ("starlette", "gunicorn", "uvicorn_worker"),
        start_timeout=90,
    ),
]


def ipc_part() -> list[str]:
    small = pool_ipc.small(IPC_ROUNDS)
    p50 = next(p50 for name, p50, _ in small if name.startswith("pool:"))
    return [
        "### (a) IPC round trip",
        "",
        f"`python -m bench.pool_ipc --rounds {IPC_ROUNDS} --large-rounds {IPC_LARGE_ROUNDS}` (one request at a time).",
        "",
        *pool_ipc.markdown(small, pool_ipc.large(IPC_LARGE_ROUNDS)),
        f"Target: tiny item through the pool, p50 under {IPC_TARGET_US:.0f} µs: {p50:.0f} µs, "
        + ("met." if p50 < IPC_TARGET_US else "**missed**."),
        "",
    ]


def throughput_part(args: argparse.Namespace) -> list[str]:
    rows, at_target = [], {}
    for row in ROWS:
        serving = f"{row.label}: {row.stack}"
        if missing := row.missing():
            rows.append([serving, "-", f"not measured: {', '.join(missing)} not installed", "", "", "", ""])
            continue
        print(f"{row.name}: {row.stack}", flush=True)
        result = pool.measure(row, args.concurrency, args.duration, args.runs)
        if result.error or result.survivors:
            rows.append([serving, "-", f"failed: {result.error or result.survivors}", "", "", "", ""])
        rows += [[serving if index == 0 else "", *pool.load_cells(load)] for index, load in enumerate(result.loads)]
        at_target[row.name] = next((load for load in result.loads if load.connections == pool.TARGET_CONCURRENCY), None)
    return [
        "### (b) Throughput under gunicorn -w 4",
        "",
        "`gunicorn -c deploy/gunicorn.conf.py -w 4 --threads 40` (gthread; uvicorn workers for the ASGI row), the "
        "toy model of `examples/batched.py` (10 ms per batch of up to 32: at most 3,200 items/s), "
        f"`wrk -c<N> -d{args.duration}s`, {args.runs} runs per cell, the median shown.",
        "",
        *report.table(["serving", *pool.LOAD_COLUMNS], rows),
        "",
        *verdicts(at_target),
        "",
    ]


def verdicts(at_target: dict[str, Load | None]) -> list[str]:
    """The targets and comparisons at the target concurrency."""
    shared, per_worker, ceiling, asgi = (at_target.get(row.name) for row in ROWS)
    if shared is None:
        return [f"Target: not measured at c={pool.TARGET_CONCURRENCY}."]
    lines = [
        f"- Target: process pool ({stack}) at c={pool.TARGET_CONCURRENCY} at least {pool.TARGET_RATIO:.2f} of "
        f"3,200/s: {pool.ratio(load):.2f}, " + ("met." if pool.ratio(load) >= pool.TARGET_RATIO else "**missed**.")
        for stack, load in (("flask", shared), ("starlette in uvicorn workers", asgi))
        if load is not None
    ]
    if per_worker is not None:
        lines.append(
            f"- Process pool vs a thread pool per worker at c={pool.TARGET_CONCURRENCY}: "
            f"{shared.rps / per_worker.rps:.2f}x the req/s."
        )
    if ceiling is not None:
        lines.append(
            f"- Ceiling: with no model at all this server answers {ceiling.rps:,.0f} req/s ("
            f"{pool.ratio(ceiling):.2f} of 3,200/s); the process pool reaches {shared.rps / ceiling.rps:.2f} "
            "of it."
        )
    return lines


def memory_part() -> list[str]:
    return [
        "### (c) Memory: 4 web workers + a 200 MiB model",
        "",
        "`python -m bench.shared_memory` (gunicorn -c deploy/gunicorn.conf.py -w 4, flask, "
        "bench/apps/shared_memory.py).",
        "",
        *shared_memory.markdown(shared_memory.measure()),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.shared", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--parts",
        type=lambda text: text.split(","),
        default=list(PARTS),
        help="comma-separated, from " + ",".join(PARTS),
    )
    pool.add_load_options(parser)
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if unknown := sorted(set(args.parts) - set(PARTS)):
        parser.error(f"unknown parts {unknown}: choose from {','.join(PARTS)}")

    exit_on_sigterm()
    started = dt.datetime.now(dt.UTC)
    lines = [
        f"- Date: {started.strftime('%Y-%m-%d %H:%M %Z')}; `{report.command()}`",
        f"- Machine: {report.machine(wrk=False)}; utilserve {report.source_state(pool.SOURCES)}",
        f"- 1-minute load average at start: {report.loadavg()}",
        "",
    ]
    parts = {"ipc": ipc_part, "throughput": lambda: throughput_part(args), "memory": memory_part}
    for part in (part for part in PARTS if part in args.parts):
        lines += parts[part]()
    lines.append(f"1-minute load average at end: {report.loadavg()}")
    report.publish(SECTION, lines, not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
