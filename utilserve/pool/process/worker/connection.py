"""One web process's connection, as a model worker sees it: its queued items, its streams, and its writes.

A streaming item's outputs go out through a :class:`WireSink`, as many as
the web process granted credit for: its reader's room, so a slow reader
pauses its own item in the worker's steps (see ``utilserve.pool.stepping``)
and neither process buffers more than a stream's ``BUFFER`` of it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from time import monotonic
from typing import Any

from ....errors import HTTPError
from .. import messages
from ..codec import Buffer, encode, error_tuple, frame
from ..sockets import FrameReader, Writer


class Connection:
    """One web process's connection: its queued items and streams by request id, and its writes.

    Answers of one batch, and the outputs of one step, are held and written
    together (see :func:`answers_per_connection`).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader(sock, size=4096, exact=True)
        self.writer = Writer(sock)
        self.pending: dict[int, Future[Any]] = {}
        self.streams: dict[int, WireSink] = {}

    def send(self, head: tuple[Any, ...], buffers: Sequence[Buffer] = ()) -> None:
        parts = frame(head, buffers)
        held: dict[Connection, list[Buffer]] | None = getattr(_held, "by_connection", None)
        if held is None:
            self.writer.write(parts)
        else:
            held.setdefault(self, []).extend(parts)

    def cancel(self, rid: int) -> None:
        """The web process dropped item ``rid``: out of the queue, or out of the steps at the next one."""
        sink = self.streams.get(rid)
        if sink is not None:
            sink.close()
        elif (future := self.pending.get(rid)) is not None:
            future.cancel()

    def grant(self, rid: int, credit: int) -> None:
        """The reader of stream ``rid`` took ``credit`` outputs (one that already ended is ignored)."""
        sink = self.streams.get(rid)
        if sink is not None:
            sink.grant(credit)

    def drop(self) -> None:
        """The web process went away: its queued items leave the queue, its streams the steps."""
        for future in list(self.pending.values()):
            future.cancel()
        for sink in list(self.streams.values()):
            sink.close()
        self.writer.release()


_held = threading.local()


@contextmanager
def answers_per_connection() -> Iterator[None]:
    """Hold the answers this thread sends, then write each connection's in one go.

    A batch's outcomes resolve one by one; one write per answer costs a
    system call each here and a wake-up each in the web process, where one
    per batch will do.
    """
    held: dict[Connection, list[Buffer]] = {}
    _held.by_connection = held
    try:
        yield
    finally:
        _held.by_connection = None
        for connection, parts in held.items():
            connection.writer.write(parts)


class WireSink:
    """A streaming item's outputs, sent as ``CHUNK`` frames to the web process that sent it, then ``ENDED``.

    Its room is its credit: the outputs the web process granted, less those
    sent. Each count has one writer (the thread reading the connection
    grants, the stepping thread sends), so neither needs a lock. The reader
    counts as reading when credit comes, which is what ``last_read`` says.
    """

    def __init__(self, name: str, connection: Connection, rid: int, credit: int) -> None:
        self._name = name
        self._connection = connection
        self._rid = rid
        self._granted = credit
        self._sent = 0
        self._ended = False
        self._closed = False
        self.last_read = monotonic()
        self.cancel: Callable[[], Any] = lambda: None
        """Set by ``follow_queue``: takes the item out of the queue while it has not started."""
        connection.streams[rid] = self

    def put(self, output: Any) -> None:
        encoded = encode(self._name, output)
        if isinstance(encoded, HTTPError):
            self.end(encoded)
            self._closed = True  # the steps drop it next
            return
        self._sent += 1
        self._connection.send((messages.CHUNK, self._rid), encoded)

    def end(self, error: HTTPError | None = None) -> None:
        """Send the end, or the error, once; a closed stream's web process no longer listens for it."""
        if self._ended:
            return
        self._ended = True
        self._connection.streams.pop(self._rid, None)
        if not self._closed:
            self._connection.send((messages.ENDED, self._rid, None if error is None else error_tuple(error)))

    def grant(self, credit: int) -> None:
        self._granted += credit
        self.last_read = monotonic()

    def close(self) -> None:
        """The reader went away: drop the item, queued or running."""
        self._closed = True
        self.cancel()

    @property
    def has_room(self) -> bool:
        return self._sent < self._granted

    @property
    def closed(self) -> bool:
        return self._closed
