"""What the pool tests that run in this process share: how long they wait, a call's outcome, a failing listener."""

from __future__ import annotations

import errno
import socket
from typing import Any

from utilserve import ModelHandle
from utilserve.errors import HTTPError
from utilserve.pool.process import ProcessPool

WAIT_S = 10.0
"""Upper bound for anything a test waits on, so a bug fails instead of hanging."""


def outcome(call: Any, *args: Any, **kwargs: Any) -> Any:
    """The call's result, or the HTTPError it raised."""
    try:
        return call(*args, **kwargs)
    except HTTPError as error:
        return error


def settled(handle: ModelHandle) -> None:
    """Returns once the handle's model workers have read everything sent to them: a cancel, an item."""
    if isinstance(pool := handle._pool, ProcessPool):
        assert pool._supervisor().workers.sync(handle.name, WAIT_S), "the model workers read what was sent"


class ShortOfDescriptors:
    """A listener whose ``accept`` fails with EMFILE, as a process out of file descriptors sees, while ``short``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.short = True
        self.attempts = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def accept(self) -> tuple[socket.socket, Any]:
        self.attempts += 1
        if self.short:
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()

    def close(self) -> None:
        self.sock.close()
