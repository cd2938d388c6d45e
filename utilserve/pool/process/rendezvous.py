"""Where a process pool's supervisor listens, and who may start it.

Two ways to meet:

- *Sidecar*: ``UTILSERVE_POOL_SOCKET`` (or ``Service(pool_socket=...)``)
  names the socket of a supervisor started with ``utilserve pool``. Web
  processes connect there and never start one themselves.
- *Automatic*: the socket lives in a private directory named after the pool
  group (the service) and the *owner*, the process whose lifetime bounds
  the pool: the server master under gunicorn and uWSGI, the parent under
  servers that spawn workers (uvicorn ``--workers``), else the process
  itself. Every web worker of one server derives the same directory, so
  they all meet one supervisor; the lock file next to the socket lets
  exactly one of them start it.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass

from .sockets import make_private

SOCKET_ENV = "UTILSERVE_POOL_SOCKET"
OWNER_ENV = "UTILSERVE_POOL_OWNER"
UNIX_PATH_MAX = 107
WORKER_SUFFIX_MAX = 4
"""Model workers listen beside the supervisor, at its path plus ``.N``."""


@dataclass(frozen=True)
class Address:
    """A supervisor's socket; ``owner`` and ``lock`` are set when web processes may start it."""

    socket: str
    lock: str | None = None
    owner: int | None = None

    @property
    def spawns(self) -> bool:
        return self.lock is not None

    def describe(self) -> str:
        if self.spawns:
            return f"the pool supervisor at {self.socket}"
        return f"the pool supervisor at {self.socket} ({SOCKET_ENV} / Service(pool_socket=...))"


def resolve(group: str, socket_setting: str | None) -> Address:
    """The address for a pool of ``group``: the configured sidecar socket, else the private one."""
    configured = os.environ.get(SOCKET_ENV) or socket_setting
    if configured:
        return Address(os.path.abspath(configured))
    owner = owner_pid()
    root = private_root()
    _sweep(root)
    directory = os.path.join(root, f"{_slug(group)}-{owner}")
    make_private(directory)
    path = os.path.join(directory, "pool.sock")
    if len(path.encode()) + WORKER_SUFFIX_MAX > UNIX_PATH_MAX:
        raise OSError(
            f"the pool socket path {path!r} is longer than the {UNIX_PATH_MAX} bytes a Unix socket allows; "
            f"set XDG_RUNTIME_DIR or TMPDIR to a shorter directory, or {SOCKET_ENV}"
        )
    return Address(path, os.path.join(directory, "lock"), owner)


def owner_pid() -> int:
    """The process whose exit ends the pool (see the module doc); ``UTILSERVE_POOL_OWNER`` overrides."""
    explicit = os.environ.get(OWNER_ENV, "").strip()
    if explicit:
        if not explicit.isdigit() or int(explicit) <= 0:
            raise ValueError(f"{OWNER_ENV} must be a process id (a positive int), got {explicit!r}")
        return int(explicit)
    master = _uwsgi_master()
    if master:
        return master
    if os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        return os.getppid()
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid:
        return parent.pid
    return os.getpid()


def private_root() -> str:
    """``$XDG_RUNTIME_DIR`` (else the temp dir) ``/utilserve-<uid>``, created 0700 and checked."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    root = os.path.join(base, f"utilserve-{os.getuid()}")
    make_private(root)
    return root


def make_private_parent(path: str) -> None:
    """Create a sidecar socket's directory 0700 when it does not exist yet."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)


def _sweep(root: str) -> None:
    """Remove directories of owners that are gone: a supervisor killed outright cannot clean up after itself."""
    for entry in os.listdir(root):
        owner = entry.rpartition("-")[2]
        if owner.isdigit() and not alive(int(owner)):
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _uwsgi_master() -> int:
    if "uwsgi" not in sys.builtin_module_names and "uwsgi" not in sys.modules:
        return 0
    try:
        import uwsgi  # type: ignore[import-not-found,import-untyped,unused-ignore]  # exists in uWSGI processes only
    except ImportError:
        return 0
    return int(uwsgi.masterpid() or 0)


def _slug(group: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", group).strip("-.")[:40] or "pool"
