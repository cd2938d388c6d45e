"""Waiting for a model worker's sockets from two threads, each ready socket handed to one of them.

While the model is free, both of a model worker's threads wait for its
sockets, so the one the kernel wakes reads an item and runs it itself, with
no hand-off between threads, and the other is already waiting when the
model starts. A ready socket goes to ONE thread and stays out of the wait
until that thread re-arms it, so two threads never read one connection at
once: :class:`OneShot`, on Linux's ``epoll`` with ``EPOLLONESHOT``.
Elsewhere, :class:`TakingTurns` lets one thread wait and handle at a time;
the other waits for its turn, which costs a hand-off per batch.
"""

from __future__ import annotations

import select
import selectors
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

OnReady = Callable[[], bool]
"""Handles its socket being ready: True to have it re-armed; False once it unregistered the socket."""


class Readiness(Protocol):
    takes_turns: bool
    """Whether one thread waits at a time: a thread that wants the turn cannot look at the sockets itself."""

    def turn(self) -> AbstractContextManager[object]:
        """Held while waiting and handling what came: a thread without it waits (no-op where threads share the wait)."""

    def register(self, fd: int, on_ready: OnReady) -> None: ...

    def rearm(self, fd: int) -> None:
        """Wait for ``fd`` again, now that the thread that was handed it is done with it."""

    def unregister(self, fd: int) -> None: ...

    def ready(self, timeout: float | None) -> list[tuple[int, OnReady]]:
        """The ready sockets, each handed to this thread alone; waits up to ``timeout`` (``None``: for ever)."""

    def close(self) -> None: ...


class OneShot:
    """Every thread waits; the kernel hands each ready socket to one of them (``EPOLLONESHOT``).

    A wait takes every socket ready at that moment: one thread reads a
    burst after one system call, where handing the sockets out one by one
    would wake the other thread to contend for the GIL, which costs
    throughput under load.
    """

    takes_turns = False

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._armed = select.EPOLLIN | select.EPOLLONESHOT
        self._handlers: dict[int, OnReady] = {}

    def turn(self) -> AbstractContextManager[object]:
        return nullcontext()

    def register(self, fd: int, on_ready: OnReady) -> None:
        self._handlers[fd] = on_ready
        self._epoll.register(fd, self._armed)

    def rearm(self, fd: int) -> None:
        self._epoll.modify(fd, self._armed)

    def unregister(self, fd: int) -> None:
        self._epoll.unregister(fd)
        del self._handlers[fd]

    def ready(self, timeout: float | None) -> list[tuple[int, OnReady]]:
        return [(fd, self._handlers[fd]) for fd, _ in self._epoll.poll(-1 if timeout is None else timeout)]

    def close(self) -> None:
        self._epoll.close()


class TakingTurns:
    """One thread at a time waits and handles (any platform's selector); the other waits for the turn."""

    takes_turns = True

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._turn = threading.Lock()

    def turn(self) -> AbstractContextManager[object]:
        return self._turn

    def register(self, fd: int, on_ready: OnReady) -> None:
        self._selector.register(fd, selectors.EVENT_READ, on_ready)

    def rearm(self, fd: int) -> None:
        """Nothing to do: the turn keeps the other thread away from ``fd``."""

    def unregister(self, fd: int) -> None:
        self._selector.unregister(fd)

    def ready(self, timeout: float | None) -> list[tuple[int, OnReady]]:
        return [(key.fd, key.data) for key, _ in self._selector.select(timeout)]

    def close(self) -> None:
        self._selector.close()


def readiness() -> Readiness:
    """One-shot waits where the platform has them (Linux), else turns."""
    return OneShot() if hasattr(select, "epoll") else TakingTurns()
