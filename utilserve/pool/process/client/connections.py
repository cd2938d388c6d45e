"""A web process's two kinds of connection to a model worker.

- :class:`SharedWorkerConnection`, one per worker for the whole process, is
  multiplexed by request id: callers write ``SUBMIT`` frames and get a
  future; a reader thread resolves the futures as answers arrive (a batch's
  answers arrive in one write). A cancelled future sends ``CANCEL``, so a
  queued item leaves the worker's queue. Async callers use it, and so do
  streams, whichever the caller: a streaming item's outputs arrive as
  frames among the other answers (see :class:`_Streamed`).
- :class:`ThreadWorkerConnection` belongs to one thread, which sends an item
  and reads the answer itself: a blocking caller then waits in its own
  ``recv``, with no reader thread to wake and hand the answer over.

When a connection closes, because the worker died or stopped, what is in
flight on it fails at once with 503 and ``Retry-After``: no request waits
for a worker that is gone.
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from functools import partial
from typing import Any

from ....concurrency import start_without_signals
from ....errors import HTTPError, unavailable
from ...stream import BUFFER, Stream
from .. import messages
from ..codec import Buffer, HTTPErrorValues, answer, to_error
from ..messages import WireOrigin
from ..sockets import FrameReader, Writer, hang_up, send
from ..spin import spin


class SharedWorkerConnection:
    """Items of model ``name`` to its worker process ``pid``; ``on_close(self)`` is called once it is gone."""

    def __init__(
        self, name: str, pid: int, path: str, sock: socket.socket, on_close: Callable[[SharedWorkerConnection], None]
    ) -> None:
        self.name = name
        self.pid = pid
        self.path = path
        self._sock = sock
        self._writer = Writer(sock)
        self._on_close = on_close
        self._lock = threading.Lock()
        self._pending: dict[int, Future[Any]] = {}
        self._streams: dict[int, _Streamed] = {}
        self._ids = itertools.count(1)
        self._gone = False
        self.hung_up = False
        self._thread = threading.Thread(target=self._read, name=f"utilserve-worker-connection-{name}", daemon=True)

    def start(self) -> None:
        start_without_signals(self._thread)

    def submit(self, timeout_s: float, payload: list[Buffer], origin: WireOrigin = None) -> Future[Any]:
        future: Future[Any] = Future()
        rid = self._enter(future)
        future.add_done_callback(partial(self._on_done, rid))
        self._send((messages.SUBMIT, rid, timeout_s, origin), payload)
        return future

    def stream(
        self, timeout_s: float, payload: list[Buffer], on_end: Callable[[], None], origin: WireOrigin = None
    ) -> Stream:
        """Send a streaming item; its outputs arrive on the stream. ``on_end()`` is called once it ends or is closed.

        The worker may send a stream's :data:`~utilserve.pool.stream.BUFFER`
        outputs ahead of its reader, and is granted more as the reader takes
        them, half a buffer at a time: a reader that stops pauses its item
        in the worker, and neither side holds more than a buffer of it.
        """
        rid = next(self._ids)
        streamed = _Streamed(on_end, partial(self._grant, rid))
        streamed.stream.cancel = partial(self._cancel_stream, rid)
        with self._lock:
            if self._gone:
                raise self._went_away()
            self._streams[rid] = streamed
        self._send((messages.STREAM, rid, timeout_s, BUFFER, origin), payload)
        return streamed.stream

    def ping(self, timeout: float) -> bool:
        """A round trip to the worker; False if no answer came within ``timeout``."""
        future: Future[Any] = Future()
        try:
            rid = self._enter(future)
        except HTTPError:
            return False
        self._send((messages.PING, rid))
        try:
            return answered(future, timeout)
        finally:
            with self._lock:
                self._pending.pop(rid, None)

    def close(self) -> None:
        """Hang up; the reader thread then fails what is still in flight."""
        self.hung_up = True
        self._writer.hang_up()

    def abandon(self) -> None:
        """In a forked child: close this copy of the parent's socket, taking no lock."""
        self._sock.close()

    def _enter(self, future: Future[Any]) -> int:
        rid = next(self._ids)
        with self._lock:
            if self._gone:
                raise self._went_away()
            self._pending[rid] = future
        return rid

    def _send(self, head: tuple[Any, ...], buffers: list[Buffer] | None = None) -> None:
        """Write one frame; a failed write closes the connection, which fails the frame's future with the rest."""
        self._writer.send(head, buffers or ())

    def _read(self) -> None:
        reader = FrameReader(self._sock)
        try:
            while True:
                head, buffers = reader.read()
                kind = head[0]
                if kind == messages.RESULT:
                    self._resolve(head[1], head[2], buffers)
                elif kind == messages.CHUNK:
                    self._chunk(head[1], buffers)
                elif kind == messages.ENDED:
                    self._ended(head[1], head[2])
        except (EOFError, OSError):
            pass
        finally:
            self._lost()

    def _resolve(self, rid: int, error: HTTPErrorValues | None, buffers: list[Buffer]) -> None:
        with self._lock:
            future = self._pending.pop(rid, None)
        if future is None:
            return
        try:
            result = answer(self.name, error, buffers)
        except HTTPError as failure:
            settle(future, exception=failure)
        else:
            settle(future, result=result)

    def _chunk(self, rid: int, buffers: list[Buffer]) -> None:
        """One output of stream ``rid`` (one its reader closed is ignored); one that does not decode ends it."""
        streamed = self._streams.get(rid)
        if streamed is None:
            return
        try:
            output = answer(self.name, None, buffers)
        except HTTPError as failure:
            self._cancel_stream(rid)
            streamed.stream.end(failure)
        else:
            streamed.received += 1  # before the reader can take it, so that its take sees the count
            streamed.stream.put(output)

    def _ended(self, rid: int, error: HTTPErrorValues | None) -> None:
        with self._lock:
            streamed = self._streams.pop(rid, None)
        if streamed is not None:
            streamed.stream.end(None if error is None else to_error(error))
            streamed.on_end()

    def _grant(self, rid: int, credit: int) -> None:
        """The reader of stream ``rid`` took ``credit`` outputs: the worker may send that many more."""
        if rid in self._streams:
            self._send((messages.CREDIT, rid, credit))

    def _cancel_stream(self, rid: int) -> None:
        """The reader of stream ``rid`` left before its end: the worker drops the item, queued or running."""
        with self._lock:
            streamed = self._streams.pop(rid, None)
        if streamed is not None:
            self._send((messages.CANCEL, rid))
            streamed.on_end()

    def _lost(self) -> None:
        with self._lock:
            self._gone = True
            pending, self._pending = self._pending, {}
            streams, self._streams = self._streams, {}
        self._writer.release()
        self._on_close(self)
        for future in pending.values():
            settle(future, exception=self._went_away())
        for streamed in streams.values():
            streamed.stream.end(self._went_away())
            streamed.on_end()

    def _on_done(self, rid: int, future: Future[Any]) -> None:
        if not future.cancelled():
            return
        with self._lock:
            pending = self._pending.pop(rid, None) is not None
        if pending:
            self._send((messages.CANCEL, rid))

    def _went_away(self) -> HTTPError:
        if self.hung_up:
            return lost(self.name, "this process closed its connection to the worker")
        return lost(self.name, f"its worker process {self.pid} went away while running this request")


class _Streamed:
    """A stream read over a shared connection, and the credit its reader has taken but not yet granted."""

    def __init__(self, on_end: Callable[[], None], grant: Callable[[int], None]) -> None:
        self.stream = Stream(BUFFER, on_take=self._took)
        self.on_end = on_end
        self._grant = grant
        self._taken = 0
        self._granted = BUFFER
        self.received = 0
        """Outputs that arrived, counted by the connection's reading thread."""

    def _took(self) -> None:
        """Called by the stream's one reader after each output it takes.

        Credit goes back half a buffer at a time, or at each take while the
        worker has used all it had: a reader that reads, however slowly,
        never looks stalled to the worker.
        """
        self._taken += 1
        if self._taken >= BUFFER // 2 or self.received >= self._granted:
            self._grant(self._taken)
            self._granted += self._taken
            self._taken = 0


class ThreadWorkerConnection:
    """One thread's own connection to worker ``pid`` of model ``name``: one item at a time, answered in this thread.

    ``went_away(pid, path)`` is told when the worker closed the connection.
    While answers come within ``spin_s``, the caller polls for the next one
    that long before it sleeps (see :mod:`~utilserve.pool.process.spin`).
    """

    def __init__(
        self,
        name: str,
        pid: int,
        path: str,
        sock: socket.socket,
        went_away: Callable[[int, str], None],
        spin_s: float,
    ) -> None:
        self.name = name
        self.pid = pid
        self.path = path
        self._sock = sock
        self._reader = FrameReader(sock, size=4096)
        self._went_away = went_away
        self._ids = itertools.count(1)
        self._spin = spin_s
        self._quick = True
        self.closed = False

    def call(self, timeout_s: float, payload: list[Buffer], origin: WireOrigin = None) -> Any:
        """Send one item and wait for its answer; ``TimeoutError`` after ``timeout_s``.

        A timed-out or broken connection is closed, which also takes a
        still-queued item out of the worker's queue.
        """
        deadline = time.monotonic() + timeout_s
        rid = next(self._ids)
        try:
            send(self._sock, (messages.SUBMIT, rid, timeout_s, origin), payload)
            sent = time.perf_counter()
            while True:
                head, buffers = self._read_until(deadline)
                if head[1] == rid:
                    self._quick = time.perf_counter() - sent <= self._spin
                    return answer(self.name, head[2], buffers)
        except TimeoutError:
            self.discard()
            raise
        except (EOFError, OSError):
            hung_up = self.closed
            self.discard()
            if hung_up:
                raise lost(self.name, "this process closed its connection to the worker") from None
            self._went_away(self.pid, self.path)
            raise lost(self.name, f"its worker process {self.pid} went away while running this request") from None

    def close(self) -> None:
        """Hang up, from any thread: a call waiting on it fails with 503, and the owning thread closes the socket."""
        self.closed = True
        hang_up(self._sock)

    def discard(self) -> None:
        """Hang up and close the socket: only the owning thread, which no other call of it can be using."""
        self.close()
        self._sock.close()

    def abandon(self) -> None:
        """In a forked child: close this copy of the parent's socket."""
        self._sock.close()

    def _read_until(self, deadline: float) -> tuple[tuple[Any, ...], list[Buffer]]:
        """The next frame, waiting until ``deadline`` at most: polled for first while answers come quickly,
        then a blocking read under a kernel receive timeout."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        seconds = int(remaining)
        timeval = struct.pack("ll", seconds, int((remaining - seconds) * 1e6) or 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        if self._quick and self._spin and not self._reader.buffered:
            spin(self._readable, min(self._spin, remaining))
        try:
            return self._reader.read()
        except BlockingIOError:
            raise TimeoutError from None

    def _readable(self) -> bool:
        """Whether a read would not block: data, end of file or an error waits."""
        try:
            self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return True


def answered(future: Future[Any], timeout: float) -> bool:
    """Whether ``future`` resolved without an error within ``timeout``."""
    try:
        future.result(timeout)
    except Exception:  # noqa: BLE001 - any failure means no answer
        return False
    return True


def lost(name: str, why: str) -> HTTPError:
    """The 503 of an item whose worker went away (or never came back): safe to retry."""
    return unavailable(f"model {name}: {why}; retry")


def settle(future: Future[Any], *, result: Any = None, exception: BaseException | None = None) -> None:
    """Resolve ``future`` unless its caller already cancelled it."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass
