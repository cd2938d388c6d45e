"""Prometheus metrics, always in prometheus_client's multiprocess mode.

Pre-fork servers run a service in many processes, and the process pool runs
its models in others still: a scrape reaches one of them, yet must show the
totals of all. So every process writes its values to files in one directory
per server, and ``/metrics`` aggregates them (prometheus_client's
``MultiProcessCollector``). That directory is ``$PROMETHEUS_MULTIPROC_DIR``
when set, else the server's private one (see ``utilserve.owner``;
:func:`prepare` picks it, and sets the variable for the processes this one
starts). Files of a process that has exited keep its counts; its live
gauges are dropped at the next scrape.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from ..concurrency import current_pid
from ..owner import alive, owned_directory

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
SWITCH = "UTILSERVE_METRICS"
"""``0`` turns metrics off, in this process and in those it starts."""

UNMATCHED_ROUTE = "<unmatched>"
"""The one ``route`` label of every path that matches no endpoint: raw paths never become labels."""

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, float("inf"))
DURATION_BUCKETS = Histogram.DEFAULT_BUCKETS
"""Of ``utilserve_request_duration_seconds``: prometheus_client's defaults, the last one ``+Inf``."""
SCRAPE_TRIES = 3
_prepared_pid = 0
ITEM_OUTCOMES = ("ok", "error", "rejected", "expired", "cancelled")


@dataclass(frozen=True)
class Metrics:
    requests: Counter
    request_duration: Histogram
    requests_in_progress: Gauge
    queue_size: Gauge
    batch_size: Histogram
    batch_duration: Histogram
    items: Counter
    worker_restarts: Counter
    ready: Gauge


def prepare(name: str = "utilserve", enabled: bool = True) -> None:
    """Choose this server's metrics directory before any metric exists; ``enabled=False`` turns metrics off."""
    if not enabled:
        os.environ[SWITCH] = "0"
    if not on():
        return
    if not os.environ.get(MULTIPROC_DIR):
        os.environ[MULTIPROC_DIR] = owned_directory("metrics", name)
    os.makedirs(os.environ[MULTIPROC_DIR], exist_ok=True)
    global _prepared_pid
    if _prepared_pid != os.getpid() and metrics.cache_info().currsize == 0:
        _prepared_pid = os.getpid()  # before this process has a gauge: drop a dead one's that had its pid
        mark_process_dead(os.getpid(), os.environ[MULTIPROC_DIR])
    if prometheus_values.ValueClass is prometheus_values.MutexValue:
        prometheus_values.ValueClass = prometheus_values.MultiProcessValue(process_identifier=current_pid)


def on() -> bool:
    return os.environ.get(SWITCH, "1").strip().lower() not in ("0", "false", "no")


@functools.cache
def metrics() -> Metrics:
    """The metrics, made at first use (after :func:`prepare`, which this runs if nobody did)."""
    if not os.environ.get(MULTIPROC_DIR):
        prepare()
    return Metrics(
        requests=Counter("utilserve_requests", "HTTP requests answered.", ["method", "route", "status"], registry=None),
        request_duration=Histogram(
            "utilserve_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=None,
        ),
        requests_in_progress=Gauge(
            "utilserve_requests_in_progress",
            "HTTP requests being answered.",
            registry=None,
            multiprocess_mode="livesum",
        ),
        queue_size=Gauge(
            "utilserve_model_queue_size",
            "Items waiting for a batch.",
            ["model"],
            registry=None,
            multiprocess_mode="livesum",
        ),
        batch_size=Histogram(
            "utilserve_model_batch_size", "Items per batch.", ["model"], buckets=BATCH_SIZES, registry=None
        ),
        batch_duration=Histogram(
            "utilserve_model_batch_duration_seconds",
            "Time a model takes for one batch (or one step).",
            ["model"],
            registry=None,
        ),
        items=Counter("utilserve_model_items", "Items by how they ended.", ["model", "outcome"], registry=None),
        worker_restarts=Counter(
            "utilserve_model_worker_restarts", "Model workers started again after one died.", ["model"], registry=None
        ),
        ready=Gauge(
            "utilserve_model_ready",
            "1 when the model serves in every live process.",
            ["model"],
            registry=None,
            multiprocess_mode="livemin",
        ),
    )


def record(action: Callable[[Metrics], object]) -> None:
    """Run ``action`` on the metrics when they are on; a no-op otherwise."""
    if on():
        action(metrics())


def add_observations(histogram: Histogram, total: float, bucket_counts: Sequence[float]) -> None:
    """What ``histogram.observe`` does for each of many observations, at once: their sum, and each bucket's count.

    prometheus_client has no public call for it; ``tests/telemetry/test_tally.py``
    checks that this matches ``observe`` in the version installed.
    """
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, bucket_counts, strict=True):
        if count:
            bucket.inc(count)


def exposition() -> tuple[bytes, str]:
    """The ``/metrics`` body and content type: every process's values, the exited ones' live gauges dropped."""
    directory = os.environ[MULTIPROC_DIR]
    for pid in _exited(directory):
        mark_process_dead(pid, directory)
    registry = CollectorRegistry()
    registry.register(_Written(directory))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Written(Collector):
    """``MultiProcessCollector`` without the files a starting process has created but not yet sized.

    Such a file is empty for a moment, and prometheus_client fails the
    whole scrape reading it; it holds no value yet, so leaving it out loses none.
    """

    def __init__(self, path: str) -> None:
        self._path = path

    def collect(self) -> Iterable[Metric]:
        for _ in range(SCRAPE_TRIES - 1):
            try:
                return self._merged()
            except FileNotFoundError:  # another worker's scrape dropped an exited process's file meanwhile
                continue
        return self._merged()

    def _merged(self) -> Iterable[Metric]:
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):
            with contextlib.suppress(FileNotFoundError):
                if os.path.getsize(path) > 0:
                    files.append(path)
        found: Iterable[Metric] = MultiProcessCollector.merge(files, accumulate=True)
        return found


def _exited(directory: str) -> set[int]:
    pids = {
        int(match[1])
        for path in glob.glob(os.path.join(directory, "gauge_live*_*.db"))
        if (match := re.search(r"_(\d+)\.db$", path))
    }
    return {pid for pid in pids if not alive(pid)}
