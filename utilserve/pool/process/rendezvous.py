"""Where a process pool's supervisor listens, and who may start it.

Two ways to meet:

- *Sidecar*: ``UTILSERVE_POOL_SOCKET`` (or ``Service(pool_socket=...)``)
  names the socket of a supervisor started with ``utilserve pool``. Web
  processes connect there and never start one themselves.
- *Automatic*: the socket lives in the server's private directory for the
  pool group (the service), named after its owner (see ``utilserve.owner``),
  whose lifetime bounds the pool. Every web worker of one server derives
  the same directory, so they all meet one supervisor; the lock file next
  to the socket lets exactly one of them start it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ...owner import owned_directory, owner_pid

SOCKET_ENV = "UTILSERVE_POOL_SOCKET"
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
    directory = owned_directory("pool", group)
    path = os.path.join(directory, "pool.sock")
    if len(path.encode()) + WORKER_SUFFIX_MAX > UNIX_PATH_MAX:
        raise OSError(
            f"the pool socket path {path!r} is longer than the {UNIX_PATH_MAX} bytes a Unix socket allows; "
            f"set XDG_RUNTIME_DIR or TMPDIR to a shorter directory, or {SOCKET_ENV}"
        )
    return Address(path, os.path.join(directory, "lock"), owner_pid())


def make_private_parent(path: str) -> None:
    """Create a sidecar socket's directory 0700 when it does not exist yet."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
