"""Process-pool IPC costs: round trips for a tiny item, and large inputs in band vs out of band.

    python -m bench.pool_ipc [--rounds 5000] [--large-rounds 20]

- ``floor``: a bare 64-byte echo to a forked process over a socketpair.
- ``transport``: a ``ping`` from this process to the model worker and back
  over the pool's own channel (the one Unix-socket round trip a request pays).
- ``pool``: one tiny item through ``ProcessPool`` (web process -> model
  worker -> web process), one request at a time: as a blocking caller
  (``call``, what ``predict`` and a WSGI handler use: the answer is read
  in the caller's thread) and through a future (``submit``, what
  ``apredict`` uses: a reader thread resolves it). By default an idle
  model worker, and a blocking caller whose answers come quickly, poll
  for up to ``UTILSERVE_POOL_SPIN_US`` before sleeping; the blocking
  caller is measured again with that off.
- ``thread``: the same model on the in-process thread pool, for scale.
- large inputs: a ``bytes`` field of 1, 8 and 32 MiB through the process
  pool, with the default out-of-band framing and with the threshold raised
  so the bytes travel inside the pickle stream (alternating, same process).

Prints a Markdown table; numbers are medians (and p99) in microseconds or
milliseconds of wall time on this machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.apps.shared_models import Blob, Echo, Item, Measure
from utilserve.pool import ModelHandle
from utilserve.pool.process import codec, sockets
from utilserve.pool.process import ProcessPool
from utilserve.pool.process.spin import SPIN_ENV


def timings(call: Callable[[], object], rounds: int, warmup: int = 200) -> list[float]:
    for _ in range(warmup):
        call()
    spent = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        spent.append(time.perf_counter() - start)
    return sorted(spent)


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def floor(rounds: int) -> list[float]:
    """A bare 64-byte echo over a Unix socketpair to a forked process: the least any hop can cost."""
    ours, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:
        ours.close()
        while data := theirs.recv(64):
            theirs.sendall(data)
        os._exit(0)
    theirs.close()
    try:
        return timings(lambda: (ours.sendall(b"x" * 64), ours.recv(64)), rounds)
    finally:
        ours.close()
        os.waitpid(child, 0)


def quantiles(values: list[float]) -> tuple[float, float]:
    return quantile(values, 0.5), quantile(values, 0.99)


def small(rounds: int) -> list[tuple[str, float, float]]:
    bare = floor(rounds)
    rows = [("floor: bare socket echo to another process, no framing", quantile(bare, 0.5), quantile(bare, 0.99))]
    item = Item(x=1)
    with ModelHandle(Echo, name="ipc-bench", pool="process") as handle:
        pool = handle._pool
        assert isinstance(pool, ProcessPool)
        link = pool._link()
        pool.submit(item, 10).result()
        ping = timings(lambda: link.sync(handle.name, 10), rounds)
        rows.append(("transport: ping, web process <-> model worker", quantile(ping, 0.5), quantile(ping, 0.99)))
        full = timings(lambda: pool.call(item, 10), rounds)
        rows.append(("pool: tiny item to the model worker and back, blocking caller", *quantiles(full)))
        future = timings(lambda: pool.submit(item, 10).result(), rounds)
        rows.append(("pool: the same through a future (a reader thread resolves it)", *quantiles(future)))
    with spin_off(), ModelHandle(Echo, name="ipc-bench-no-spin", pool="process") as handle:
        no_spin = timings(lambda: handle._pool.call(item, 10), rounds)  # type: ignore[union-attr]
        rows.append((f"pool: blocking caller, {SPIN_ENV}=0 (no polling before sleeping)", *quantiles(no_spin)))
    with ModelHandle(Echo, name="ipc-bench-thread", pool="thread") as handle:
        thread = timings(lambda: handle._pool.call(item, 10), rounds)  # type: ignore[union-attr]
        rows.append(("thread pool: same model in process, blocking caller", *quantiles(thread)))
    return [(name, p50 * 1e6, p99 * 1e6) for name, p50, p99 in rows]


@contextmanager
def spin_off() -> Iterator[None]:
    """Polling off for the pools started inside (their model workers inherit the environment)."""
    before = os.environ.get(SPIN_ENV)
    os.environ[SPIN_ENV] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ[SPIN_ENV]
        else:
            os.environ[SPIN_ENV] = before


def large(rounds: int) -> list[tuple[int, float, float]]:
    rows = []
    default = codec.OUT_OF_BAND_MIN
    with ModelHandle(Measure, name="ipc-bench-large", pool="process") as handle:
        pool = handle._pool
        assert isinstance(pool, ProcessPool)
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
            oob, inband = (statistics.median(times[3:]) * 1e3 for times in spent.values())
            rows.append((mib, oob, inband))
    return rows


def markdown(small_rows: list[tuple[str, float, float]], large_rows: list[tuple[int, float, float]]) -> str:
    lines = ["| round trip | p50 µs | p99 µs |", "|---|---:|---:|"]
    lines += [f"| {name} | {p50:.0f} | {p99:.0f} |" for name, p50, p99 in small_rows]
    lines += ["", "| input size | out of band, ms | in the pickle stream, ms | gain |", "|---|---:|---:|---:|"]
    lines += [f"| {mib} MiB | {oob:.2f} | {inband:.2f} | {inband / oob:.2f}x |" for mib, oob, inband in large_rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--large-rounds", type=int, default=20)
    args = parser.parse_args()
    print(f"- Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    print(f"- 1-minute load average at start: {os.getloadavg()[0]:.2f}\n")
    print(markdown(small(args.rounds), large(args.large_rounds)))
    print(f"- 1-minute load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
