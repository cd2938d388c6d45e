"""The process whose lifetime bounds a server's shared state, and the private directory that state lives in.

A pre-fork server runs a service in many processes that must meet: at one
process pool, in one metrics directory. They meet at a directory named
after the *owner*: the server's master under gunicorn and uWSGI, the parent
under servers that spawn workers (uvicorn ``--workers``, granian,
hypercorn), else the process itself. Every worker of one server derives the
same name; directories of owners that are gone are swept away.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import stat
import sys
import tempfile

from .lifecycle import in_gunicorn_worker

OWNER_ENV = "UTILSERVE_POOL_OWNER"


def owner_pid() -> int:
    """The process whose exit ends what this server's processes share; ``UTILSERVE_POOL_OWNER`` overrides."""
    explicit = os.environ.get(OWNER_ENV, "").strip()
    if explicit:
        if not explicit.isdigit() or int(explicit) <= 0:
            raise ValueError(f"{OWNER_ENV} must be a process id (a positive int), got {explicit!r}")
        return int(explicit)
    master = _uwsgi_master()
    if master:
        return master
    if in_gunicorn_worker():
        return os.getppid()
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid and "gunicorn.arbiter" not in sys.modules:
        return parent.pid
    return os.getpid()


def owned_directory(kind: str, name: str) -> str:
    """``<private root>/<kind>-<name>-<owner pid>``, created 0700; directories of dead owners are swept first."""
    root = private_root()
    _sweep(root)
    directory = os.path.join(root, f"{kind}-{_slug(name)}-{owner_pid()}")
    make_private(directory)
    return directory


def private_root() -> str:
    """``$XDG_RUNTIME_DIR`` (else the temp dir) ``/utilserve-<uid>``, created 0700 and checked."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    root = os.path.join(base, f"utilserve-{os.getuid()}")
    make_private(root)
    return root


def make_private(directory: str) -> None:
    """Create ``directory`` 0700 if needed; refuse one that another user could reach into."""
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"the directory {directory} must be a directory owned by uid {os.getuid()} "
            f"with mode 0700; found {'a directory' if stat.S_ISDIR(info.st_mode) else 'not a directory'} "
            f"owned by uid {info.st_uid} with mode {stat.S_IMODE(info.st_mode):04o}"
        )


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(root: str) -> None:
    """Remove directories of owners that are gone: an owner killed outright cannot clean up after itself."""
    for entry in os.listdir(root):
        owner = entry.rpartition("-")[2]
        if owner.isdigit() and not alive(int(owner)):
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)


def _uwsgi_master() -> int:
    if "uwsgi" not in sys.builtin_module_names and "uwsgi" not in sys.modules:
        return 0
    try:
        import uwsgi  # type: ignore[import-not-found,import-untyped,unused-ignore]  # exists in uWSGI processes only
    except ImportError:
        return 0
    return int(uwsgi.masterpid() or 0)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:40] or "service"
