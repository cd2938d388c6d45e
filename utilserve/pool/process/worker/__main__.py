"""``python -m utilserve.pool.process.worker``: a model worker process, as its supervisor starts it.

A fresh interpreter, never a fork, so CUDA and native thread pools start
clean. It inherits two sockets: ``--control``, a socketpair end to the
supervisor (``READY``/``FAILED`` after ``setup()``; ``STOP`` or end of file
makes it drain and exit), and ``--listen``, the listening socket (0600)
that the supervisor keeps across restarts and web processes connect to.

On Linux the worker asks to be killed when the supervisor thread that
started it goes away, so a supervisor killed with SIGKILL leaves no model
(and no GPU memory) behind, even mid-batch.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from .. import messages
from ..messages import error_info
from ..sockets import send
from ..spec import ModelSpec, adopt_import_path, import_target
from ..spin import spin_budget
from .server import Server

logger = logging.getLogger("utilserve.pool")

PR_SET_PDEATHSIG = 1


def serve(control: socket.socket, listener: socket.socket, spec: ModelSpec, parent: int) -> None:
    """Load the model, say so to the supervisor, serve until told to stop, tear the model down."""
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format=f"[utilserve worker {spec.name} %(process)d] %(message)s")
    try:
        spin_s = spin_budget()
        model = import_target(spec.target)()
        model.setup()
    except Exception as exc:
        logger.error("model %s: setup failed", spec.name, exc_info=exc)
        send(control, (messages.FAILED, *error_info(exc)))
        return
    send(control, (messages.READY, os.getpid()))
    try:
        Server(spec, model, control, listener, spin_s).serve()
    finally:
        try:
            model.teardown()
        except Exception:
            logger.exception("model %s: teardown failed", spec.name)


def _die_with(parent: int) -> None:
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m utilserve.pool.process.worker")
    parser.add_argument("--control", type=int, required=True, help="the inherited socketpair end")
    parser.add_argument("--listen", type=int, required=True, help="the inherited listening socket")
    parser.add_argument("--spec", required=True, help="the model's ModelSpec as JSON")
    parser.add_argument("--parent", type=int, required=True, help="the supervisor's pid")
    parser.add_argument("--sys-path", default="[]", help="JSON list of the supervisor's import paths")
    args = parser.parse_args(argv)
    adopt_import_path(args.sys_path)
    spec = ModelSpec(**json.loads(args.spec))
    serve(socket.socket(fileno=args.control), socket.socket(fileno=args.listen), spec, args.parent)


main()
