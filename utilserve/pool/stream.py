"""``Stream``: the outputs of one streaming item, from the thread that steps it to the caller that reads them.

A bounded buffer: the model worker puts outputs while there is room, and a
caller takes them, blocking (``next``) or awaiting (``anext``). The worker
never blocks on a stream: it skips a full one's item until its reader
catches up (see ``stepping``). The reader may close the stream at any time
(a client that went away): the worker drops the item at its next step.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from time import monotonic
from typing import Any, Protocol

from ..errors import HTTPError

BUFFER = 16
"""Outputs a stream holds for a reader that has not taken them yet."""

END = object()
"""What :meth:`Stream.next` returns after the last output; the response streams mark any iterator's end with it."""


class Stream:
    """One item's outputs, in order, then its end or its error; safe across threads and event loops."""

    def __init__(
        self,
        capacity: int = BUFFER,
        on_room: Callable[[], None] | None = None,
        on_take: Callable[[], None] | None = None,
    ) -> None:
        self._capacity = capacity
        self._on_room = on_room
        self._on_take = on_take
        """Called after the reader took an output, outside the lock: a process pool grants its worker credit."""
        self._outputs: deque[Any] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._ended = False
        self._error: HTTPError | None = None
        self._closed = False
        self.cancel: Callable[[], Any] = lambda: None
        """Set by the pool: takes the item out of the queue when it has not started yet."""
        self.last_read = monotonic()

    def put(self, output: Any) -> None:
        """Add one output (the worker checked :attr:`has_room`); ignored once the reader closed."""
        with self._lock:
            if self._closed or self._ended:
                return
            self._outputs.append(output)
            self._wake()

    def end(self, error: HTTPError | None = None) -> None:
        """No more outputs: the stream ended, or failed with ``error`` after what was put."""
        with self._lock:
            if self._ended:
                return
            self._ended, self._error = True, error
            self._wake()

    @property
    def has_room(self) -> bool:
        return len(self._outputs) < self._capacity

    @property
    def closed(self) -> bool:
        """The reader went away: the worker should drop the item."""
        return self._closed

    def next(self, timeout: float | None = None) -> Any:
        """The next output, or :data:`END`; raises the stream's error, or ``TimeoutError``."""
        deadline = None if timeout is None else monotonic() + timeout
        with self._lock:
            while not self._outputs and not self._ended:
                left = None if deadline is None else deadline - monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                self._arrived.wait(left)
            output = self._take()
        return self._took(output)

    async def anext(self) -> Any:
        """:meth:`next` for a caller on an event loop; bound it with ``asyncio.timeout``."""
        while True:
            with self._lock:
                if self._outputs or self._ended:
                    output = self._take()
                    break
                loop = asyncio.get_running_loop()
                waiter = loop.create_future()
                self._waiters.append((loop, waiter))
            try:
                await waiter
            finally:
                with self._lock:
                    if (loop, waiter) in self._waiters:
                        self._waiters.remove((loop, waiter))
        return self._took(output)

    def close(self) -> None:
        """The reader is done (or gone): drop what is buffered, and the item if it is still queued."""
        with self._lock:
            self._closed = True
            self._outputs.clear()
        self.cancel()
        if self._on_room is not None:
            self._on_room()

    def _take(self) -> Any:
        """With the lock held: the next output, the end, or the error."""
        self.last_read = monotonic()
        if self._outputs:
            was_full = len(self._outputs) >= self._capacity
            output = self._outputs.popleft()
            if was_full and self._on_room is not None:
                self._on_room()
            return output
        if self._error is not None:
            raise self._error.copy()
        return END

    def _took(self, output: Any) -> Any:
        if output is not END and self._on_take is not None:
            self._on_take()
        return output

    def _wake(self) -> None:
        """With the lock held: wake blocked and awaiting readers."""
        self._arrived.notify_all()
        for loop, waiter in self._waiters:
            with suppress(RuntimeError):  # its loop has closed: nobody awaits it any more
                loop.call_soon_threadsafe(_resolve, waiter)
        self._waiters.clear()


class Queued(Protocol):
    """Where a queued item's outputs go: a ``Stream``, or a process-pool worker's sink for a web process's stream."""

    cancel: Callable[[], Any]

    def end(self, error: HTTPError | None = None) -> None: ...


def follow_queue(stream: Queued, queued: Future[Any]) -> None:
    """Tie a stream to its item's place in a ``Batcher``: closing the stream while queued cancels the item, and
    the 503 or 504 of an item that never ran ends the stream."""
    stream.cancel = queued.cancel
    queued.add_done_callback(lambda future: _end_unrun(stream, future))


def _end_unrun(stream: Queued, future: Future[Any]) -> None:
    if not future.cancelled() and isinstance(error := future.exception(), HTTPError):
        stream.end(error)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
