"""The web-process side of the process pool: a control link to the supervisor; items go straight to the workers.

Every ``ProcessPool`` in a process that meets the same supervisor shares one
:class:`Link`: a connection on which the supervisor pushes each model's
status, including where its workers listen. Items go straight to a model
worker (see :mod:`.dispatch`). Everything is tied to the process that made
it: after a fork (a gunicorn or uWSGI worker), the child builds its own
link and connections on first use.

When a connection to a worker closes (the worker died or stopped), what is
in flight on it fails at once with 503 and ``Retry-After``. When the
control link is lost, its reader thread reconnects; if nobody listens and
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
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ..api.errors import HTTPError
from . import protocol
from .batcher import RETRY_AFTER
from .channel import answered, settle
from .dispatch import Dispatch, Workers
from .launch import PoolUnavailable, connect, start_or_join
from .rendezvous import Address, alive
from .spec import ModelSpec

logger = logging.getLogger("utilserve.pool")

CONNECT_WAIT_S = 5.0
"""How long a first request after a fork waits for its new connection before answering 503."""
FIRST_CONNECT = "still connecting to the pool supervisor"
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0


@dataclass(frozen=True)
class ModelState:
    """What the supervisor last said about a model; ``phase`` ``unknown`` while disconnected."""

    phase: str = "unknown"
    error: BaseException | None = None
    error_name: str = ""
    workers: Workers = ()
    supervisor: int = 0

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> ModelState:
        error = status["error"]
        return cls(
            phase=status["phase"],
            error=_exception(error) if error else None,
            error_name=error[0] if error else "",
            workers=tuple((pid, path) for pid, path in status["workers"]),
            supervisor=status["supervisor"],
        )


class Link:
    """This process's connection to one supervisor, shared by its pools."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self._lock = threading.Condition(threading.Lock())
        self._send_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._pending: dict[int, Future[Any]] = {}
        self._ids = itertools.count(1)
        self._dispatch = Dispatch()
        self._specs: dict[str, ModelSpec] = {}
        self._states: dict[str, ModelState] = {}
        self._problem = FIRST_CONNECT
        self._closed = False
        self._exit_supervisor = False
        self._thread: threading.Thread | None = None
        self._spawned: subprocess.Popen[bytes] | None = None

    def attach(self, spec: ModelSpec) -> None:
        """Have the supervisor host ``spec`` (now and after every reconnect)."""
        with self._lock:
            self._specs[spec.name] = spec
            sock = self._sock
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="utilserve-pool-link", daemon=True)
                self._thread.start()
        if sock is not None:
            self._send(sock, ("load", spec.to_dict()))

    def attached(self, name: str) -> bool:
        return name in self._specs

    def detach(self, name: str) -> bool:
        """Forget ``name``; True when no pool uses this link any more."""
        with self._lock:
            self._specs.pop(name, None)
            self._states.pop(name, None)
            return not self._specs

    def state(self, name: str) -> ModelState:
        return self._states.get(name, ModelState())

    def wait_state(self, name: str, done: Callable[[ModelState], bool], timeout: float | None) -> ModelState:
        """Block until ``done(state)`` or ``timeout``; return the state either way."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not done(state := self._states.get(name, ModelState())) and not self._closed:
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._lock.wait(remaining)
            return state

    def _heard_or_failed(self, state: ModelState) -> bool:
        """A fresh link's first request waits for the supervisor's answer, unless connecting already failed."""
        return state.phase != "unknown" or (self._sock is None and self._problem != FIRST_CONNECT)

    def submit(self, name: str, item: BaseModel, timeout_s: float) -> Future[Any]:
        """Send one item to a worker of ``name``; the future resolves to its ``Output`` or an ``HTTPError``."""
        return self._dispatch.submit(name, self._ready_workers(name, timeout_s), item, timeout_s)

    def call(self, name: str, item: BaseModel, timeout_s: float) -> Any:
        """Send one item to a worker of ``name`` and wait in this thread: its ``Output``, or raise."""
        return self._dispatch.call(name, self._ready_workers(name, timeout_s), item, timeout_s)

    def sync(self, name: str, timeout: float) -> bool:
        """A round trip over each shared channel of ``name``: every item sent on them before is queued in its worker."""
        return self._dispatch.sync(name, timeout)

    def _ready_workers(self, name: str, timeout_s: float) -> Workers:
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
        that too; channels to the workers close at once.
        """
        with self._lock:
            self._closed = True
            self._exit_supervisor = exit_supervisor
            sock = self._sock
            self._lock.notify_all()
        if sock is not None:
            self._hang_up(sock)
        self._dispatch.close()
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
        self._dispatch.abandon()

    def _hang_up(self, sock: socket.socket) -> None:
        """End a connection of a closed link: ask the supervisor to exit (it then closes), or shut it down."""
        if self._exit_supervisor and self._send(sock, ("exit", 0)):
            return
        protocol.hang_up(sock)

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
                    self._send(sock, ("load", spec.to_dict()))
            try:
                self._read(sock)
            finally:
                self._lost(sock)

    def _read(self, sock: socket.socket) -> None:
        reader = protocol.FrameReader(sock)
        while True:
            try:
                head, _ = reader.read()
            except (EOFError, OSError):
                return
            if head[0] == "result":
                self._answered(head[1])
            elif head[0] == "state" and head[1] in self._specs:
                with self._lock:
                    self._states[head[1]] = ModelState.from_status(head[2])
                    self._lock.notify_all()

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
            self._states = {name: ModelState() for name in self._states}
            self._problem = "the connection to the pool supervisor was lost"
            self._lock.notify_all()
        for future in pending.values():
            future.cancel()

    def _send(self, sock: socket.socket, head: tuple[Any, ...], buffers: list[protocol.Buffer] | None = None) -> bool:
        try:
            with self._send_lock:
                protocol.send(sock, head, buffers or ())
        except OSError:
            protocol.hang_up(sock)
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

    def _not_ready(self, name: str, state: ModelState) -> HTTPError:
        reasons = {
            "failed": f" (setup failed: {state.error_name})",
            "restarting": " (restarting a worker)",
            "stopped": " (shutting down)",
            "unknown": f" ({self._problem})" if self._problem else "",
        }
        return HTTPError(503, f"model {name} is not ready{reasons.get(state.phase, '')}", headers=dict(RETRY_AFTER))


