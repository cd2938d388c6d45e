"""Framing and encoding for the process pool's sockets (web process <-> supervisor, web process <-> model worker).

A frame is a small pickled *head* (a tuple naming the message) followed by
zero or more *buffers* sent as they are::

    <u32 head length> <u32 buffer count> <u64 length per buffer> head buffer...

Payloads (a model's ``Input`` or ``Output``) are pickled with protocol 5;
``bytes`` fields of at least :data:`OUT_OF_BAND_MIN` bytes, and anything
pickle already hands out of band (``bytearray``, numpy arrays), leave the
pickle stream as separate buffers. Along the way a large input is copied
only by the kernel: :func:`send` passes the caller's own memory to
``socket.sendmsg``, and the model worker receives it as the very ``bytes``
object the model gets (see :class:`FrameReader`). bench/pool_ipc.py measures the gain over pickling
the bytes in band.

Why pickle is acceptable here: every socket of the pool is a Unix socket
with mode 0600 in a directory owned by the user (the supervisor's and the
model workers' listening sockets; a model worker's control socket is an
anonymous socketpair), so only the user's own processes can connect, and
they can already run any code as that user.
"""

from __future__ import annotations

import io
import mmap
import pickle
import socket
import struct
import threading
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from ..api.errors import HTTPError

OUT_OF_BAND_MIN = 64 * 1024
"""Bytes values at least this long travel as their own buffer instead of inside the pickle."""

PREFIX = struct.Struct("<II")
INLINE_LIMIT = 64 * 1024
"""Frames up to this size are joined and sent with one ``sendall``: cheaper than an iovec for small ones."""
IOV_MAX = 512
SMALL_BUFFER = 64 * 1024
HUGE_PAGE_MIN = 4 * 1024 * 1024

SEND_TIMEOUT_S = 10
"""A peer that reads nothing for this long is cut off rather than stalling the sender (see ``limit_sends``)."""

Buffer = bytes | bytearray | memoryview | mmap.mmap
ErrorTuple = tuple[int, str, Any, dict[str, str]]


class _OutOfBand:
    """Stands in for a large ``bytes`` value so the pickler hands it to the buffer callback."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return _bytes_from_buffer, (pickle.PickleBuffer(self.data),)


def _bytes_from_buffer(buffer: Any) -> bytes:
    """The ``bytes`` a buffer holds: the received object itself when it is one (see ``FrameReader``)."""
    if type(buffer) is memoryview and type(buffer.obj) is bytes and buffer.nbytes == len(buffer.obj):
        return buffer.obj
    return buffer if type(buffer) is bytes else bytes(buffer)


def _lift(value: Any) -> Any:
    if type(value) is bytes and len(value) >= OUT_OF_BAND_MIN:
        return _OutOfBand(value)
    if type(value) in (list, tuple) and any(
        type(v) is bytes and len(v) >= OUT_OF_BAND_MIN for v in value
    ):
        return type(value)(_lift(v) for v in value)
    return value


class _Pickler(pickle.Pickler):
    """Pickles pydantic models with their large ``bytes`` fields lifted out of band.

    ``reducer_override`` is never called for exact ``bytes`` (CPython skips
    it for builtins), so the model's state is rewritten one level up.
    """

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, BaseModel):
            return NotImplemented
        reduced: tuple[Any, ...] = obj.__reduce_ex__(5)  # type: ignore[assignment]
        state = reduced[2]
        fields = state.get("__dict__") if isinstance(state, dict) else None
        if not fields:
            return reduced
        lifted = {key: _lift(value) for key, value in fields.items()}
        if all(lifted[key] is fields[key] for key in fields):
            return reduced
        return (reduced[0], reduced[1], {**state, "__dict__": lifted}, *reduced[3:])


def pack(obj: Any) -> list[Buffer]:
    """``obj`` as ``[pickle stream, out-of-band buffer...]``; large buffers are views, not copies."""
    out_of_band: list[Buffer] = []

    def keep(buffer: pickle.PickleBuffer) -> bool:
        view = buffer.raw()
        if view.nbytes < OUT_OF_BAND_MIN:
            return True
        out_of_band.append(view)
        return False

    if not _has_large_bytes(obj):
        return [pickle.dumps(obj, protocol=5, buffer_callback=keep), *out_of_band]
    stream = io.BytesIO()
    _Pickler(stream, protocol=5, buffer_callback=keep).dump(obj)
    return [stream.getvalue(), *out_of_band]


def _has_large_bytes(obj: Any) -> bool:
    """Whether the slower lifting pickler is needed: a large ``bytes`` field, or a nested model that may hold one."""
    fields = getattr(obj, "__dict__", None)
    if not isinstance(obj, BaseModel) or not fields:
        return False
    for value in fields.values():
        if isinstance(value, BaseModel) or (type(value) is bytes and len(value) >= OUT_OF_BAND_MIN):
            return True
        if type(value) in (list, tuple) and any(
            isinstance(v, BaseModel) or (type(v) is bytes and len(v) >= OUT_OF_BAND_MIN) for v in value
        ):
            return True
    return False


def unpack(buffers: Sequence[Buffer]) -> Any:
    """The object :func:`pack` turned into ``buffers``."""
    return pickle.loads(buffers[0], buffers=buffers[1:])


def error_tuple(error: HTTPError) -> ErrorTuple:
    """An ``HTTPError`` as plain values (its ``detail`` as text if it would not pickle)."""
    detail = error.detail
    if detail is not None:
        try:
            pickle.dumps(detail, protocol=5)
        except Exception:  # noqa: BLE001 - any unpicklable detail is shown as text
            detail = str(detail)
    return error.status, error.message, detail, dict(error.headers)


def to_error(values: ErrorTuple) -> HTTPError:
    status, message, detail, headers = values
    return HTTPError(status, message, detail, headers)


def limit_sends(sock: socket.socket) -> socket.socket:
    """Make a blocked write fail after :data:`SEND_TIMEOUT_S` (reads still block).

    Callers treat a failed write as a lost connection: after a partial
    frame the stream is out of step for good.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", SEND_TIMEOUT_S, 0))
    return sock


