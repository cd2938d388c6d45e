"""The supervisor: hosts models for every web process that connects to its socket.

One thread per web process reads its control connection (see
:mod:`~utilserve.pool.process.messages` for what they say). It exits, draining running batches
first and taking its model workers with it, on ``EXIT`` from its owner, or
when the owner process (the server master) is gone; a sidecar (no owner)
on SIGTERM/SIGINT. One with an owner ignores those: a signal to the
server's whole process group (Ctrl-C, systemd, a container stop) reaches
it too, while the web workers still answer their last requests, and if it
left first they would answer them 503, and start another supervisor.
"""

from __future__ import annotations

import itertools
import logging
import os
import selectors
import signal
import socket
import threading
from collections.abc import Sequence
from time import monotonic
from typing import Any

from ....concurrency import start_without_signals
from ....owner import alive
from .. import messages
from ..messages import ModelStatus
from ..signals import unblock_signals
from ..sockets import ACCEPT_PAUSE_S, OUT_OF_DESCRIPTORS, FrameReader, Writer, limit_sends, listen
from ..spec import ModelSpec
from .hosted import HostedModel

logger = logging.getLogger("utilserve.pool")

DRAIN_TIMEOUT_S = 30.0


class Supervisor:
    """Accepts web processes' connections on ``path`` and hosts the models they load."""

    def __init__(self, path: str, owner: int | None = None, drain_timeout: float = DRAIN_TIMEOUT_S) -> None:
        self.path = path
        self.owner = owner
        self.drain_timeout = drain_timeout
        self._lock = threading.Lock()
        self._models: dict[str, HostedModel] = {}
        self._connections: set[_WebProcess] = set()
        self._wake_r, self._wake_w = os.pipe()
        self._endpoints = itertools.count(1)
        self._inode = 0
        self._closing = False
        self._told_out_of_descriptors = False

    def load(self, spec: ModelSpec) -> HostedModel:
        """The hosted model named ``spec.name``, started on first request."""
        with self._lock:
            if self._closing:
                raise RuntimeError("this pool supervisor is shutting down")
            hosted = self._models.get(spec.name)
            if hosted is None:
                hosted = HostedModel(spec, self._broadcast, self._endpoint)
                self._models[spec.name] = hosted
                hosted.start()
        if hosted.spec.target != spec.target:
            raise ValueError(
                f"model {spec.name}: this pool serves it from {hosted.spec.target}, "
                f"but a web process expects {spec.target}; start both from the same module"
            )
        if hosted.spec != spec:
            logger.warning("model %s: a web process asks for %s; keeping %s", spec.name, spec, hosted.spec)
        return hosted

    def _endpoint(self) -> str:
        """Where the next model worker slot listens: beside this supervisor's socket, 0600 like it."""
        return f"{self.path}.{next(self._endpoints)}"

    def unload(self, name: str) -> None:
        with self._lock:
            hosted = self._models.pop(name, None)
        if hosted is not None:
            hosted.stop(self.drain_timeout)

    def request_exit(self) -> None:
        os.write(self._wake_w, b"x")

    def serve_forever(self, specs: Sequence[ModelSpec] = ()) -> None:
        """Listen, host ``specs``, serve until told to exit, then drain and stop every model.

        The socket comes first: the workers' sockets are named after it,
        so a second supervisor on the same path stops here, before it
        starts any worker.
        """
        listener = listen(self.path)
        self._inode = os.stat(self.path).st_ino
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, "accept")
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        owner_fd = self._watch_owner(selector)
        owner_gone = self.owner is not None and not alive(self.owner)
        paused_until: float | None = None
        try:
            for spec in specs:
                self.load(spec)
            while not owner_gone:
                timeout = None if owner_fd is not None or self.owner is None else 1.0
                if paused_until is not None:
                    left = max(0.0, paused_until - monotonic())
                    timeout = left if timeout is None else min(timeout, left)
                events = selector.select(timeout)
                owner_gone = owner_fd is None and self.owner is not None and not alive(self.owner)
                if paused_until is not None and monotonic() >= paused_until:
                    selector.register(listener, selectors.EVENT_READ, "accept")
                    paused_until = None
                for key, _ in events:
                    if key.data == "accept":
                        if not self._accept(listener):
                            selector.unregister(listener)
                            paused_until = monotonic() + ACCEPT_PAUSE_S
                    elif key.data == "owner":
                        owner_gone = True
                    else:
                        return
            logger.info("pool supervisor: owner process %s is gone; exiting", self.owner)
        finally:
            self._shutdown(listener, remove_directory=self.owner is not None)
            selector.close()
            if owner_fd is not None:
                os.close(owner_fd)

    def _watch_owner(self, selector: selectors.BaseSelector) -> int | None:
        if self.owner is None or not hasattr(os, "pidfd_open"):
            return None
        try:
            fd = os.pidfd_open(self.owner)
        except OSError:
            return None
        selector.register(fd, selectors.EVENT_READ, "owner")
        return fd

    def _accept(self, listener: socket.socket) -> bool:
        """Take a web process's connection; False while out of file descriptors (the caller pauses, see ``sockets``)."""
        try:
            sock, _ = listener.accept()
        except OSError as exc:
            if exc.errno not in OUT_OF_DESCRIPTORS:
                return True
            if not self._told_out_of_descriptors:
                self._told_out_of_descriptors = True
                logger.warning("pool supervisor: cannot accept (%s); pausing %g s at a time", exc, ACCEPT_PAUSE_S)
            return False
        connection = _WebProcess(self, limit_sends(sock))
        with self._lock:
            self._connections.add(connection)
        connection.start()
        return True

    def forget(self, connection: _WebProcess) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _broadcast(self, hosted: HostedModel) -> None:
        status = hosted.status
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.push_state(hosted.spec.name, status)

    def _shutdown(self, listener: socket.socket, remove_directory: bool) -> None:
        listener.close()
        _unlink_if_ours(self.path, self._inode)
        with self._lock:
            self._closing = True
            models = list(self._models.values())
            self._models.clear()
        stoppers = [threading.Thread(target=hosted.stop, args=(self.drain_timeout,)) for hosted in models]
        for stopper in stoppers:
            start_without_signals(stopper)
        for stopper in stoppers:
            stopper.join()
        if remove_directory:
            _remove_private_dir(self.path)
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()


