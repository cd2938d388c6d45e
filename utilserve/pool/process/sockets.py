"""Frames over the process pool's Unix sockets: reading, writing, listening and connecting.

The frame format is :mod:`.codec`'s. A large buffer is sent from the
caller's own memory (``socket.sendmsg``) and, in a model worker, received as
the very ``bytes`` object the model gets (see :class:`FrameReader`).
Listening sockets are 0600 in a 0700 directory: only this user's processes
may connect.
"""

from __future__ import annotations

import errno
import mmap
import os
import pickle
import socket
import struct
import threading
from collections.abc import Sequence
from typing import Any

from .codec import PREFIX, Buffer, frame

IOV_MAX = 512
SMALL_BUFFER = 64 * 1024
HUGE_PAGE_MIN = 4 * 1024 * 1024
SEND_TIMEOUT_S = 10
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
"""What ``accept`` fails with while the process has no file descriptor to spare: its listener stays ready."""
ACCEPT_PAUSE_S = 1.0
"""How long a listener out of descriptors is left alone, as asyncio does, instead of spinning on it."""
"""A peer that reads nothing for this long is cut off rather than stalling the sender (see ``limit_sends``)."""


def limit_sends(sock: socket.socket) -> socket.socket:
    """Make a blocked write fail after :data:`SEND_TIMEOUT_S` (reads still block).

    Callers treat a failed write as a lost connection: after a partial
    frame the stream is out of step for good.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", SEND_TIMEOUT_S, 0))
    return sock


def hang_up(sock: socket.socket) -> None:
    """Shut both directions, waking the peer and any reader of ``sock`` with end of file; a closed one is fine."""
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

    Faulting in a fresh buffer 4 KiB at a time can cost more than receiving
    into it, above all in a VM; a 2 MiB huge page takes one fault where 4 KiB
    pages take 512. Falls back to a ``bytearray``.
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


def listen(path: str) -> socket.socket:
    """Bind ``path`` 0600, so that only this user's processes may connect.

    A socket file left by a process that died is replaced; one that a live
    process still answers on is not.
    """
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
        else:
            raise OSError(f"a pool supervisor already listens at {path}; stop it or choose another socket path")
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    listener.listen(128)
    return listener


def connect(path: str) -> socket.socket:
    """A connection to the pool process (supervisor or model worker) listening at ``path``.

    Raises ``FileNotFoundError``/``ConnectionRefusedError`` if none
    listens. The send timeout is set first: it also bounds a ``connect``
    that waits for room in a full listen queue.
    """
    sock = limit_sends(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock
