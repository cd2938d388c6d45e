"""A model worker process: one ``Model`` instance serving batches sent by its supervisor.

Started by its supervisor as a fresh interpreter (``python -m
utilserve.pool.worker``), never forked, so CUDA and native thread pools
start clean. It talks over one socketpair end, inherited as ``--fd``:

- after ``setup()``: ``("ready", pid)`` or ``("failed", kind, message, pickled exception)``;
- then per ``("batch", counts)`` frame: ``("done", entries)``, one entry per
  item, a buffer count for an ``Output`` or an error tuple;
- ``("stop",)`` runs ``teardown()`` and exits; so does end of file.

On Linux the worker asks to be killed when the supervisor thread that
started it goes away, so a supervisor killed with SIGKILL leaves no model
(and no GPU memory) behind, even mid-batch.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import pickle
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from ..api.errors import HTTPError
from . import protocol
from .model import Model
from .outcome import Outcome, run_batch
from .spec import adopt_import_path, import_target

logger = logging.getLogger("utilserve.pool")

PR_SET_PDEATHSIG = 1


def main(sock: socket.socket, target: str, name: str, parent: int) -> None:
    """Entry point of the spawned process."""
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format=f"[utilserve worker {name} %(process)d] %(message)s")
    try:
        model = import_target(target)()
        model.setup()
    except Exception as exc:
        logger.error("model %s: setup failed", name, exc_info=exc)
        protocol.send(sock, ("failed", type(exc).__name__, str(exc), _pickled(exc)))
        return
    protocol.send(sock, ("ready", os.getpid()))
    try:
        _serve(sock, model, name)
    finally:
        try:
            model.teardown()
        except Exception:
            logger.exception("model %s: teardown failed", name)


def _serve(sock: socket.socket, model: Model, name: str) -> None:
    reader = protocol.FrameReader(sock, exact=True)
    while True:
        try:
            head, buffers = reader.read()
        except (EOFError, OSError):
            return
        if head[0] == "stop":
            return
        items, failed = _decode(name, head[1], buffers)
        outcomes = iter(run_batch(model, name, items) if items else [])
        entries: list[Any] = []
        out: list[protocol.Buffer] = []
        for error in failed:
            outcome: Outcome | HTTPError = error if error is not None else next(outcomes)
            _encode(name, outcome, entries, out)
        protocol.send(sock, ("done", entries), out)


def _decode(
    name: str, counts: list[int], buffers: list[protocol.Buffer]
) -> tuple[list[BaseModel], list[HTTPError | None]]:
    """The batch's items; an item that does not unpickle fails alone (``failed`` keeps the order)."""
    items: list[BaseModel] = []
    failed: list[HTTPError | None] = []
    start = 0
    for count in counts:
        try:
            items.append(protocol.unpack(buffers[start : start + count]))
            failed.append(None)
        except Exception as exc:  # noqa: BLE001 - one bad item must not fail its batch
            failed.append(HTTPError(500, f"model {name}: could not decode the input ({type(exc).__name__})"))
        start += count
    return items, failed


def _encode(name: str, outcome: Any, entries: list[Any], out: list[protocol.Buffer]) -> None:
    if isinstance(outcome, HTTPError):
        entries.append(protocol.error_tuple(outcome))
        return
    try:
        packed = protocol.pack(outcome)
    except Exception as exc:  # noqa: BLE001 - an unpicklable output fails its item only
        error = HTTPError(500, f"model {name}: could not send the output ({type(exc).__name__}: {exc})")
        entries.append(protocol.error_tuple(error))
        return
    entries.append(len(packed))
    out.extend(packed)


def _pickled(exc: BaseException) -> bytes | None:
    try:
        return pickle.dumps(exc, protocol=5)
    except Exception:  # noqa: BLE001 - the type name and message still go
        return None


def _die_with(parent: int) -> None:
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m utilserve.pool.worker", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the inherited socketpair end")
    parser.add_argument("--target", required=True, help="the Model class as module:qualname")
    parser.add_argument("--name", required=True, help="the model's name, for logs and errors")
    parser.add_argument("--parent", type=int, required=True, help="the supervisor's pid")
    parser.add_argument("--sys-path", default="[]", help="JSON list of the supervisor's import paths")
    args = parser.parse_args(argv)
    adopt_import_path(args.sys_path)
    main(socket.socket(fileno=args.fd), args.target, args.name, args.parent)


if __name__ == "__main__":
    cli()
