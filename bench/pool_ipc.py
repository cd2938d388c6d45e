"""Process-pool IPC: round trips of a tiny item, and large inputs out of band vs inside the pickle stream.

One item at a time, from a bare socket echo (the floor) up to the full path to the model worker and back:
each row's cost over the one before is the cost of one layer.
"""

import functools
import os
import socket
import statistics
import time
from collections.abc import Callable

from utilserve.pool import ModelHandle
from utilserve.pool.process import ProcessPool, codec
from utilserve.pool.process.spin import SPIN_ENV

from . import report
from .apps.ipc_models import Blob, Echo, Item, Measure

TIMEOUT_S = 10


def quantiles(call: Callable[[], object], rounds: int, warmup: int = 200) -> tuple[float, float]:
    """p50 and p99 of ``call``'s wall time, in microseconds."""
    for _ in range(warmup):
        call()
    spent = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        spent.append(time.perf_counter() - start)
    spent.sort()
    return spent[len(spent) // 2] * 1e6, spent[min(len(spent) - 1, int(len(spent) * 0.99))] * 1e6


def floor(rounds: int) -> tuple[float, float]:
    """A bare 64-byte echo over a socketpair to a forked process: the least any hop can cost."""
    ours, theirs = socket.socketpair()
    if (child := os.fork()) == 0:
        ours.close()
        while data := theirs.recv(64):
            theirs.sendall(data)
        os._exit(0)
    theirs.close()

    def echo() -> None:
        ours.sendall(b"x" * 64)
        ours.recv(64)

    try:
        return quantiles(echo, rounds)
    finally:
        ours.close()
        os.waitpid(child, 0)


def process_pool(handle: ModelHandle) -> ProcessPool:
    assert isinstance(handle._pool, ProcessPool)
    return handle._pool


def small(rounds: int) -> list[tuple[str, float, float]]:
    """(row, p50 µs, p99 µs) of the tiny item's round trips."""
    item = Item(x=1)

    def row(name: str, call: Callable[[], object]) -> tuple[str, float, float]:
        return (name, *quantiles(call, rounds))

    def blocking(name: str, handle: ModelHandle) -> tuple[str, float, float]:
        """The row of ``handle``'s pool called, its caller blocked until the answer is back."""
        assert handle._pool is not None
        return row(name, functools.partial(handle._pool.call, item, TIMEOUT_S))

    rows = [("floor: bare socket echo to another process, no framing", *floor(rounds))]
    with ModelHandle(Echo, name="ipc-bench", pool="process") as handle:
        pool = process_pool(handle)
        workers = pool._supervisor().workers
        pool.submit(item, TIMEOUT_S).result()  # opens the shared connection that ``sync`` pings
        rows.append(row("transport: ping, web process <-> model worker", lambda: workers.sync(handle.name, TIMEOUT_S)))
        rows.append(blocking("pool: tiny item to the model worker and back, blocking caller", handle))
        future = "pool: the same through a future (a reader thread resolves it)"
        rows.append(row(future, lambda: pool.submit(item, TIMEOUT_S).result()))
    os.environ[SPIN_ENV] = "0"  # for the model worker started next, and for this process as its caller
    try:
        with ModelHandle(Echo, name="ipc-bench-no-spin", pool="process") as handle:
            rows.append(blocking(f"pool: blocking caller, {SPIN_ENV}=0 (no polling before sleeping)", handle))
    finally:
        del os.environ[SPIN_ENV]
    with ModelHandle(Echo, name="ipc-bench-thread", pool="thread") as handle:
        rows.append(blocking("thread pool: same model in process, blocking caller", handle))
    return rows


def large(rounds: int) -> list[tuple[int, float, float]]:
    """(MiB, ms out of band, ms in the pickle stream): medians of alternating rounds, after 3 unmeasured ones."""
    rows, default = [], codec.OUT_OF_BAND_MIN
    with ModelHandle(Measure, name="ipc-bench-large", pool="process") as handle:
        pool = process_pool(handle)
        for mib in (1, 8, 32):
            blob = Blob(data=os.urandom(1024) * (1024 * mib))
            spent: dict[int, list[float]] = {default: [], 1 << 62: []}
            for _ in range(rounds + 3):
                for threshold, times in spent.items():
                    codec.OUT_OF_BAND_MIN = threshold
                    start = time.perf_counter()
                    pool.submit(blob, 30).result()
                    times.append(time.perf_counter() - start)
            codec.OUT_OF_BAND_MIN = default
            out_of_band, in_band = (statistics.median(times[3:]) * 1e3 for times in spent.values())
            rows.append((mib, out_of_band, in_band))
    return rows


def markdown(small_rows: list[tuple[str, float, float]], large_rows: list[tuple[int, float, float]]) -> list[str]:
    small = [(name, f"{p50:.0f}", f"{p99:.0f}") for name, p50, p99 in small_rows]
    large = [(f"{mib} MiB", f"{oob:.2f}", f"{inband:.2f}", f"{inband / oob:.2f}x") for mib, oob, inband in large_rows]
    return [
        *report.table("round trip | p50 µs: | p99 µs:", small),
        "",
        *report.table("input size | out of band, ms: | in the pickle stream, ms: | gain:", large),
        "",
    ]


if __name__ == "__main__":
    parser = report.parser("bench.pool_ipc", __doc__, write=False)
    parser.add_argument("--rounds", type=int, default=5000, help="round trips per tiny-item row")
    parser.add_argument("--large-rounds", type=int, default=20, help="round trips per large-input size")
    args = parser.parse_args()
    print(f"- Machine: {report.machine(wrk=False)}\n- 1-minute load average at start: {report.loadavg()}\n")
    print("\n".join(markdown(small(args.rounds), large(args.large_rounds))))
    print(f"- 1-minute load average at end: {report.loadavg()}")
