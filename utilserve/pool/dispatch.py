"""Which model worker gets an item, and over which connection.

A web process sends each item to the worker of the model where it has the
fewest items in flight (ties take turns). A blocking caller (a WSGI
handler, ``ModelHandle.predict``) uses its thread's own :class:`Direct`
connection; everything else (``apredict``, ``submit``) a :class:`Channel`
the process shares per worker.

A worker whose connection closed is not sent to again until the
supervisor publishes its successor: items for it fail at once with 503
instead of waiting in the listening socket for a worker that may take
seconds to load, or never come back.
"""

from __future__ import annotations

import itertools
import socket
import threading
import weakref
from collections import Counter
from concurrent.futures import Future
from typing import Any

from pydantic import BaseModel

from . import protocol
from .channel import Channel, Direct, lost
from .launch import connect
from .spin import spin_budget

Workers = tuple[tuple[int, str], ...]
"""``(pid, socket path)`` of each worker of a model that is up."""


class Dispatch:
    """This process's connections to the model workers of one supervisor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[str, Channel] = {}
        self._directs: weakref.WeakSet[Direct] = weakref.WeakSet()
        self._local = threading.local()
        self._in_flight: Counter[str] = Counter()
        self._gone: dict[str, int] = {}
        self._turn = itertools.count()
        self._spin = spin_budget()

    def submit(self, name: str, workers: Workers, item: BaseModel, timeout_s: float) -> Future[Any]:
        """Send ``item`` to a worker over its shared channel; the future resolves to the ``Output`` or an ``HTTPError``."""
        payload = protocol.pack(item)
        pid, path = self._pick(name, workers)
        self._count(path, 1)
        try:
            future = self._channel(name, pid, path).submit(timeout_s, payload)
        except BaseException:
            self._count(path, -1)
            raise
        future.add_done_callback(lambda _: self._count(path, -1))
        return future

    def call(self, name: str, workers: Workers, item: BaseModel, timeout_s: float) -> Any:
        """Send ``item`` to a worker over this thread's own connection and wait for the answer."""
        payload = protocol.pack(item)
        pid, path = self._pick(name, workers)
        self._count(path, 1)
        try:
            return self._direct(name, pid, path).call(timeout_s, payload)
        finally:
            self._count(path, -1)

    def sync(self, name: str, timeout: float) -> bool:
        """A round trip over each shared channel of ``name``: every item sent on them before is queued in its worker."""
        with self._lock:
            channels = [channel for channel in self._channels.values() if channel.name == name]
        return all(channel.ping(timeout) for channel in channels)

    def close(self) -> None:
        """Hang up every connection; what is in flight on them fails with 503."""
        with self._lock:
            connections = [*self._channels.values(), *self._directs]
        for connection in connections:
            connection.close()

    def abandon(self) -> None:
        """In a forked child: close this copy of the parent's sockets, taking no lock."""
        for connection in [*self._channels.values(), *self._directs]:
            connection.abandon()

    def _pick(self, name: str, workers: Workers) -> tuple[int, str]:
        turn = next(self._turn)
        live = [(pid, path) for pid, path in workers if self._gone.get(path) != pid]
        if not live:
            raise lost(name, "its worker process went away; it is restarting")
        order = [live[(turn + i) % len(live)] for i in range(len(live))]
        return min(order, key=lambda worker: self._in_flight[worker[1]])

    def _count(self, path: str, change: int) -> None:
        with self._lock:
            self._in_flight[path] += change

    def _went_away(self, pid: int, path: str) -> None:
        with self._lock:
            self._gone[path] = pid

    def _channel(self, name: str, pid: int, path: str) -> Channel:
        """The shared channel to the worker at ``path``: a new one once a new worker listens there."""
        with self._lock:
            channel = self._channels.get(path)
        if channel is not None and channel.pid == pid:
            return channel
        fresh = Channel(name, pid, path, _connect(name, pid, path), self._forget)
        with self._lock:
            replaced = self._channels.get(path)
            if replaced is None or replaced.pid != pid:
                self._channels[path] = fresh
        if self._channels.get(path) is not fresh:
            fresh.close()
            return self._channels[path]
        fresh.start()
        if replaced is not None:
            replaced.close()
        return fresh

    def _forget(self, channel: Channel) -> None:
        """A channel closed: its worker is gone, unless this process hung up itself."""
        with self._lock:
            if self._channels.get(channel.path) is channel:
                del self._channels[channel.path]
            if not channel.hung_up:
                self._gone[channel.path] = channel.pid

    def _direct(self, name: str, pid: int, path: str) -> Direct:
        """This thread's connection to the worker at ``path``: a new one after the worker there changed or it closed."""
        mine = self._local.__dict__.get("directs")
        if mine is None:
            mine = self._local.directs = _ThreadDirects()
        direct = mine.get(path)
        if direct is None or direct.closed or direct.pid != pid:
            if direct is not None:
                direct.discard()
            direct = mine[path] = Direct(name, pid, path, _connect(name, pid, path), self._went_away, self._spin)
            with self._lock:
                self._directs.add(direct)
        return direct


class _ThreadDirects(dict[str, Direct]):
    """One thread's direct connections, closed when the thread ends (``threading.local`` drops them then)."""

    def __del__(self) -> None:
        for direct in self.values():
            direct.discard()


def _connect(name: str, pid: int, path: str) -> socket.socket:
    try:
        return connect(path)
    except OSError as exc:
        raise lost(name, f"cannot reach its worker process {pid} ({type(exc).__name__})") from None