def hang_up(sock: socket.socket) -> None:
    """Shut both directions, waking the peer and any reader of ``sock`` with end of file; a socket already gone is fine."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Writer:
    """Whole frames to one socket from any thread.

    A failed write hangs up for good: after a partial frame the stream is
    out of step. Once closed, writes are dropped.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self._closed = False

    def send(self, head: tuple[Any, ...], buffers: Sequence[Buffer] = ()) -> None:
        self.write(frame(head, buffers))

    def write(self, parts: Sequence[Buffer]) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                send_parts(self.sock, parts)
            except OSError:
                self._closed = True
                hang_up(self.sock)

    def hang_up(self) -> None:
        """Drop later writes and end the stream; the socket's reader then sees end of file."""
        with self._lock:
            self._closed = True
        hang_up(self.sock)

    def release(self) -> None:
        """Hang up and close the socket, under the lock, so no write can reach a reused descriptor."""
        with self._lock:
            self._closed = True
            hang_up(self.sock)
            self.sock.close()


def send(sock: socket.socket, head: tuple[Any, ...], buffers: Sequence[Buffer] = ()) -> None:
    """Write one frame; the caller serialises writers on the same socket."""
    send_parts(sock, frame(head, buffers))


def frame(head: tuple[Any, ...], buffers: Sequence[Buffer] = ()) -> list[Buffer]:
    """One frame as the parts to write: a small frame is one joined ``bytes``, a large one keeps its buffers apart."""
    head_bytes = pickle.dumps(head, protocol=5)
    sizes = [len(b) if type(b) is bytes else memoryview(b).nbytes for b in buffers]
    prefix = PREFIX.pack(len(head_bytes), len(sizes))
    if sizes:
        prefix += struct.pack(f"<{len(sizes)}Q", *sizes)
    if sum(sizes) <= INLINE_LIMIT:
        return [b"".join((prefix, head_bytes, *buffers))]
    return [prefix + head_bytes, *buffers]


def send_parts(sock: socket.socket, parts: Sequence[Buffer]) -> None:
    """Write the parts of one or more frames in order, in one system call where they fit in one.

    ``sendmsg`` takes the parts without joining them, resuming after partial writes.
    """
    if len(parts) == 1:
        sock.sendall(parts[0])
        return
    views = [memoryview(part).cast("B") for part in parts]
    first = 0
    while first < len(views):
        sent = sock.sendmsg(views[first : first + IOV_MAX])
        while first < len(views) and sent >= views[first].nbytes:
            sent -= views[first].nbytes
            first += 1
        if sent:
            views[first] = views[first][sent:]