class _WebProcess:
    """One web process's control connection: read on a thread; status pushes come from any thread."""

    def __init__(self, supervisor: Supervisor, sock: socket.socket) -> None:
        self.supervisor = supervisor
        self.sock = sock
        self._writer = Writer(sock)
        self._subscribed: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="utilserve-pool-web-process", daemon=True)

    def start(self) -> None:
        start_without_signals(self._thread)

    def close(self) -> None:
        """End the connection; the reader thread then cleans up."""
        self._writer.hang_up()

    def push_state(self, name: str, status: ModelStatus) -> None:
        if name in self._subscribed:
            self._send((messages.STATE, name, status))

    def _run(self) -> None:
        reader = FrameReader(self.sock)
        try:
            while True:
                head, _ = reader.read()
                self._handle(head)
        except (EOFError, OSError):
            pass
        finally:
            self.supervisor.forget(self)
            self._writer.release()

    def _handle(self, head: tuple[Any, ...]) -> None:
        kind = head[0]
        if kind == messages.LOAD:
            self._load(ModelSpec(**head[1]))
        elif kind == messages.UNLOAD:
            start_without_signals(threading.Thread(target=self._unload, args=(head[1], head[2]), daemon=True))
        elif kind == messages.EXIT:
            self.supervisor.request_exit()

    def _load(self, spec: ModelSpec) -> None:
        try:
            hosted = self.supervisor.load(spec)
        except (ValueError, RuntimeError) as exc:
            phase = "failed" if isinstance(exc, ValueError) else "stopped"
            failure = (type(exc).__name__, str(exc), None)
            self._send((messages.STATE, spec.name, ModelStatus(phase, failure, (), os.getpid())))
            return
        self._subscribed.add(spec.name)
        self._send((messages.STATE, spec.name, hosted.status))

    def _unload(self, rid: int, name: str) -> None:
        self._subscribed.discard(name)
        self.supervisor.unload(name)
        self._send((messages.RESULT, rid, None))

    def _send(self, head: tuple[Any, ...]) -> None:
        self._writer.send(head)


def _unlink_if_ours(path: str, inode: int) -> None:
    """Remove the socket file unless a newer supervisor already replaced it."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass


def _remove_private_dir(path: str) -> None:
    """An owned pool's directory is done once the owner is gone or said so (its name holds the owner's pid).

    Its lock, and the sockets of the supervisor and its workers (named after it), go with it.
    """
    directory, name = os.path.split(path)
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for leftover in entries:
        if leftover == "lock" or leftover.startswith(name):
            try:
                os.unlink(os.path.join(directory, leftover))
            except OSError:
                pass
    try:
        os.rmdir(directory)
    except OSError:
        pass


def serve(path: str, owner: int | None, specs: Sequence[ModelSpec] = ()) -> None:
    """Run a supervisor in this process until its owner's exit or an ``exit`` request (a sidecar: or SIGTERM/SIGINT)."""
    logging.basicConfig(level=logging.INFO, format="[utilserve pool %(process)d] %(message)s")
    supervisor = Supervisor(path, owner)

    def on_signal(signum: int, frame: Any) -> None:
        logger.info("pool supervisor: %s; draining", signal.Signals(signum).name)
        supervisor.request_exit()

    def outlive_the_owner(signum: int, frame: Any) -> None:
        logger.info("pool supervisor: %s; exiting after its owner process %s", signal.Signals(signum).name, owner)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal if owner is None else outlive_the_owner)
    unblock_signals()
    supervisor.serve_forever(specs)
