"""A model worker's serving loop: one ``Model`` instance, its batcher, and the web processes' connections.

Requests from every connection join one :class:`~utilserve.pool.batcher.Batcher`,
so a batch holds items of different web processes. Two threads serve (see
:class:`Server`): while one runs a batch the other reads the connections,
so a full queue is refused and a ping answered while the model runs; a
lone request is read, run and answered by one thread. A batch's answers
leave with one write per connection.

A streaming model's worker runs steps instead of batches in the same
loop (see :mod:`.streams`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from time import monotonic
from typing import Any, TypeVar

from ....errors import HTTPError
from ....telemetry.batches import batch as running
from ...base import shutting_down
from ...batcher import Batcher, Item
from ...model import Model
from ...outcome import run_batch
from .. import messages
from ..codec import Buffer, encode, error_tuple, unpack
from ..messages import WireOrigin, from_wire
from ..sockets import ACCEPT_PAUSE_S, OUT_OF_DESCRIPTORS, limit_sends
from ..spec import ModelSpec
from ..spin import spin
from .connection import Connection, answers_per_connection
from .readiness import OnReady, readiness

logger = logging.getLogger("utilserve.pool")

Work = TypeVar("Work")


class Server:
    """Two threads serve the sockets and the model; whichever reads a due batch while the model is free runs it.

    While the model is free both wait for the sockets (see
    :mod:`.readiness`), so a lone request is read, run and
    answered by the thread the kernel woke, with no hand-off, and the other
    is already waiting: a full queue is refused and a ping answered while
    the model runs. With nothing queued and the model free, one thread
    polls for a moment before it sleeps (see :mod:`~utilserve.pool.process.spin`).
    """

    def __init__(
        self, spec: ModelSpec, model: Model, control: socket.socket, listener: socket.socket, spin_s: float
    ) -> None:
        self.spec = spec
        self.model = model
        self.batcher = Batcher(spec.name, spec.max_batch_size, spec.max_wait_ms, spec.max_queue)
        self._control = control
        self._listener = listener
        self._ready = readiness()
        self._connections: set[Connection] = set()
        self._state_lock = threading.Lock()
        self._spinning = threading.Lock()
        self._running = False
        self._stopped = False
        self._answering: deque[tuple[list[Item], list[Any]]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._spin = spin_s
        self._accept_again: threading.Timer | None = None
        self._accept_due = False
        self._told_out_of_descriptors = False

    def serve(self) -> None:
        """Serve until told to stop, then let the running batch finish and hang up on every web process."""
        self._listener.setblocking(False)
        self._ready.register(self._listener.fileno(), self._accept)
        self._ready.register(self._control.fileno(), self._stop)
        self._ready.register(self._wake_r, self._drain_wake)
        other = threading.Thread(target=self._serve_or_exit, name="utilserve-worker-second", daemon=True)
        other.start()
        self._serve_or_exit()
        other.join()
        if self._accept_again is not None:
            self._accept_again.cancel()
        for connection in list(self._connections):
            connection.writer.release()
        self._ready.close()
        self._listener.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _serve_or_exit(self) -> None:
        """Serve; a model raising past ``Exception`` (``SystemExit``...) ends the process.

        Its web processes then see their connections close and answer 503,
        and the supervisor starts a new worker.
        """
        try:
            self._serve()
        except BaseException:
            logger.exception("model %s: the worker cannot go on", self.spec.name)
            os._exit(70)

    def _serve(self) -> None:
        while True:
            with self._ready.turn():
                batch = self._poll(self.batcher.take_due)
            if batch is None:
                return
            while batch:
                with running(self.spec.name, [item.origin for item in batch]):
                    outcomes = run_batch(self.model, self.spec.name, [item.payload for item in batch])
                batch = self._answer_and_take(batch, outcomes)

    def _answer_and_take(self, done: list[Item], outcomes: list[Any]) -> list[Item]:
        """Answer a finished batch and take the next if a full one waits, else free the model.

        Under saturation the next batch starts at once and the other thread
        writes the answers meanwhile, so the model does not idle while they
        go out; otherwise this thread answers, with no hand-off, and goes
        back to the sockets to gather the next batch by the batcher's rules.
        """
        with answers_per_connection(), self._state_lock:
            batch = self.batcher.full_batch()
        if batch:
            self._answering.append((done, outcomes))
            self._wake()
            return batch
        self._answer(done, outcomes, busy=False)
        with self._state_lock:
            self._running = False
        if self._ready.takes_turns and self.batcher.queued:
            self._wake()  # the thread whose turn it is looks at the queue for this one
        return batch

    def _wake(self) -> None:
        """Have a waiting thread look at the queue and the answers again (a full pipe already says so)."""
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def _drain_wake(self) -> bool:
        os.read(self._wake_r, 4096)
        return True

    def _answer(self, batch: list[Item], outcomes: list[Any], busy: bool) -> None:
        with answers_per_connection():
            self.batcher.finish(batch, [encode(self.spec.name, outcome) for outcome in outcomes], busy=busy)

    def _answer_held(self) -> None:
        """Write the answers a running thread left (it took a full batch instead)."""
        while True:
            try:
                done, outcomes = self._answering.popleft()
            except IndexError:
                return
            self._answer(done, outcomes, busy=True)

    def _poll(self, due: Callable[[], tuple[Work | None, float | None]]) -> Work | None:
        """Handle the sockets until work is due while the model is free, and take it; ``None`` once stopped.

        ``due`` (called with the state lock held) says what work is due now
        (none when falsy; ``None`` once closed) and in how many seconds more
        will be (``None``: not until a socket says so). Items past their
        deadline are answered 504 once the state lock is released, so a web
        process slow to read never holds up the other thread.
        """
        while True:
            self._answer_held()
            with answers_per_connection(), self._state_lock:
                if self._stopped:
                    self._wake()  # the other thread may be waiting with nothing else to wake it
                    return None
                if self._accept_due:
                    self._accept_due = False
                    self._ready.register(self._listener.fileno(), self._accept)
                wait = None
                if not self._running:
                    work, wait = due()
                    if work is None or work:
                        self._running = work is not None
                        return work
                idle = wait is None and not self._running
            for fd, on_ready in (idle and self._ready_soon()) or self._ready.ready(wait):
                if on_ready():
                    self._ready.rearm(fd)

    def _ready_soon(self) -> list[tuple[int, OnReady]]:
        """Poll the sockets for up to the spin budget, one thread at a time, until the model starts running.

        A thread polling while the other runs the model would only take the
        GIL from it.
        """
        if not self._spin or not self._spinning.acquire(blocking=False):
            return []
        try:
            return spin(partial(self._ready.ready, 0), self._spin, give_up=lambda: self._running)
        finally:
            self._spinning.release()

    def _stop(self) -> bool:
        """The supervisor said stop, or is gone: answer queued and new items 503; the running batch finishes."""
        self._ready.unregister(self._control.fileno())
        with self._state_lock:
            self._stopped = True
        self.batcher.close(shutting_down(self.spec.name))
        self._wake()
        return False

    def _accept(self) -> bool:
        try:
            sock, _ = self._listener.accept()
        except OSError as exc:
            if exc.errno not in OUT_OF_DESCRIPTORS:
                return True
            self._pause_accepting(exc)
            return False
        sock.setblocking(True)
        connection = Connection(limit_sends(sock))
        self._connections.add(connection)
        self._ready.register(sock.fileno(), partial(self._read, connection))
        return True

    def _pause_accepting(self, exc: OSError) -> None:
        """Out of file descriptors, the listener stays ready: stop waiting on it for a while, and say so once."""
        if not self._told_out_of_descriptors:
            self._told_out_of_descriptors = True
            logger.warning("model %s: cannot accept (%s); pausing %g s at a time", self.spec.name, exc, ACCEPT_PAUSE_S)
        self._ready.unregister(self._listener.fileno())
        self._accept_again = threading.Timer(ACCEPT_PAUSE_S, self._resume_accepting)
        self._accept_again.daemon = True
        self._accept_again.start()

    def _resume_accepting(self) -> None:
        with self._state_lock:
            self._accept_due = True
        self._wake()

    def _read(self, connection: Connection) -> bool:
        """Handle one frame; False once the connection is dropped."""
        try:
            head, buffers = connection.reader.read()
        except (EOFError, OSError):
            self._drop(connection)
            return False
        except Exception:
            logger.exception("model %s: unreadable frame from a web process; dropping its connection", self.spec.name)
            self._drop(connection)
            return False
        kind = head[0]
        if kind == messages.SUBMIT:
            self._submit(connection, head[1], head[2], head[3], buffers)
        elif kind == messages.CREDIT:
            connection.grant(head[1], head[2])
        elif kind == messages.CANCEL:
            connection.cancel(head[1])
        elif kind == messages.STREAM:
            self._open(connection, head[1], head[2], head[3], head[4], buffers)
        elif kind == messages.PING:
            connection.send((messages.RESULT, head[1], None))
        return True

    def _submit(
        self, connection: Connection, rid: int, timeout_s: float, origin: WireOrigin, payload: list[Buffer]
    ) -> None:
        """Decode and queue one item: the batch then starts with its items ready, and a bad one never joins it."""
        item = self._decode(payload)
        if isinstance(item, HTTPError):
            connection.send((messages.RESULT, rid, error_tuple(item)))
            return
        try:
            future = self.batcher.submit(item, monotonic() + timeout_s, from_wire(origin))
        except HTTPError as error:
            connection.send((messages.RESULT, rid, error_tuple(error)))
            return
        connection.pending[rid] = future
        future.add_done_callback(partial(_reply, connection, rid))

    def _open(
        self,
        connection: Connection,
        rid: int,
        timeout_s: float,
        credit: int,
        origin: WireOrigin,
        payload: list[Buffer],
    ) -> None:
        """A stream for a model that answers once: refused (``ModelHandle`` says so before it gets here)."""
        error = HTTPError(500, f"model {self.spec.name} answers once: call predict() or apredict()")
        connection.send((messages.ENDED, rid, error_tuple(error)))

    def _decode(self, payload: list[Buffer]) -> Any:
        """The item a frame carries, or the 500 that fails it alone."""
        try:
            return unpack(payload)
        except Exception as exc:  # noqa: BLE001 - an undecodable item fails alone
            return HTTPError(500, f"model {self.spec.name}: could not decode the input ({type(exc).__name__})")

    def _drop(self, connection: Connection) -> None:
        """A web process went away: its queued items leave the queue (running ones finish unheard)."""
        self._ready.unregister(connection.sock.fileno())
        self._connections.discard(connection)
        connection.drop()


def _reply(connection: Connection, rid: int, future: Future[Any]) -> None:
    """Send one item's outcome to the web process that sent it (held with its batch's others)."""
    connection.pending.pop(rid, None)
    if future.cancelled():
        return
    error = future.exception()
    if error is None:
        connection.send((messages.RESULT, rid, None), future.result())
    elif isinstance(error, HTTPError):
        connection.send((messages.RESULT, rid, error_tuple(error)))
    else:
        connection.send((messages.RESULT, rid, (500, f"pool error: {type(error).__name__}", None, {})))
