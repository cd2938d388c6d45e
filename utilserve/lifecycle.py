"""Start and stop a service in a process whose server sends it no lifecycle events.

WSGI has no startup or shutdown event, and some servers keep even ASGI's
lifespan to themselves. The handler falls back to starting at the first
request and stopping at interpreter exit; this module closes the two gaps
that leaves:

- **Start with the worker.** gunicorn and uWSGI fork workers from a master;
  a worker that started its service at its first request would answer its
  first burst late (at boot, or recycled by ``--max-requests``).
  :func:`when_worker_starts` runs the start in a background thread of each
  worker instead, with no configuration from the user: now, in a worker
  already (gunicorn without ``--preload``, uWSGI with ``lazy-apps``); else
  in each worker once it is set up (gunicorn: as it loads the app, after
  dropping privileges and setting its signals; uWSGI: right after the
  fork), never in the master, whose threads would not survive the fork.
- **Stop at exit, however the process exits.** :func:`stop_at_exit` runs
  the stop at interpreter exit, or, in a multiprocessing child (granian's
  workers), as that child ends: it leaves by ``os._exit``, which skips
  ``atexit``.
- **Stop at a signal nobody handles.** A server that leaves SIGTERM at its
  default (waitress) lets the process die with no exit handlers at all.
  :func:`stop_at_signal` runs the stop first and then lets the signal do
  what it would have done. The stop runs on a thread of its own and the
  main thread goes on, since it may be sending the last answers, or
  running a stop already under way, which the stop waits for. A server
  that handles the signal itself is left alone: it exits normally and the
  exit handlers run the stop.
- **Finish a stop that the master cuts short.** Hypercorn's master, once it
  has told its workers to stop, terminates the others as soon as one has
  stopped, and again as it exits, while they still drain their requests.
  :func:`finish_when_terminated` lets such a worker finish: its drain, its
  lifespan shutdown, the hooks. The master waits for it.
- **Stop a worker told to stop while it loads the app.** Granian forks
  its workers with its master's signal handler, which only sets a flag in
  the master's objects, and sets a worker's own handlers once the worker
  has loaded the app. A SIGTERM in between would be lost: the worker would
  serve on and the master wait for it forever.
  :func:`exit_at_signal_while_loading`, called as the app is built, ends
  such a worker at that signal instead.
- **Hold a SIGTERM until the server handles it.** Sanic's worker runs the
  startup hooks, then opens its socket, and only then sets its own signal
  handlers: a SIGTERM in between (systemd signals every process of a
  service) would end it at the default action, with no shutdown hooks.
  :class:`HeldTerminate` keeps such a signal and sends it again once the
  server handles it, which then stops as at any other moment.

Anywhere else (a script, a test, a single-process server) both do nothing.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from .concurrency import start_for_user_code

logger = logging.getLogger("utilserve")

STOP_WAIT_S = 60.0
"""How long a stop waits for one already under way elsewhere (hooks, the pool's running batches)."""


def when_worker_starts(start: Callable[[], None]) -> None:
    """Run ``start`` in the background in every worker of the pre-fork server this process belongs to."""
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is not None and hasattr(uwsgi, "worker_id"):
        if uwsgi.worker_id() > 0:
            _in_background(start)
        else:
            _after_uwsgi_forks(uwsgi, start)
    elif "gunicorn.arbiter" in sys.modules:
        if in_gunicorn_worker():
            _in_background(start)
        else:
            _as_gunicorn_workers_load(start)


def stop_at_exit(stop: Callable[[], None]) -> Callable[[], None]:
    """Run ``stop`` as this process exits; returns what takes that back."""
    if multiprocessing.parent_process() is not None:
        return multiprocessing.util.Finalize(None, stop, exitpriority=0).cancel
    atexit.register(stop)
    return lambda: atexit.unregister(stop)


def stop_at_signal(stop: Callable[[], None]) -> None:
    """Run ``stop`` before a signal that nobody handles ends this process; a no-op off the main thread.

    uWSGI is left out: it handles signals in C, where Python cannot see them.
    """
    if threading.current_thread() is not threading.main_thread() or "uwsgi" in sys.modules:
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop_then_default(stop))


def finish_when_terminated() -> None:
    """In a Hypercorn worker (``-w N``): a SIGTERM from its master does not cut short the stop it began.

    The master signals only after it has set its workers' shutdown event,
    which each worker acts on by itself. A Python handler, not SIG_IGN:
    that would pass on to every process the worker starts.
    """
    if threading.current_thread() is not threading.main_thread() or multiprocessing.parent_process() is None:
        return
    in_hypercorn = "hypercorn.asyncio.run" in sys.modules or "hypercorn.trio.run" in sys.modules
    if in_hypercorn and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _finish_first)


