"""The batching queue between callers and model workers, independent of transport.

Callers :meth:`Batcher.submit` items and get a ``concurrent.futures.Future``;
workers loop on :meth:`Batcher.next_batch` and :meth:`Batcher.finish`. The
thread pool calls these from its worker threads; a process-pool worker,
which waits on its sockets rather than on the queue, calls
:meth:`Batcher.take_due` and :meth:`Batcher.full_batch` instead.

When a batch goes (checked whenever an item arrives or a wait runs out):

1. at once when ``max_batch_size`` items are queued;
2. at the latest ``max_wait_ms`` after its FIRST item arrived: one
   deadline, never reset by later arrivals. If that item arrived while
   every worker was busy, the clock starts when a worker turns to it, since
   time spent waiting for a worker is not time spent waiting for a batch;
3. at once for a lone request: the only queued item, it arrived while a
   worker was free, and the previous batch was a single item too. Traffic
   that produces single-item batches has no company to wait for, so
   concurrency-1 latency is the model's cost plus a thread wake-up;
4. otherwise as soon as arrivals pause: no new item for ``idle_gap_ms``
   (default 1 ms, never above ``max_wait_ms``), counted from the later of
   the last arrival and the moment a worker last finished a batch.

Rules 2 and 4 together keep batches full without paying ``max_wait_ms`` on
every batch. Callers whose batch just finished come back within
microseconds of each other, so waiting for that burst to end gathers them
all; counting the pause from the end of the last batch lets those returning
callers join the items that queued while the worker was busy, instead of
settling into a one-item batch alternating with a large one (which halves
throughput at concurrency 2 to ``max_batch_size``). Under saturation the
queue refills while workers are busy and rule 1 dominates. A request to an
idle pool waits at most ``idle_gap_ms`` (rule 4) or not at all (rule 3);
it waits up to ``max_wait_ms`` only while items keep arriving closer
together than the gap.

Only one worker gathers a batch at a time (the others wait their turn), so
concurrent workers never split a forming batch into fragments.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from ..errors import HTTPError, unavailable
from ..telemetry.context import Origin
from ..telemetry.metrics import on
from ..telemetry.tally import tally


@dataclass(eq=False, slots=True)
class Item:
    """One queued request: its payload, deadline, the request it serves and the future its caller holds."""

    payload: Any
    deadline: float
    arrived: float
    origin: Origin | None = None
    future: Future[Any] = field(default_factory=Future)


class Batcher:
    """A bounded queue that hands workers batches by the rules in the module doc.

    Deadlines are ``time.monotonic()`` values. An item whose deadline passed
    while queued is answered 504 and never reaches the model. The cancel
    hook is the future itself: ``future.cancel()`` (a client that went away,
    or ``asyncio`` cancelling a wrapped future) takes a queued item out at
    once, freeing its slot; once a worker took it, cancel returns False.
    The ``queue_size`` metric follows the queue, written by the process's tally a moment later.
    """

    def __init__(
        self,
        name: str,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        idle_gap_ms: float = 1.0,
    ) -> None:
        self.name = name
        self._max_batch = max_batch_size
        self._max_wait = max_wait_ms / 1000
        self._gap = min(idle_gap_ms, max_wait_ms) / 1000
        self._max_queue = max_queue
        self._queue: deque[Item] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._gathering = threading.Lock()
        self._last_arrival = 0.0
        self._free_since = monotonic()
        self._gather_since = self._free_since
        self._last_size = 0
        self._closed: HTTPError | None = None
        self._count_queue = on()

    def submit(self, payload: Any, deadline: float, origin: Origin | None = None) -> Future[Any]:
        """Queue ``payload``; raise a 503 at once when the queue is full or closed."""
        item = Item(payload, deadline, monotonic(), origin)
        with self._cond:
            if self._closed is not None:
                raise self._closed.copy()
            if len(self._queue) >= self._max_queue:
                raise unavailable(f"model {self.name} is overloaded: {self._max_queue} requests already queued")
            self._queue.append(item)
            self._queued(1)
            self._last_arrival = item.arrived
            self._cond.notify()
        item.future.add_done_callback(self._drop_cancelled)  # not holding the item: no cycle to leave to the collector
        return item.future

    @property
    def queued(self) -> int:
        """Items waiting now; read without the lock, so a hint that may already be stale."""
        return len(self._queue)

    def next_batch(self) -> list[Item] | None:
        """Block until a batch is due and return it; ``None`` once closed.

        The returned items' futures are running (no longer cancellable); the
        caller must hand them back through :meth:`finish`.
        """
        with self._gathering:
            with self._cond:
                self._gather_since = monotonic()
            while True:
                expired: list[Item] = []
                with self._cond:
                    batch = self._wait_for_batch(expired)
                self._expire(expired)
                if batch is None or batch:
                    return batch

    def full_batch(self) -> list[Item]:
        """The next batch if ``max_batch_size`` items are queued (less any past their deadline), else ``[]``.

        Never waits. A process-pool worker takes its next batch with this
        before answering the last one, so that under saturation the model
        does not idle while answers go out; it then passes ``busy=True`` to
        :meth:`finish`. A batch that is not full is left to gather. Like
        :meth:`take_due`, for a caller that serialises its calls.
        """
        expired: list[Item] = []
        with self._cond:
            full = self._closed is None and len(self._queue) >= self._max_batch
            batch = self._take(monotonic(), expired) if full else []
        self._expire(expired)
        return batch

    def take_now(self, limit: int) -> list[Item]:
        """Up to ``limit`` queued items at once, without waiting for company; ``[]`` once closed.

        A streaming model's worker takes these at each step boundary: its
        batch is already running, so a queued item only waits for the step.
        """
        expired: list[Item] = []
        with self._cond:
            batch = [] if self._closed is not None or limit <= 0 else self._take(monotonic(), expired, limit)
        self._expire(expired)
        return batch

    def take_due(self) -> tuple[list[Item] | None, float | None]:
        """:meth:`next_batch` without blocking, for a worker that waits on its own sockets.

        Returns the batch due now (``[]`` if none is; ``None`` once closed)
        and the seconds until one is due (``None``: nothing is queued). The
        caller's model must be free (waits count from when it became free),
        and the caller serialises its calls with :meth:`full_batch`: they
        skip the gathering turn that :meth:`next_batch` takes.
        """
        expired: list[Item] = []
        with self._cond:
            if self._closed is not None:
                return None, None
            if not self._queue:
                return [], None
            now = monotonic()
            self._gather_since = self._free_since
            due = self._due_at(now)
            batch = self._take(now, expired) if due <= now else []
        self._expire(expired)
        return batch, max(0.0, due - now)

    def finish(self, batch: Sequence[Item], outcomes: Sequence[Any], busy: bool = False) -> None:
        """Resolve each item's future: a ``BaseException`` fails it, anything else is its result.

        ``busy``: the worker already runs its next batch, so it is not free now.
        """
        if not busy:
            with self._cond:
                self._free_since = monotonic()
        for item, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)

    def close(self, error: HTTPError) -> None:
        """Refuse new items and fail every queued one with ``error``; workers get ``None``."""
        with self._cond:
            self._closed = error
            dropped = [item for item in self._queue if item.future.set_running_or_notify_cancel()]
            self._queued(-len(self._queue))
            self._queue.clear()
            self._cond.notify_all()
        for item in dropped:
            item.future.set_exception(error.copy())

    def _wait_for_batch(self, expired: list[Item]) -> list[Item] | None:
        """With the lock held: wait until a batch is due, then take it (``[]``: all dropped)."""
        while True:
            if self._closed is not None:
                return None
            if not self._queue:
                self._cond.wait()
                continue
            now = monotonic()
            due = self._due_at(now)
            if due > now:
                self._cond.wait(due - now)
                continue
            return self._take(now, expired)

    def _due_at(self, now: float) -> float:
        queued = len(self._queue)
        first = self._queue[0]
        if queued >= self._max_batch:
            return now
        if queued == 1 and self._last_size == 1 and first.arrived >= self._free_since:
            return now
        opened = max(first.arrived, self._gather_since)
        pause_ends = max(self._last_arrival, self._free_since) + self._gap
        return min(opened + self._max_wait, pause_ends)

    def _take(self, now: float, expired: list[Item], limit: int | None = None) -> list[Item]:
        batch: list[Item] = []
        size = self._max_batch if limit is None else limit
        while self._queue and len(batch) < size:
            item = self._queue.popleft()
            self._queued(-1)
            if not item.future.set_running_or_notify_cancel():
                continue
            (expired if item.deadline <= now else batch).append(item)
        if batch:
            self._last_size = len(batch)
        return batch

    def _expire(self, expired: list[Item]) -> None:
        for item in expired:
            item.future.set_exception(HTTPError(504, f"model {self.name}: deadline passed while queued"))

    def _drop_cancelled(self, future: Future[Any]) -> None:
        if future.cancelled():
            with self._cond:
                queued = next((item for item in self._queue if item.future is future), None)
                if queued is not None:
                    self._queue.remove(queued)
                    self._queued(-1)

    def _queued(self, change: int) -> None:
        """With the lock held: the queue grew or shrank by ``change``."""
        if self._count_queue and change:
            tally.queued(self.name, change)