def _exception(error: tuple[str, str, bytes | None]) -> BaseException:
    name, message, pickled = error
    if pickled is not None:
        try:
            found = protocol.unpack([pickled])
        except Exception:  # noqa: BLE001 - fall back to the name and message
            found = None
        if isinstance(found, BaseException):
            return found
    return RuntimeError(f"{name}: {message}")


_links: dict[str, Link] = {}
_links_pid = os.getpid()
_links_lock = threading.Lock()


def link_for(address: Address) -> Link:
    """This process's link to ``address``; a forked child gets fresh ones (and new connections)."""
    if _links_pid != os.getpid():
        _reset_after_fork()
    link = _links.get(address.socket)
    if link is None:
        with _links_lock:
            link = _links.get(address.socket)
            if link is None:
                link = _links[address.socket] = Link(address)
    return link


def drop_link(address: Address) -> None:
    with _links_lock:
        if _links.get(address.socket) is not None and _links_pid == os.getpid():
            del _links[address.socket]


def _reset_after_fork() -> None:
    """A forked child lost the parent's threads: close its copies of their sockets and start over.

    Only socket objects are touched; locks the parent's threads held at the
    fork stay locked forever in the child, so no inherited lock is taken.
    """
    global _links, _links_pid, _links_lock
    for link in _links.values():
        link.abandon()
    _links, _links_pid, _links_lock = {}, os.getpid(), threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
