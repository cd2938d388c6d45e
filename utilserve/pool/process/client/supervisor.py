"""A web process's control connection to the supervisor, shared by every ``ProcessPool`` of the process.

On it the supervisor pushes each model's status, including where its
workers listen; items never travel on it (see :mod:`.workers`). Everything
is tied to the process that made it: after a fork (a gunicorn or uWSGI
worker), the child builds its own connections on first use. When the
connection is lost, its reader thread reconnects; if nobody listens and
this process may start a supervisor, it starts one (see :mod:`.launch`).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ....concurrency import start_without_signals
from ....errors import HTTPError
from ....owner import alive
from ...base import not_ready
from ...observed import serving
from .. import messages
from ..messages import ModelStatus, Workers
from ..rendezvous import Address
from ..sockets import FrameReader, connect, hang_up, send
from ..spec import ModelSpec
from .connections import answered, settle
from .launch import PoolUnavailable, start_or_join
from .workers import WorkerConnections

logger = logging.getLogger("utilserve.pool")

CONNECT_WAIT_S = 5.0
"""How long a first request after a fork waits for its new connection before answering 503."""
FIRST_CONNECT = "still connecting to the pool supervisor"
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0


class SupervisorConnection:
    """This process's connection to one supervisor, shared by its pools, and its connections to the model workers."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self._lock = threading.Condition(threading.Lock())
        self._send_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pending: dict[int, Future[Any]] = {}
        self._ids = itertools.count(1)
        self.workers = WorkerConnections()
        self._specs: dict[str, ModelSpec] = {}
        self._states: dict[str, ModelStatus] = {}
        self._problem = FIRST_CONNECT
        self._closed = False
        self._exit_supervisor = False
        self._thread: threading.Thread | None = None
        self._spawned: subprocess.Popen[bytes] | None = None

    def attach(self, spec: ModelSpec) -> None:
        """Have the supervisor host ``spec`` (now and after every reconnect)."""
        serving(spec.name, False)
        with self._lock:
            self._specs[spec.name] = spec
            sock = self._sock
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="utilserve-pool-supervisor", daemon=True)
                start_without_signals(self._thread)
        if sock is not None:
            self._send(sock, (messages.LOAD, spec.to_dict()))

    def attached(self, name: str) -> bool:
        return name in self._specs

    def detach(self, name: str) -> bool:
        """Forget ``name``; True when no pool uses this connection any more."""
        serving(name, False)
        with self._lock:
            self._specs.pop(name, None)
            self._states.pop(name, None)
            return not self._specs

    def state(self, name: str) -> ModelStatus:
        return self._states.get(name, ModelStatus())

    def wait_state(self, name: str, done: Callable[[ModelStatus], bool], timeout: float | None) -> ModelStatus:
        """Block until ``done(state)`` or ``timeout``; return the state either way."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not done(state := self._states.get(name, ModelStatus())) and not self._closed:
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._lock.wait(remaining)
            return state

    def loading(self, name: str) -> bool:
        """Whether ``name`` is on its way to ready: loading, restarting a worker, or not heard of yet on a fresh
        connection; not when it failed, stopped, or the supervisor cannot be reached."""
        state = self.state(name)
        return state.phase in ("loading", "restarting") or not self._heard_or_failed(state)

    def _heard_or_failed(self, state: ModelStatus) -> bool:
        """A fresh connection's first request waits for the supervisor's answer, unless connecting already failed."""
        return state.phase != "unknown" or (self._sock is None and self._problem != FIRST_CONNECT)

    def ready_workers(self, name: str, timeout_s: float) -> Workers:
        """Where the workers of ``name`` listen; a 503 unless it is ready (a fresh connection waits to hear first)."""
        state = self._states.get(name)
        if state is None:
            state = self.wait_state(name, self._heard_or_failed, min(timeout_s, CONNECT_WAIT_S))
        if state.phase != "ready" or not state.workers:
            raise self._not_ready(name, state)
        return state.workers

    def request(self, head: tuple[Any, ...], timeout: float) -> bool:
        """Send ``head`` with a fresh request id and wait for its answer; False if none came."""
        future: Future[Any] = Future()
        rid = next(self._ids)
        with self._lock:
            sock = self._sock
            if sock is None:
                return False
            self._pending[rid] = future
        try:
            return self._send(sock, (head[0], rid, *head[1:])) and answered(future, timeout)
        finally:
            with self._lock:
                self._pending.pop(rid, None)

    def close(self, exit_supervisor: bool = False, timeout: float = 30.0) -> None:
        """Stop reconnecting and hang up; with ``exit_supervisor`` (the owner only) end the supervisor too.

        The supervisor has its workers drain running batches before it
        closes the connection, so waiting for the reader thread waits for
        that too; connections to the workers close at once.
        """
        with self._lock:
            self._closed = True
            self._exit_supervisor = exit_supervisor
            sock = self._sock
            self._lock.notify_all()
        if sock is not None:
            self._hang_up(sock)
        self.workers.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if exit_supervisor and self._spawned is not None:
            try:
                self._spawned.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("pool supervisor %s did not exit within %.1f s", self._spawned.pid, timeout)

    def abandon(self) -> None:
        """In a forked child: close this copy of the parent's sockets, taking no lock."""
        if self._sock is not None:
            self._sock.close()
        self.workers.abandon()

    def _hang_up(self, sock: socket.socket) -> None:
        """End the connection once closed: ask the supervisor to exit (it then closes), or shut it down."""
        if self._exit_supervisor and self._send(sock, (messages.EXIT, 0)):
            return
        hang_up(sock)

    def _run(self) -> None:
        """Connect (starting a supervisor if allowed), read until the connection drops, repeat."""
        delay = RETRY_FIRST_S
        while not self._closed:
            try:
                sock = self._connect()
            except (PoolUnavailable, OSError) as exc:
                with self._lock:
                    self._problem = str(exc)
                    self._lock.notify_all()
                    self._lock.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            with self._lock:
                self._sock = sock
                self._problem = ""
                specs = list(self._specs.values())
                closed = self._closed
            if closed:
                self._hang_up(sock)
            else:
                for spec in specs:
                    self._send(sock, (messages.LOAD, spec.to_dict()))
            try:
                self._read(sock)
            finally:
                self._lost(sock)

    def _read(self, sock: socket.socket) -> None:
        reader = FrameReader(sock)
        while True:
            try:
                head, _ = reader.read()
            except (EOFError, OSError):
                return
            if head[0] == messages.RESULT:
                self._answered(head[1])
            elif head[0] == messages.STATE and head[1] in self._specs:
                with self._lock:
                    self._states[head[1]] = head[2]
                    self._lock.notify_all()
                serving(head[1], head[2].phase == "ready")

    def _answered(self, rid: int) -> None:
        with self._lock:
            future = self._pending.pop(rid, None)
        if future is not None:
            settle(future)

    def _lost(self, sock: socket.socket) -> None:
        """Forget the models' states: until the supervisor is back, nothing new is sent to their workers."""
        with self._send_lock:
            sock.close()
        with self._lock:
            self._sock = None
            pending, self._pending = self._pending, {}
            self._states = {name: ModelStatus() for name in self._states}
            self._problem = "the connection to the pool supervisor was lost"
            self._lock.notify_all()
        for name in list(self._specs):
            serving(name, False)
        for future in pending.values():
            future.cancel()

    def _send(self, sock: socket.socket, head: tuple[Any, ...]) -> bool:
        try:
            with self._send_lock:
                send(sock, head)
        except OSError:
            hang_up(sock)
            return False
        return True

    def _connect(self) -> socket.socket:
        try:
            return connect(self.address.socket)
        except (FileNotFoundError, ConnectionRefusedError):
            if not self.address.spawns:
                raise PoolUnavailable(
                    f"no pool supervisor listens at {self.address.socket} "
                    f"(UTILSERVE_POOL_SOCKET / Service(pool_socket=...)); start one with "
                    f"`utilserve pool TARGET --socket {self.address.socket}`"
                ) from None
        return self._start_supervisor()

    def _start_supervisor(self) -> socket.socket:
        assert self.address.lock is not None and self.address.owner is not None
        if not alive(self.address.owner):
            raise PoolUnavailable(f"the pool's owner process {self.address.owner} has exited")
        self._reap()
        sock, process = start_or_join(self.address.socket, self.address.lock, self.address.owner)
        if process is not None:
            self._spawned = process
        return sock

    def _reap(self) -> None:
        if self._spawned is not None and self._spawned.poll() is not None:
            self._spawned = None

    def _not_ready(self, name: str, state: ModelStatus) -> HTTPError:
        reasons = {
            "failed": f"setup failed: {state.error[0] if state.error else ''}",
            "restarting": "restarting a worker",
            "stopped": "shutting down",
            "unknown": self._problem,
        }
        return not_ready(name, reasons.get(state.phase, ""))


_connections: dict[str, SupervisorConnection] = {}
_connections_pid = os.getpid()
_connections_lock = threading.Lock()


def connection_to(address: Address) -> SupervisorConnection:
    """This process's connection to the supervisor at ``address``; a forked child makes its own."""
    if _connections_pid != os.getpid():
        _reset_after_fork()
    connection = _connections.get(address.socket)
    if connection is None:
        with _connections_lock:
            connection = _connections.get(address.socket)
            if connection is None:
                connection = _connections[address.socket] = SupervisorConnection(address)
    return connection


def forget_connection(address: Address) -> None:
    with _connections_lock:
        if _connections.get(address.socket) is not None and _connections_pid == os.getpid():
            del _connections[address.socket]


def _reset_after_fork() -> None:
    """A forked child lost the parent's threads: close its copies of their sockets and start over.

    Only socket objects are touched; locks the parent's threads held at the
    fork stay locked forever in the child, so no inherited lock is taken.
    """
    global _connections, _connections_pid, _connections_lock
    for connection in _connections.values():
        connection.abandon()
    _connections, _connections_pid, _connections_lock = {}, os.getpid(), threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
