"""One model inside the supervisor: its batcher and one feeder thread per worker process.

Items queue in a :class:`~utilserve.pool.batcher.Batcher` shared by every
client, so requests from different web processes join the same batch. Each
feeder thread owns one spawned worker process: it takes a batch, sends it
over a socketpair (with the next one when a full batch already waits),
waits for the outcomes and resolves the items. When the worker dies, the
batches it held fail at once with 503 and ``Retry-After`` and the feeder
starts a new worker after an exponential backoff.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from time import monotonic
from typing import Any

from ..api.errors import HTTPError
from . import protocol
from .batcher import RETRY_AFTER, Batcher, Item
from .launch import python_executable
from .spec import ModelSpec, import_path_arg

logger = logging.getLogger("utilserve.pool")

IN_FLIGHT = 2
"""Batches sent to one worker at a time: the one it runs and, under saturation, the next."""
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 10.0


@dataclass(frozen=True)
class Status:
    """What clients are told about a model (pushed on every change)."""

    phase: str
    """``loading``, ``ready``, ``restarting`` (no worker up), ``failed`` (setup raised) or ``stopped``."""
    error: tuple[str, str, bytes | None] | None
    workers: tuple[int, ...]
    supervisor: int


class HostedModel:
    """Queue, workers and status of one model; ``changed`` is called on every status change.

    ``answering`` wraps the resolving of each batch's outcomes, so that
    whoever answers the callers can send a batch's answers together.
    """

    def __init__(
        self,
        spec: ModelSpec,
        changed: Callable[[HostedModel], None],
        answering: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        self.spec = spec
        self._changed = changed
        self.answering = answering
        self.batcher = Batcher(spec.name, spec.max_batch_size, spec.max_wait_ms, spec.max_queue)
        self._lock = threading.Lock()
        self._feeders = [_Feeder(self, index) for index in range(spec.workers)]
        self._ever_up: set[int] = set()
        self._up: dict[int, int] = {}
        self._error: tuple[str, str, bytes | None] | None = None
        self._stopped = False

    def start(self) -> None:
        for feeder in self._feeders:
            feeder.start()

    @property
    def status(self) -> Status:
        with self._lock:
            return Status(self._phase(), self._error, tuple(self._up.values()), os.getpid())

    def submit(self, payload: list[protocol.Buffer], timeout_s: float) -> Any:
        """Queue one encoded item; raise ``HTTPError(503)`` when not ready or full."""
        with self._lock:
            phase = self._phase()
        if phase != "ready":
            raise _not_ready(self.spec.name, phase, self._error)
        return self.batcher.submit(payload, monotonic() + timeout_s)

    def stop(self, timeout: float) -> None:
        """Refuse new items, answer queued ones 503, let running batches finish, stop the workers."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.batcher.close(HTTPError(503, f"model {self.spec.name} is shutting down", headers=dict(RETRY_AFTER)))
        end = monotonic() + timeout
        for feeder in self._feeders:
            feeder.halt()
        for feeder in self._feeders:
            feeder.finish(max(0.0, end - monotonic()))
        self._changed(self)

    def _phase(self) -> str:
        if self._stopped:
            return "stopped"
        if self._error is not None:
            return "failed"
        if len(self._ever_up) < len(self._feeders):
            return "loading"
        return "ready" if self._up else "restarting"

    def _worker_up(self, index: int, pid: int) -> None:
        with self._lock:
            self._ever_up.add(index)
            self._up[index] = pid
        self._changed(self)

    def _worker_down(self, index: int) -> None:
        with self._lock:
            self._up.pop(index, None)
        self._changed(self)

    def _setup_failed(self, error: tuple[str, str, bytes | None]) -> None:
        with self._lock:
            self._error = self._error or error
        self.batcher.close(_not_ready(self.spec.name, "failed", error))
        self._changed(self)


def _not_ready(name: str, phase: str, error: tuple[str, str, bytes | None] | None) -> HTTPError:
    reasons = {"failed": f" (setup failed: {error[0]})" if error else "", "restarting": " (restarting a worker)"}
    return HTTPError(503, f"model {name} is not ready{reasons.get(phase, '')}", headers=dict(RETRY_AFTER))


