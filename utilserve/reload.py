"""Development reload: a parent process that watches Python files and restarts the server in a child.

One mechanism for every backend: the child is a plain ``utilserve run``, so
each development server runs exactly as it does without ``--reload``, and a
restart is a fresh interpreter that imports the edited code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

STOP_S = 10.0
"""How long a child has to stop after a signal before it is killed."""


def serve(argv: Sequence[str], paths: Sequence[Path]) -> None:
    """Run ``argv`` and restart it whenever a Python file under ``paths`` changes; return at SIGINT/SIGTERM.

    The child gets a process group of its own, so that a terminal's Ctrl-C
    reaches only this process, which passes the signal on once.
    """
    try:
        from watchfiles import PythonFilter, watch
    except ImportError:
        raise SystemExit("utilserve run --reload needs watchfiles: pip install 'utilserve[reload]'") from None
    received: list[int] = []
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    child = subprocess.Popen(argv, process_group=0)
    try:
        for changes in watch(*paths, watch_filter=PythonFilter(), stop_event=stopping, raise_interrupt=False):
            changed = ", ".join(sorted({path for _, path in changes}))
            print(f"utilserve: {changed} changed; restarting", file=sys.stderr, flush=True)
            _stop(child, signal.SIGTERM)
            child = subprocess.Popen(argv, process_group=0)
    finally:
        _stop(child, received[0] if received else signal.SIGTERM)


def _stop(child: subprocess.Popen[bytes], signum: int) -> None:
    """Signal ``child`` and wait for it to exit; kill it if it has not within STOP_S."""
    if child.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)  # its group: the processes a server forks stop with it
    try:
        child.wait(STOP_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
