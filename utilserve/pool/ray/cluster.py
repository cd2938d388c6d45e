"""This process's connection to a Ray cluster, shared by every ``RayPool`` in it.

Ray's client state does not survive ``fork``, and gunicorn and uWSGI fork
their workers: nothing here touches Ray until a pool starts in the process
that serves, and a forked child forgets whatever its parent held. The
connection is made lazily by the first pool of the process and dropped
when its last pool stops.
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray._private import ray_constants
from ray.serve.context import _get_global_client
from ray.serve.schema import ApplicationStatus, DeploymentStatus, ReplicaState

ADDRESS_ENV = "UTILSERVE_RAY_ADDRESS"
"""``host:port`` of the cluster's head (``ray start --head``); unset: Ray's own default."""

logger = logging.getLogger("utilserve.pool")


@dataclass(frozen=True)
class DeploymentState:
    """What a pool needs of one deployment's state: Serve's status, its message, and how many replicas run."""

    status: DeploymentStatus
    message: str
    running: int


@dataclass(frozen=True)
class ApplicationState:
    """One Serve application's status and its deployments by name."""

    status: ApplicationStatus
    deployments: dict[str, DeploymentState]


def applications(details: Mapping[str, Any]) -> dict[str, ApplicationState]:
    """The applications of Serve's instance details (the dict behind ``serve.status()``, as Ray's REST API
    gives it), read as plain data.

    ``serve.status()`` parses the same dict into pydantic models first,
    pickling each deployment's request router on the way: an order of
    magnitude more CPU, on the GIL, in a process that serves requests.
    """
    return {
        name: ApplicationState(
            ApplicationStatus(app["status"]),
            {
                deployment_name: DeploymentState(
                    DeploymentStatus(deployment["status"]),
                    deployment.get("message") or "",
                    sum(replica["state"] == ReplicaState.RUNNING for replica in deployment.get("replicas", ())),
                )
                for deployment_name, deployment in app.get("deployments", {}).items()
            },
        )
        for name, app in details.get("applications", {}).items()
    }


class Cluster:
    """A live Ray connection, one event loop thread that awaits Ray's responses, one view of Serve's status.

    ``control`` serialises this process's calls into Ray Serve's control
    API: building deployments and reading the status both go through
    process-wide pickling state that Ray Serve does not guard. ``close``
    is registered with ``atexit`` after ``ray.init``, so it runs before
    Ray's own exit hook: a Ray call made after Ray shut down would quietly
    start a new local Ray.
    """

    def __init__(self, address: str | None, disconnect: bool) -> None:
        self.address = address
        self._disconnect = disconnect
        self.users = 0
        self.closed = False
        self.control = threading.RLock()
        self._applications: dict[str, ApplicationState] | None = None
        self._read_at = 0.0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="utilserve-ray-loop", daemon=True)
        self._thread.start()

    def applications(self, max_age: float = 0.2) -> dict[str, ApplicationState]:
        """Serve's applications by name, read at most every ``max_age`` seconds for all the pools of the process."""
        with self.control:
            self.check_open()
            if self._applications is None or time.monotonic() - self._read_at >= max_age:
                client = _get_global_client(raise_if_no_controller_running=False)
                self._applications = {} if client is None else applications(client.get_serve_details())
                self._read_at = time.monotonic()
            return self._applications

    def check_open(self) -> None:
        """Raise once closed; call with ``control`` held, before any Ray Serve call."""
        if self.closed:
            raise RuntimeError("this process's connection to Ray is closed")

    def close(self) -> None:
        with self.control:
            if self.closed:
                return
            self.closed = True
        atexit.unregister(self.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()
        if self._disconnect and ray.is_initialized():
            ray.shutdown()


_guard = threading.Lock()
_current: Cluster | None = None
_inherited = False


def acquire() -> Cluster:
    """Connect this process to Ray (once) and count one more pool using the connection."""
    global _current
    with _guard:
        if _inherited:
            raise RuntimeError(
                "Ray was connected in a parent process before it forked this one; start models in the "
                "serving process (the Service does, per worker), never in a server's master before fork"
            )
        if _current is None or _current.closed:
            _current = _connect()
        _current.users += 1
        return _current


def release(cluster: Cluster) -> None:
    """One pool less; the last one closes the loop and disconnects what :func:`acquire` connected."""
    global _current
    with _guard:
        cluster.users -= 1
        if cluster.users > 0 or _current is not cluster:
            return
        _current = None
    cluster.close()


def lock_path(*key: str) -> Path:
    digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"utilserve-ray-{digest}.lock"


@contextmanager
def host_lock(*key: str) -> Iterator[None]:
    """Serialise a step across the processes of this host (a server's workers all start at once)."""
    with open(lock_path(*key), "a+b") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _connect() -> Cluster:
    """``ray.init`` at ``UTILSERVE_RAY_ADDRESS``, else at Ray's default address.

    Ray's default is the cluster that ``ray start`` joined on this host,
    else a new local one owned by this process (for development), started
    without the dashboard: its processes would take CPU from the server
    and the model on the same host (``ray start --head`` gives one).

    A connection the application made itself is used as it is and left open.
    """
    address = os.environ.get(ADDRESS_ENV) or None
    connected_here = not ray.is_initialized()
    if connected_here:
        # Ray's crash handler would take SIGTERM from the web server and abort the process; the server's own
        # handler must keep it, to drain requests and run the shutdown hooks.
        ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        logger.info("connected to Ray at %s", address or "its default address")
    cluster = Cluster(address, disconnect=connected_here)
    atexit.register(cluster.close)
    return cluster


def _forget_after_fork() -> None:
    global _current, _guard, _inherited
    _guard = threading.Lock()
    if _current is not None:
        _inherited = True
        _current = None


os.register_at_fork(after_in_child=_forget_after_fork)
