"""The shared process pool: IPC cost, throughput under ``gunicorn -w 4``, and memory.

One section from ``bench.pool_ipc``, ``bench.pool``'s toy model under ``deploy/gunicorn.conf.py`` with four
web workers (one shared pool against a model per worker), and ``bench.shared_memory``.
"""

import argparse
import datetime as dt
import sys

from tests.support.servers import exit_on_sigterm

from . import pool, pool_ipc, report, shared_memory
from .pool import GUNICORN_SHARED
from .serving import Row

SECTION = "## Shared process pool"
PARTS = ("ipc", "throughput", "memory")
IPC_ROUNDS, IPC_LARGE_ROUNDS = 5000, 20
IPC_TARGET_US = 100.0
ROWS = [
    Row(
        "shared-process",
        "flask: one process pool shared by the 4 workers",
        f"UTILSERVE_BACKEND=flask UTILSERVE_POOL=process {GUNICORN_SHARED}",
        "flask gunicorn",
    ),
    Row(
        "shared-thread",
        "flask: a thread pool in each of the 4 workers (4 models)",
        f"UTILSERVE_BACKEND=flask UTILSERVE_POOL=thread {GUNICORN_SHARED}",
        "flask gunicorn",
    ),
    Row(
        "shared-ceiling",
        "no model: answers at once (the web stack's ceiling)",
        GUNICORN_SHARED,
        "flask gunicorn",
        label="plain Flask",
        app="bench.apps.pool_native_flask:app",
    ),
    Row(
        "shared-process-asgi",
        "starlette, uvicorn workers: one process pool shared by the 4 workers",
        "UTILSERVE_BACKEND=starlette UTILSERVE_WORKER_CLASS=uvicorn_worker.UvicornWorker UTILSERVE_POOL=process "
        + GUNICORN_SHARED,
        "starlette gunicorn uvicorn_worker",
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
        f"{report.verdict(p50 < IPC_TARGET_US)}",
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
        rows += [[serving if i == 0 else "", *pool.load_cells(load)] for i, load in enumerate(result.loads)]
        at_target[row.name] = next((load for load in result.loads if load.connections == pool.TARGET_CONCURRENCY), None)
    lines = [
        "### (b) Throughput under gunicorn -w 4",
        "",
        "`gunicorn -c deploy/gunicorn.conf.py -w 4 --threads 40` (gthread; uvicorn workers for the ASGI row), the "
        "toy model of `examples/batched.py` (10 ms per batch of up to 32: at most 3,200 items/s), "
        f"`wrk -c<N> -d{args.duration}s`, {args.runs} runs per cell, the median shown.",
        "",
        *report.table(f"serving | {pool.LOAD_COLUMNS}", rows),
        "",
    ]
    # The targets and comparisons at the target concurrency
    shared, per_worker, ceiling, asgi = (at_target.get(row.name) for row in ROWS)
    n, target = pool.TARGET_CONCURRENCY, pool.TARGET_RATIO
    if shared is None:
        return [*lines, f"Target: not measured at c={n}.", ""]
    lines += [
        f"- Target: process pool ({stack}) at c={n} at least {target:.2f} of 3,200/s: {pool.ratio(load):.2f}, "
        f"{report.verdict(pool.ratio(load) >= target)}"
        for stack, load in (("flask", shared), ("starlette in uvicorn workers", asgi))
        if load is not None
    ]
    if per_worker is not None:
        gain = shared.rps / per_worker.rps
        lines.append(f"- Process pool vs a thread pool per worker at c={n}: {gain:.2f}x the req/s.")
    if ceiling is not None:
        lines.append(
            f"- Ceiling: with no model at all this server answers {ceiling.rps:,.0f} req/s ({pool.ratio(ceiling):.2f} "
            f"of 3,200/s); the process pool reaches {shared.rps / ceiling.rps:.2f} of it."
        )
    return [*lines, ""]


def memory_part() -> list[str]:
    return [
        "### (c) Memory: 4 web workers + a 200 MiB model",
        "",
        "`python -m bench.shared_memory` (gunicorn -c deploy/gunicorn.conf.py -w 4, flask, "
        "bench/apps/shared_memory.py).",
        "",
        *shared_memory.markdown([shared_memory.measure(config) for config in shared_memory.CONFIGS]),
    ]


def main() -> int:
    parser = report.parser("bench.shared", __doc__)
    report.add_names(parser, "--parts", PARTS)
    pool.add_load_options(parser)
    args = parser.parse_args()
    exit_on_sigterm()
    lines = [
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M %Z}; `{report.command()}`",
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