class _Feeder:
    """A thread that keeps one worker process alive and feeds it batches."""

    def __init__(self, model: HostedModel, index: int) -> None:
        self.model = model
        self.index = index
        self.name = model.spec.name
        self._halted = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._was_up = False
        self._thread = threading.Thread(target=self._run, name=f"utilserve-feed-{self.name}-{index}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def halt(self) -> None:
        self._halted.set()

    def finish(self, timeout: float) -> None:
        """Wait for the thread; a worker still busy (or loading) after ``timeout`` is killed."""
        self._thread.join(timeout)
        process = self._process
        if self._thread.is_alive() and process is not None and process.poll() is None:
            logger.warning("model %s: worker %s still busy after %.1f s; killing it", self.name, process.pid, timeout)
            process.kill()
            self._thread.join(5.0)

    def _run(self) -> None:
        """Start workers until halted: exits on a clean stop or a failed first setup."""
        delay = BACKOFF_FIRST_S
        while not self._halted.is_set():
            try:
                process, sock = self._spawn()
            except OSError as exc:
                logger.error("model %s: could not start a worker process: %s", self.name, exc)
                delay = min(delay * 2, BACKOFF_MAX_S)
                self._halted.wait(delay)
                continue
            try:
                served = self._load_and_serve(process, sock)
            finally:
                sock.close()
                if not _exited(process, 5.0):
                    process.kill()
                    process.wait()
                self.model._worker_down(self.index)
            if served is None:
                return
            delay = BACKOFF_FIRST_S if served else min(delay * 2, BACKOFF_MAX_S)
            logger.warning("model %s: worker exited (%s); restarting in %.1f s", self.name, _exit(process), delay)
            self._halted.wait(delay)

    def _spawn(self) -> tuple[subprocess.Popen[bytes], socket.socket]:
        """A fresh interpreter (never a fork, so CUDA and native thread pools start clean) holding one socketpair end."""
        ours, theirs = socket.socketpair()
        argv = [
            python_executable(), "-m", "utilserve.pool.worker",
            "--fd", str(theirs.fileno()), "--target", self.model.spec.target, "--name", self.name,
            "--parent", str(os.getpid()), "--sys-path", import_path_arg(),
        ]  # fmt: skip
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._process = process
        return process, ours

    def _load_and_serve(self, process: subprocess.Popen[bytes], sock: socket.socket) -> bool | None:
        """``None``: stop for good; ``True``/``False``: the worker died after/before serving a batch.

        A ``setup()`` that raises before this worker slot ever came up fails
        the model for good, like the thread pool; after a crash it is retried.
        """
        reader = protocol.FrameReader(sock)
        try:
            head, _ = reader.read()
        except (EOFError, OSError):
            return None if self._halted.is_set() else False
        if head[0] == "failed":
            if not self._was_up:
                self.model._setup_failed((head[1], head[2], head[3]))
                return None
            logger.error("model %s: setup failed on restart: %s: %s", self.name, head[1], head[2])
            return False
        self._was_up = True
        self.model._worker_up(self.index, head[1])
        served = self._serve(process, sock, reader)
        if served is None:
            try:
                protocol.send(sock, ("stop",))
            except OSError:
                pass
            else:
                _exited(process, 30.0)
        return served

    def _serve(self, process: subprocess.Popen[bytes], sock: socket.socket, reader: protocol.FrameReader) -> bool | None:
        """Feed batches until the batcher closes (``None``) or the worker dies (whether it served one).

        Under saturation a full batch goes to the worker while it still runs
        the last one (never more than :data:`IN_FLIGHT`), so the model starts
        it the moment it is done instead of idling through a round trip to
        this thread, which on a busy machine takes milliseconds. Items of a
        batch that is not full wait here, where they can still join others.
        """
        batcher = self.model.batcher
        sent: deque[list[Item]] = deque()
        served = False
        while True:
            if not sent:
                batch = batcher.next_batch()
                if batch is None:
                    return None
                sent.append(batch)
            else:
                batch = []
            following = batcher.full_batch() if len(sent) < IN_FLIGHT else []
            if following:
                sent.append(following)
            try:
                for fresh in (batch, following):
                    if fresh:
                        protocol.send(sock, *_batch_frame(fresh))
                head, buffers = reader.read()
            except (EOFError, OSError):
                _exited(process, 1.0)
                with self.model.answering():
                    for lost in sent:
                        batcher.finish(lost, [self._died(process) for _ in lost])
                return served
            done = sent.popleft()
            with self.model.answering():
                batcher.finish(done, _outcomes(head[1], buffers), busy=bool(sent))
            served = True

    def _died(self, process: subprocess.Popen[bytes]) -> HTTPError:
        return HTTPError(
            503,
            f"model {self.name}: its worker process {process.pid} died ({_exit(process)}) "
            "while running this request; retry",
            headers=dict(RETRY_AFTER),
        )


def _batch_frame(batch: list[Item]) -> tuple[tuple[Any, ...], list[protocol.Buffer]]:
    buffers: list[protocol.Buffer] = []
    counts = []
    for item in batch:
        counts.append(len(item.payload))
        buffers.extend(item.payload)
    return ("batch", counts), buffers


def _outcomes(entries: list[Any], buffers: list[protocol.Buffer]) -> list[Any]:
    """Per item: its output's buffers, or an ``HTTPError``."""
    outcomes: list[Any] = []
    start = 0
    for entry in entries:
        if isinstance(entry, int):
            outcomes.append(buffers[start : start + entry])
            start += entry
        else:
            outcomes.append(protocol.to_error(entry))
    return outcomes


def _exited(process: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _exit(process: subprocess.Popen[bytes]) -> str:
    code = process.returncode
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
