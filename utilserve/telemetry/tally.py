"""This process's request, item and batch metrics, counted in plain numbers and written to the metrics files a
moment later.

A Prometheus value in multiprocess mode is a locked write to a memory-mapped
file, and each request would touch five of them (its count, its duration's
sum and bucket, the in-progress gauge up and down), each model item three
more (the queue's size up and down, the item's outcome) and each batch four
(its size's and its duration's sum and bucket), which costs more than the
rest of utilserve's request path. So each process counts under one lock
and writes the sums every :data:`WRITE_EVERY_S`, before a scrape that it
answers, and at the service's or the model worker's stop. A scrape answered by
another process shows the last moment of this one's counts late; a
process killed outright (SIGKILL, out of memory) loses that moment.

Under uWSGI each request, item and batch is written as it ends: a worker
recycled while another of its threads is in a request (``max-requests``,
``reload-on-rss``) exits with no Python exit handlers at all, so no stop
could write that moment.
"""

from __future__ import annotations

import bisect
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from ..concurrency import current_pid, start_without_signals
from . import metrics

WRITE_EVERY_S = 0.25
logger = logging.getLogger("utilserve")

Key = TypeVar("Key", bound=Hashable)
Observed = list[float]
"""A histogram's observations: their sum, then the count of each of its buckets."""


@dataclass
class _Since:
    """What was counted since the last write: the counters' and histograms' increments, by their labels."""

    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    durations: dict[tuple[str, str], Observed] = field(default_factory=dict)
    items: Counter[tuple[str, str]] = field(default_factory=Counter)
    batch_sizes: dict[str, Observed] = field(default_factory=dict)
    batch_durations: dict[str, Observed] = field(default_factory=dict)


class RequestTally:
    """Counts answered requests, requests under way, items by outcome, queued items and batches; :meth:`write`
    hands them to prometheus_client.

    A forked process starts with none of its parent's counts (the parent
    writes them) and a writer thread of its own. ``write_each`` writes each
    request, item and batch as it ends, where a process may exit without a stop.
    """

    def __init__(self, write_each: bool = False) -> None:
        self._write_each = write_each
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._pid = 0
        self._since = _Since()
        self._in_progress = 0
        self._queued: Counter[str] = Counter()
        """Gauges: their values, not increments."""

    def started(self) -> None:
        with self._lock:
            self._here()
            self._in_progress += 1

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            if self._here():
                self._in_progress += 1
            self._in_progress -= 1
            self._since.requests[method, route, status] += 1
            _observe(self._since.durations, (method, route), seconds, metrics.DURATION_BUCKETS)
        if self._write_each:
            self.write()

    def item_ended(self, model: str, outcome: str) -> None:
        """One item of ``model`` ended as ``outcome`` (see ``pool.observed``)."""
        with self._lock:
            self._here()
            self._since.items[model, outcome] += 1
        if self._write_each:
            self.write()

    def queued(self, model: str, change: int) -> None:
        """The queue of ``model`` in this process grew or shrank by ``change``."""
        with self._lock:
            self._here()
            self._queued[model] += change

    def batch_ended(self, model: str, size: int, seconds: float) -> None:
        """A batch (or a step) of ``size`` items of ``model`` ran for ``seconds``."""
        with self._lock:
            self._here()
            _observe(self._since.batch_sizes, model, size, metrics.BATCH_SIZES)
            _observe(self._since.batch_durations, model, seconds, metrics.DURATION_BUCKETS)
        if self._write_each:
            self.write()

    def left(self) -> None:
        """A request that ended with no answer (an exception raised through): under way no more, and not counted."""
        with self._lock:
            if self._pid == current_pid():
                self._in_progress -= 1

    def write(self) -> None:
        """Add what was counted since the last write to the metrics files."""
        with self._writing:
            with self._lock:
                if self._pid != current_pid():
                    return
                since, self._since = self._since, _Since()
                in_progress, queued = self._in_progress, dict(self._queued)
            recorded = metrics.metrics()
            for (method, route, status), count in since.requests.items():
                recorded.requests.labels(method, route, str(status)).inc(count)
            for (method, route), sums in since.durations.items():
                metrics.add_observations(recorded.request_duration.labels(method, route), sums[0], sums[1:])
            recorded.requests_in_progress.set(in_progress)
            for (model, outcome), count in since.items.items():
                recorded.items.labels(model, outcome).inc(count)
            for model, size in queued.items():
                recorded.queue_size.labels(model).set(size)
            for model, sizes in since.batch_sizes.items():
                metrics.add_observations(recorded.batch_size.labels(model), sizes[0], sizes[1:])
            for model, took in since.batch_durations.items():
                metrics.add_observations(recorded.batch_duration.labels(model), took[0], took[1:])

    def forked(self) -> None:
        """In a forked child: new locks, as the fork may have copied one held by a thread that is gone."""
        self._lock = threading.Lock()
        self._writing = threading.Lock()

    def _here(self) -> bool:
        """With the lock held: count in this process, starting afresh with a writer of its own in a new one (then
        True)."""
        if self._pid == current_pid():
            return False
        self._pid = current_pid()
        self._since, self._in_progress, self._queued = _Since(), 0, Counter()
        start_without_signals(threading.Thread(target=self._write_every, name="utilserve-metrics", daemon=True))
        return True

    def _write_every(self) -> None:
        pid = current_pid()
        while self._pid == pid:
            time.sleep(WRITE_EVERY_S)
            try:
                self.write()
            except Exception:  # a metrics directory gone or full: say so, and go on counting and writing
                logger.exception("utilserve could not write the request metrics")


def _observe(observed: dict[Key, Observed], key: Key, value: float, bounds: Sequence[float]) -> None:
    """Add ``value`` to the observations of ``key`` for a histogram of ``bounds`` (its last one ``+Inf``)."""
    sums = observed.get(key)
    if sums is None:
        sums = observed[key] = [0.0] * (len(bounds) + 1)
    sums[0] += value
    sums[bisect.bisect_left(bounds, value) + 1] += 1


tally = RequestTally(write_each="uwsgi" in sys.modules)
"""The one of this process."""
os.register_at_fork(after_in_child=tally.forked)