def _leading_small(sizes: Sequence[int]) -> int:
    """Bytes of the small buffers that open a frame, read in one go (a large one is received on its own)."""
    total = 0
    for size in sizes:
        if size > SMALL_BUFFER:
            break
        total += size
    return total


def _large_buffer(size: int) -> bytearray | mmap.mmap:
    """Fresh memory for a large incoming buffer, in huge pages where the system allows.

    Faulting in a fresh buffer 4 KiB at a time costs more than receiving
    into it (in a VM, several times more); huge pages take 512 times fewer
    faults. Falls back to a ``bytearray``.
    """
    if size < HUGE_PAGE_MIN or not hasattr(mmap, "MADV_HUGEPAGE"):
        return bytearray(size)
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        memory.madvise(mmap.MADV_HUGEPAGE)
    except OSError:
        pass
    return memory


class FrameReader:
    """Reads frames through one reusable buffer, so a burst of small frames costs few ``recv`` calls.

    With ``exact`` it never reads past the frame it is parsing, so a large
    buffer still lies whole in the socket and arrives as a ``bytes`` object
    the kernel fills directly (``MSG_WAITALL``): a model worker hands the
    model its input without copying it. That costs three ``recv`` calls
    for a small frame where one might do.
    """

    def __init__(self, sock: socket.socket, size: int = 256 * 1024, exact: bool = False) -> None:
        self._sock = sock
        self._exact = exact
        self._buf = bytearray(size)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read: a frame may be waiting here rather than in the socket."""
        return self._end - self._start

    def read(self) -> tuple[tuple[Any, ...], list[Buffer]]:
        """The next frame's head and buffers; ``EOFError`` when the peer closed.

        Sizes and head arrive together, then the small buffers before the
        first large one: an exact read of a small frame takes three ``recv``.
        """
        head_len, count = PREFIX.unpack(self._take(PREFIX.size))
        self._fill(8 * count + head_len)
        sizes = struct.unpack(f"<{count}Q", self._take(8 * count)) if count else ()
        head = pickle.loads(self._take(head_len))
        self._fill(_leading_small(sizes))
        return head, [self._buffer(size) for size in sizes]

    def _take(self, size: int) -> memoryview:
        self._fill(size)
        start = self._start
        self._start += size
        return self._view[start : self._start]

    def _buffer(self, size: int) -> Buffer:
        if size <= SMALL_BUFFER:
            return bytes(self._take(size))
        if self._exact and self._start == self._end:
            return self._receive_bytes(size)
        out = _large_buffer(size)
        have = min(size, self._end - self._start)
        out[:have] = self._view[self._start : self._start + have]
        self._start += have
        view = memoryview(out)
        while have < size:
            got = self._sock.recv_into(view[have:])
            if not got:
                raise EOFError("the peer closed the pool connection mid-frame")
            have += got
        return out

    def _receive_bytes(self, size: int) -> bytes:
        data = self._sock.recv(size, socket.MSG_WAITALL)
        if not data:
            raise EOFError("the peer closed the pool connection mid-frame")
        if len(data) == size:
            return data
        parts = [data]
        have = len(data)
        while have < size:
            more = self._sock.recv(size - have, socket.MSG_WAITALL)
            if not more:
                raise EOFError("the peer closed the pool connection mid-frame")
            parts.append(more)
            have += len(more)
        return b"".join(parts)

    def _fill(self, size: int) -> None:
        pending = self._end - self._start
        if pending >= size:
            return
        if self._start + size > len(self._buf):
            self._make_room(size, pending)
        while self._end - self._start < size:
            stop = self._start + size if self._exact else len(self._buf)
            got = self._sock.recv_into(self._view[self._end : stop])
            if not got:
                raise EOFError("the peer closed the pool connection")
            self._end += got

    def _make_room(self, size: int, pending: int) -> None:
        if size > len(self._buf):
            grown = bytearray(max(size, 2 * len(self._buf)))
            grown[:pending] = self._view[self._start : self._end]
            self._buf, self._view = grown, memoryview(grown)
        else:
            self._buf[:pending] = self._buf[self._start : self._end]
        self._start, self._end = 0, pending
