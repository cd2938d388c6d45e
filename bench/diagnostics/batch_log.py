"""Batch-size counters for bench/pool.py's ``--batch-stats``: shared by the pool_* apps.

A model calls :func:`record` with each batch's size. When the environment
names a file in ``BENCH_BATCH_STATS``, a daemon thread rewrites it every
0.1 s with ``{"batches": N, "items": M, "sizes": {size: count}}``, the totals
since the process started. bench/pool.py reads it when no load is running
(0.5 s after wrk ends), so the difference between two reads is exact.
Without the variable, :func:`record` only counts in memory.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter

_lock = threading.Lock()
_sizes: Counter[int] = Counter()
_times: dict[str, list[float]] = {}  # name -> [total seconds, count]
_started = False


def record(size: int) -> None:
    global _started
    with _lock:
        _sizes[size] += 1
        if not _started:
            _started = True
            path = os.environ.get("BENCH_BATCH_STATS")
            if path:
                threading.Thread(target=_dump_forever, args=(path,), name="batch-stats", daemon=True).start()


def record_time(name: str, seconds: float) -> None:
    """Add one duration to the running total ``name`` (for a breakdown of a batch's cycle)."""
    with _lock:
        total = _times.setdefault(name, [0.0, 0])
        total[0] += seconds
        total[1] += 1


def snapshot() -> dict:
    with _lock:
        sizes = dict(_sizes)
        times = {name: list(total) for name, total in _times.items()}
    return {"batches": sum(sizes.values()), "items": sum(k * v for k, v in sizes.items()),
            "sizes": {str(k): v for k, v in sorted(sizes.items())}, "times": times}


def _dump_forever(path: str) -> None:
    import time

    tmp = f"{path}.{os.getpid()}.tmp"
    while True:
        with open(tmp, "w") as out:
            json.dump(snapshot(), out)
        os.replace(tmp, path)
        time.sleep(0.1)
