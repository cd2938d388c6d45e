"""A web process's connections to the model workers: which worker gets an item, and over which connection.

A web process sends each item to the worker of the model where it has the
fewest items in flight (ties take turns). A blocking caller (a WSGI
handler, ``ModelHandle.predict``) uses its thread's own
:class:`~.connections.ThreadWorkerConnection`; everything else
(``apredict``, ``submit``, and every stream) the
:class:`~.connections.SharedWorkerConnection` the process keeps per worker.
A stream counts as in flight until it ends.

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

from ....telemetry.context import Origin
from ...stream import Stream
from ..codec import pack
from ..messages import Workers, to_wire
from ..sockets import connect
from ..spin import spin_budget
from .connections import SharedWorkerConnection, ThreadWorkerConnection, lost


class WorkerConnections:
    """This process's connections to the model workers of one supervisor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: dict[str, SharedWorkerConnection] = {}
        self._own: weakref.WeakSet[ThreadWorkerConnection] = weakref.WeakSet()
        self._local = threading.local()
        self._in_flight: Counter[str] = Counter()
        self._gone: dict[str, int] = {}
        self._turn = itertools.count()
        self._spin = spin_budget()

    def submit(
        self, name: str, workers: Workers, item: BaseModel, timeout_s: float, origin: Origin | None = None
    ) -> Future[Any]:
        """Send ``item`` to a worker over its shared connection: a future of the ``Output`` or an ``HTTPError``."""
        payload = pack(item)
        pid, path = self._pick(name, workers)
        self._count(path, 1)
        try:
            future = self._shared_connection(name, pid, path).submit(timeout_s, payload, to_wire(origin))
        except BaseException:
            self._count(path, -1)
            raise
        future.add_done_callback(lambda _: self._count(path, -1))
        return future

    def stream(
        self, name: str, workers: Workers, item: BaseModel, timeout_s: float, origin: Origin | None = None
    ) -> Stream:
        """Send a streaming model's ``item`` to a worker over its shared connection: the stream of its outputs."""
        payload = pack(item)
        pid, path = self._pick(name, workers)
        self._count(path, 1)
        try:
            connection = self._shared_connection(name, pid, path)
            return connection.stream(timeout_s, payload, lambda: self._count(path, -1), to_wire(origin))
        except BaseException:
            self._count(path, -1)
            raise

    def call(self, name: str, workers: Workers, item: BaseModel, timeout_s: float, origin: Origin | None = None) -> Any:
        """Send ``item`` to a worker over this thread's own connection and wait for the answer."""
        payload = pack(item)
        pid, path = self._pick(name, workers)
        self._count(path, 1)
        try:
            return self._own_connection(name, pid, path).call(timeout_s, payload, to_wire(origin))
        finally:
            self._count(path, -1)

    def sync(self, name: str, timeout: float) -> bool:
        """A round trip over each shared connection of ``name``: every item sent on them before is now queued."""
        with self._lock:
            shared = [connection for connection in self._shared.values() if connection.name == name]
        return all(connection.ping(timeout) for connection in shared)

    def close(self) -> None:
        """Hang up every connection; what is in flight on them fails with 503."""
        with self._lock:
            connections: list[SharedWorkerConnection | ThreadWorkerConnection] = [*self._shared.values(), *self._own]
        for connection in connections:
            connection.close()

    def abandon(self) -> None:
        """In a forked child: close this copy of the parent's sockets, taking no lock."""
        connections: list[SharedWorkerConnection | ThreadWorkerConnection] = [*self._shared.values(), *self._own]
        for connection in connections:
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

    def _shared_connection(self, name: str, pid: int, path: str) -> SharedWorkerConnection:
        """The shared connection to the worker at ``path``: a new one once a new worker listens there."""
        with self._lock:
            current = self._shared.get(path)
        if current is not None and current.pid == pid:
            return current
        fresh = SharedWorkerConnection(name, pid, path, _connect(name, pid, path), self._forget)
        with self._lock:
            replaced = self._shared.get(path)
            if replaced is None or replaced.pid != pid:
                self._shared[path] = fresh
        if self._shared.get(path) is not fresh:
            fresh.close()
            return self._shared[path]
        fresh.start()
        if replaced is not None:
            replaced.close()
        return fresh

    def _forget(self, connection: SharedWorkerConnection) -> None:
        """A shared connection closed: its worker is gone, unless this process hung up itself."""
        with self._lock:
            if self._shared.get(connection.path) is connection:
                del self._shared[connection.path]
            if not connection.hung_up:
                self._gone[connection.path] = connection.pid

    def _own_connection(self, name: str, pid: int, path: str) -> ThreadWorkerConnection:
        """This thread's connection to the worker at ``path``: a new one after the worker there changed or it closed."""
        mine = self._local.__dict__.get("connections")
        if mine is None:
            mine = self._local.connections = _ThreadConnections()
        connection = mine.get(path)
        if connection is None or connection.closed or connection.pid != pid:
            if connection is not None:
                connection.discard()
            sock = _connect(name, pid, path)
            connection = mine[path] = ThreadWorkerConnection(name, pid, path, sock, self._went_away, self._spin)
            with self._lock:
                self._own.add(connection)
        return connection


class _ThreadConnections(dict[str, ThreadWorkerConnection]):
    """One thread's own connections, closed when the thread ends (``threading.local`` drops them then)."""

    def __del__(self) -> None:
        for connection in self.values():
            connection.discard()


def _connect(name: str, pid: int, path: str) -> socket.socket:
    try:
        return connect(path)
    except OSError as exc:
        raise lost(name, f"cannot reach its worker process {pid} ({type(exc).__name__})") from None
