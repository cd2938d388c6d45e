"""A model worker process from start to end: load the model, report to the supervisor, serve, tear down.

On Linux the worker asks to be killed when the supervisor thread that
started it goes away, so a supervisor killed with SIGKILL leaves no model
(and no GPU memory) behind, even mid-batch. It ignores SIGINT and SIGTERM,
which a signal to the server's whole process group sends it too: its
supervisor stops it once the running batch is done.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
from typing import Any

from ....collector import settle
from ....telemetry.tally import tally
from .. import messages
from ..messages import error_info
from ..signals import unblock_signals
from ..sockets import send
from ..spec import ModelSpec, import_target
from ..spin import spin_budget
from .server import Server
from .streams import StreamingServer

logger = logging.getLogger("utilserve.pool")

PR_SET_PDEATHSIG = 1


def serve(control: socket.socket, listener: socket.socket, spec: ModelSpec, parent: int) -> None:
    """Load the model, say so to the supervisor, serve until told to stop, tear the model down."""
    _die_with(parent)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _left_to_the_supervisor)
    unblock_signals()
    logging.basicConfig(level=logging.INFO, format=f"[utilserve worker {spec.name} %(process)d] %(message)s")
    try:
        spin_s = spin_budget()
        model = import_target(spec.target)()
        model.setup()
        settle()
    except Exception as exc:
        logger.error("model %s: setup failed", spec.name, exc_info=exc)
        send(control, (messages.FAILED, *error_info(exc)))
        return
    send(control, (messages.READY, os.getpid()))
    try:
        server = StreamingServer if model.streams() else Server
        server(spec, model, control, listener, spin_s).serve()
    finally:
        try:
            model.teardown()
        except Exception:
            logger.exception("model %s: teardown failed", spec.name)
        tally.write()  # the last batches' counts


def _left_to_the_supervisor(signum: int, frame: Any) -> None:
    """Ignore the signal; a handler, not ``SIG_IGN``, which the processes the model starts would inherit."""


def _die_with(parent: int) -> None:
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
