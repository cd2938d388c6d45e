"""Starting a pool supervisor: exactly one per socket, in a process of its own.

The supervisor is a fresh interpreter (``python -m
utilserve.pool.process.supervisor``), not a fork: it must outlive the web worker
that happens to start it (gunicorn recycles workers) and start its model
workers cleanly. Whoever takes the lock file first starts it; the others
wait on the lock and then connect to it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import subprocess
import time

from ....owner import make_private
from ....telemetry import metrics
from ..sockets import connect
from ..spec import import_path_arg, python_executable

logger = logging.getLogger("utilserve.pool")

SPAWN_WAIT_S = 60.0


class PoolUnavailable(Exception):
    """No supervisor could be reached (the message says why)."""


def start_or_join(path: str, lock_path: str, owner: int) -> tuple[socket.socket, subprocess.Popen[bytes] | None]:
    """A connection to the supervisor at ``path``, and its process when this call started it."""
    make_private(os.path.dirname(lock_path))
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return connect(path), None
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        process = _spawn(path, owner)
        return _await(path, process), process


def _spawn(path: str, owner: int) -> subprocess.Popen[bytes]:
    """A separate interpreter, not a fork: it must outlive this worker and start models cleanly.

    It inherits the environment, the metrics directory this server's processes share included (chosen here
    if nobody did yet), and hands it on to its model workers: their counts show in the server's ``/metrics``.
    """
    metrics.prepare()
    argv = [
        python_executable(),
        "-m",
        "utilserve.pool.process.supervisor",
        "--socket",
        path,
        "--owner",
        str(owner),
        "--sys-path",
        import_path_arg(),
    ]
    logger.info("starting the pool supervisor for %s", path)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, close_fds=True)


def _await(path: str, process: subprocess.Popen[bytes]) -> socket.socket:
    end = time.monotonic() + SPAWN_WAIT_S
    while time.monotonic() < end:
        try:
            return connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            if process.poll() is not None:
                raise PoolUnavailable(
                    f"the pool supervisor exited with code {process.returncode} before listening at {path}; "
                    "its error is in the server's log"
                ) from None
            time.sleep(0.01)
    process.kill()
    raise PoolUnavailable(f"the pool supervisor did not listen at {path} within {SPAWN_WAIT_S:g} s")
