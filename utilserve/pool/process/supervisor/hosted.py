"""One model inside the supervisor: a keeper thread per model worker process, and the model's status.

Each worker slot has a listening socket (0600, beside the supervisor's)
that its keeper creates once and hands to every worker process it starts
for the slot, so web processes reconnect to the same path after a restart.
When a worker dies, the keeper starts a new one after an exponential
backoff; a ``setup()`` that fails before the slot ever came up fails the
model for good.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from time import monotonic

from ....concurrency import start_without_signals
from ....telemetry.metrics import record
from .. import messages
from ..messages import ModelStatus, SetupFailure
from ..sockets import FrameReader, listen, send
from ..spec import ModelSpec, import_path_arg, python_executable

logger = logging.getLogger("utilserve.pool")

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 10.0


class HostedModel:
    """The worker processes and status of one model; ``changed`` is called on every status change.

    ``endpoint()`` gives each worker slot the path of its listening socket.
    """

    def __init__(self, spec: ModelSpec, changed: Callable[[HostedModel], None], endpoint: Callable[[], str]) -> None:
        self.spec = spec
        self._changed = changed
        self._lock = threading.Lock()
        self._keepers = [_Keeper(self, index, endpoint()) for index in range(spec.workers)]
        self._ever_up: set[int] = set()
        self._up: dict[int, tuple[int, str]] = {}
        self._error: SetupFailure | None = None
        self._stopped = False

    def start(self) -> None:
        for keeper in self._keepers:
            keeper.start()

    @property
    def status(self) -> ModelStatus:
        with self._lock:
            workers = tuple(self._up[index] for index in sorted(self._up))
            return ModelStatus(self._phase(), self._error, workers, os.getpid())

    def stop(self, timeout: float) -> None:
        """Have every worker answer its queue 503, finish its running batch and exit; kill it after ``timeout``."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._changed(self)
        end = monotonic() + timeout
        for keeper in self._keepers:
            keeper.halt()
        for keeper in self._keepers:
            keeper.finish(max(0.0, end - monotonic()))

    def _phase(self) -> str:
        if self._stopped:
            return "stopped"
        if self._error is not None:
            return "failed"
        if len(self._ever_up) < len(self._keepers):
            return "loading"
        return "ready" if self._up else "restarting"

    def _worker_up(self, index: int, pid: int, path: str) -> None:
        with self._lock:
            self._ever_up.add(index)
            self._up[index] = (pid, path)
        self._changed(self)

    def _worker_down(self, index: int) -> None:
        with self._lock:
            self._up.pop(index, None)
        self._changed(self)

    def _setup_failed(self, error: SetupFailure) -> None:
        with self._lock:
            self._error = self._error or error
        self._changed(self)


class _Keeper:
    """A thread that keeps one worker process alive on one listening socket."""

    def __init__(self, model: HostedModel, index: int, path: str) -> None:
        self.model = model
        self.index = index
        self.path = path
        self.name = model.spec.name
        self._halted = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._was_up = False
        self._thread = threading.Thread(target=self._run, name=f"utilserve-keep-{self.name}-{index}", daemon=True)

    def start(self) -> None:
        start_without_signals(self._thread)

    def halt(self) -> None:
        """Tell the running worker to drain and exit, and start no other."""
        with self._send_lock:
            self._halted.set()
            if self._control is not None:
                try:
                    send(self._control, (messages.STOP,))
                except OSError:
                    pass

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
        _unlink(self.path)  # this supervisor owns the name; an old worker may still hold its socket
        try:
            listener = listen(self.path)
        except OSError as exc:
            logger.error("model %s: cannot listen at %s: %s", self.name, self.path, exc)
            self.model._setup_failed((type(exc).__name__, str(exc), None))
            return
        try:
            self._keep(listener)
        finally:
            listener.close()
            _unlink(self.path)

    def _keep(self, listener: socket.socket) -> None:
        delay = BACKOFF_FIRST_S
        while not self._halted.is_set():
            try:
                process, control = self._spawn(listener)
            except OSError as exc:
                logger.error("model %s: could not start a worker process: %s", self.name, exc)
                delay = min(delay * 2, BACKOFF_MAX_S)
                self._halted.wait(delay)
                continue
            try:
                served = self._load_and_watch(process, control)
            finally:
                with self._send_lock:
                    self._control = None
                control.close()
                if not _exited(process, 5.0):
                    process.kill()
                    process.wait()
                self.model._worker_down(self.index)
            if served is None:
                return
            delay = BACKOFF_FIRST_S if served else min(delay * 2, BACKOFF_MAX_S)
            logger.warning("model %s: worker exited (%s); restarting in %.1f s", self.name, _exit(process), delay)
            record(lambda m: m.worker_restarts.labels(self.name).inc())
            self._halted.wait(delay)

    def _spawn(self, listener: socket.socket) -> tuple[subprocess.Popen[bytes], socket.socket]:
        """A fresh interpreter (never a fork, so CUDA and native thread pools start clean) holding its sockets."""
        ours, theirs = socket.socketpair()
        fds = (theirs.fileno(), listener.fileno())
        argv = [
            python_executable(), "-m", "utilserve.pool.process.worker",
            "--control", str(fds[0]), "--listen", str(fds[1]), "--spec", json.dumps(self.model.spec.to_dict()),
            "--parent", str(os.getpid()), "--sys-path", import_path_arg(),
        ]  # fmt: skip
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, pass_fds=fds)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._process = process
        with self._send_lock:
            self._control = ours
            if self._halted.is_set():
                send(ours, (messages.STOP,))
        return process, ours

    def _load_and_watch(self, process: subprocess.Popen[bytes], control: socket.socket) -> bool | None:
        """``None``: stop for good; ``True``/``False``: the worker died after/before it came up.

        A ``setup()`` that raises before this worker slot ever came up fails
        the model for good, like the thread pool; after a crash it is retried.
        """
        reader = FrameReader(control)
        try:
            head, _ = reader.read()
        except (EOFError, OSError):
            return None if self._halted.is_set() else False
        if head[0] == messages.FAILED:
            if not self._was_up:
                self.model._setup_failed((head[1], head[2], head[3]))
                return None
            logger.error("model %s: setup failed on restart: %s: %s", self.name, head[1], head[2])
            return False
        self._was_up = True
        self.model._worker_up(self.index, head[1], self.path)
        try:
            reader.read()
        except (EOFError, OSError):
            pass
        if self._halted.is_set():
            _exited(process, None)
            return None
        return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _exited(process: subprocess.Popen[bytes], timeout: float | None) -> bool:
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