def exit_at_signal_while_loading() -> None:
    """In a granian worker that is still loading the app: a SIGTERM or SIGINT ends it at once.

    Such a worker has started nothing and served nothing, so it has nothing
    to finish. ``SystemExit``, so its exit handlers still run. The handler
    it inherited is its master's, whose flag (in the worker's copy of the
    master) tells of a signal that came before this call.
    """
    if threading.current_thread() is not threading.main_thread() or multiprocessing.parent_process() is None:
        return
    master = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    if not type(master).__module__.startswith("granian."):
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_while_loading)
    if getattr(master, "interrupt_signal", False):
        _exit_while_loading(signal.SIGTERM, None)


class HeldTerminate:
    """Made as a server starts, holds a SIGTERM that would end this process at its default action;
    :meth:`release` sends it again once the server handles signals.

    A no-op off the main thread, or where SIGTERM is handled already.
    """

    def __init__(self) -> None:
        self.held = False
        self._active = threading.current_thread() is threading.main_thread() and (
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        )
        if self._active:
            signal.signal(signal.SIGTERM, self._hold)

    def release(self) -> None:
        """Let go, and send a held SIGTERM again: to the server's handler by now, or to the default action."""
        if not self._active:
            return
        self._active = False
        if signal.getsignal(signal.SIGTERM) == self._hold:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if self.held:
            logger.info("a SIGTERM came before the server handled signals: it is sent again now")
            os.kill(os.getpid(), signal.SIGTERM)

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        self.held = True


def _exit_while_loading(signum: int, frame: FrameType | None) -> None:
    logger.info("stopped by %s while loading the app: exiting before serving", signal.Signals(signum).name)
    raise SystemExit(0)


def _finish_first(signum: int, frame: FrameType | None) -> None:
    logger.info("the server's master terminates this worker while it stops: it finishes its stop first")


def _stop_then_default(stop: Callable[[], None]) -> Callable[[int, FrameType | None], None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
        threading.Thread(target=_stop_then_raise, args=(stop, signum), name="utilserve-stop").start()

    return handle


def _stop_then_raise(stop: Callable[[], None], signum: int) -> None:
    """The stop, for ``STOP_WAIT_S`` at most (a hook that hangs does not keep the process alive), then the signal."""
    stopping = threading.Thread(target=_logged(stop, "stopping the service at SIGTERM"), daemon=True)
    stopping.start()
    stopping.join(STOP_WAIT_S)
    os.kill(os.getpid(), signum)


def in_gunicorn_worker() -> bool:
    """A gunicorn worker handles SIGUSR1 itself before it loads the app (every worker class, uvicorn's
    included, which hands SIGTERM back to the default); its master does so only later."""
    if "gunicorn.arbiter" not in sys.modules:
        return False
    from gunicorn.workers.base import Worker

    return isinstance(getattr(signal.getsignal(signal.SIGUSR1), "__self__", None), Worker)


def _as_gunicorn_workers_load(start: Callable[[], None]) -> None:
    """In the master (``--preload``): each worker loads the app (a no-op, it is loaded) once it is set up.

    A fork is too early: the worker has not dropped privileges, set its
    signals or patched for gevent yet, and the fork of a re-exec (USR2)
    becomes another program at once.
    """
    from gunicorn.workers.base import Worker

    load_wsgi = Worker.load_wsgi

    def load_and_start(worker: Worker) -> None:
        load_wsgi(worker)
        _in_background(start)

    Worker.load_wsgi = load_and_start


def _after_uwsgi_forks(uwsgi: Any, start: Callable[[], None]) -> None:
    """uWSGI calls ``uwsgi.post_fork_hook`` in each forked process; keep any hook already there."""
    previous = getattr(uwsgi, "post_fork_hook", None)

    def post_fork() -> None:
        if previous is not None:
            previous()
        if uwsgi.worker_id() > 0:
            _in_background(start)

    uwsgi.post_fork_hook = post_fork


def _in_background(start: Callable[[], None]) -> None:
    run = _logged(start, "starting the service as the worker started (its first request tries again)")
    start_for_user_code(threading.Thread(target=run, name="utilserve-start", daemon=True))


def _logged(action: Callable[[], None], what: str) -> Callable[[], None]:
    def run() -> None:
        try:
            action()
        except Exception:
            logger.exception("%s failed", what)

    return run
