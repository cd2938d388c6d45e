"""Coroutines and threads that leave a server's signal handling alone.

``asyncio.run`` and ``asyncio.Runner`` install and then "restore" a Python
SIGINT handler in the main thread, which silently replaces the C-level
handler that servers such as uWSGI install in their workers (their workers
then never exit on shutdown).  A plain per-thread loop does not.

The kernel hands a signal sent to a process to one of its threads that does
not block it: the main thread, unless that one already has a signal
pending. A SIGTERM to a uWSGI server's process group gives each worker two
at once (the SIGTERM, then its master's SIGINT), and uWSGI's C handler runs
the interpreter's exit on whichever thread took the signal; on any thread
but the main one that exit waits for the main thread to end, which never
happens, so the master kills the worker only after its mercy (60 s).
utilserve's threads therefore block the signals a server sends, as uWSGI's
own threads do; Python runs its handlers on the main thread in any case.
A new process starts with the mask of the thread that started it, so a
thread that runs the user's code (a model, a startup hook) blocks only the
signals that stop a uWSGI worker, and only under uWSGI.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

_local = threading.local()

FAULTS = frozenset(
    {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS}
)
"""What a thread raises on itself: blocked, a fault would kill the process before ``faulthandler`` could speak."""
STOPS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM})
"""What a server sends to stop or reload a worker."""


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on this thread's own event loop (made once per thread)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coroutine)


def start_without_signals(thread: threading.Thread, signals: Iterable[int] | None = None) -> None:
    """Start ``thread`` blocking ``signals`` (every signal but faults by default), so that they go to the main thread.

    The mask is set around ``start`` (the thread inherits it), not in the
    thread, which a signal could reach before it blocked it; one arriving
    meanwhile waits for the caller to unblock it.
    """
    blocked = signal.valid_signals() - FAULTS if signals is None else signals
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_for_user_code(thread: threading.Thread) -> None:
    """Start ``thread``, which runs the user's code: under uWSGI it blocks :data:`STOPS`, elsewhere nothing.

    Only uWSGI exits on the thread that took the signal; the processes the
    user's code starts keep every other signal.
    """
    if "uwsgi" in sys.modules:
        start_without_signals(thread, STOPS)
    else:
        thread.start()


def _cached_pid() -> int:
    return _pid


def _forked() -> None:
    global _pid
    _pid = os.getpid()


_pid = os.getpid()
os.register_at_fork(after_in_child=_forked)

current_pid: Callable[[], int] = os.getpid if "uwsgi" in sys.modules else _cached_pid
"""``os.getpid()`` without a system call each time, where every fork runs Python's fork hooks.

uWSGI forks its workers in C, past those hooks, so there it asks the system
each time. Hot paths (each request's metrics, the access log) use it: a
system call costs more than the rest of such work on some machines.
"""

_seen_loop: tuple[int, int, asyncio.AbstractEventLoop] | None = None


def running_loop() -> asyncio.AbstractEventLoop:
    """``asyncio.get_running_loop()``, which asks for the pid each time, without asking when this thread's loop
    is the one seen last: a thread runs one loop at a time, so a running one seen on it is the one."""
    global _seen_loop
    thread, pid, seen = _seen_loop or (0, 0, None)
    if seen is not None and thread == threading.get_ident() and pid == current_pid() and seen.is_running():
        return seen
    loop = asyncio.get_running_loop()
    _seen_loop = (threading.get_ident(), current_pid(), loop)
    return loop
