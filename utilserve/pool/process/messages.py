"""Every message of the process pool's wire, named once.

A message is a frame (see :mod:`.codec`) whose head is a tuple led by one of
these names. ``rid`` is a request id chosen by the sender and echoed in the
answer; ``[buffers]`` is a pickled payload sent beside the head.

Web process -> supervisor (the control connection):

- ``(LOAD, spec)``: host this model (idempotent); answered by a ``STATE``
  push, as is every later change of the model;
- ``(UNLOAD, rid, name)``: answered ``(RESULT, rid, None)`` once the model is unloaded;
- ``(EXIT, rid)``: the owner ends the supervisor, which then hangs up.

Supervisor -> web process: ``(STATE, name, ModelStatus)``, ``(RESULT, rid, None)``.

Web process -> model worker: ``(SUBMIT, rid, timeout_s, origin) [input]``,
answered ``(RESULT, rid, error) [output]`` (``error`` an
:data:`~.codec.HTTPErrorValues`, or ``None`` with the output's buffers);
``(CANCEL, rid)`` drops a queued item; ``(PING, rid)``. ``origin`` is the
request the item serves, as :data:`WireOrigin`.

Streaming models, on the same connection, request ids shared with the
above: ``(STREAM, rid, timeout_s, credit, origin) [input]`` queues an item, whose
worker then sends ``(CHUNK, rid) [output]`` per output and ``(ENDED, rid,
error)`` last (``error`` as for ``RESULT``, or ``None``). The worker sends
no more chunks than the web process granted: ``credit`` at first, then
``n`` more per ``(CREDIT, rid, n)``, which the web process sends as its
reader takes outputs. ``(CANCEL, rid)`` drops the item, queued or running,
and no ``ENDED`` answers it.

Supervisor <-> model worker (an inherited socketpair): the worker sends
``(READY, pid)`` or ``(FAILED, type name, message, pickled exception)``
after ``setup()``; the supervisor sends ``(STOP,)``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from functools import cached_property

from ...telemetry.context import Origin

LOAD = "load"
UNLOAD = "unload"
EXIT = "exit"
PING = "ping"
STATE = "state"
RESULT = "result"
SUBMIT = "submit"
CANCEL = "cancel"
STREAM = "stream"
CHUNK = "chunk"
ENDED = "ended"
CREDIT = "credit"
READY = "ready"
FAILED = "failed"
STOP = "stop"

Workers = tuple[tuple[int, str], ...]
"""``(pid, socket path)`` of each model worker that is up."""
SetupFailure = tuple[str, str, bytes | None]
"""Why setup failed: the exception's type name, its message, and the exception pickled (``None`` if it would not)."""

WireOrigin = tuple[str, dict[str, str]] | None
"""An item's ``Origin`` as plain values in a frame's head: its request id and trace context; ``None`` for none."""


def to_wire(origin: Origin | None) -> WireOrigin:
    return None if origin is None else (origin.request_id, origin.trace)


def from_wire(values: WireOrigin) -> Origin | None:
    return None if values is None else Origin(*values)


@dataclass(frozen=True)
class ModelStatus:
    """What the supervisor says about a model, pushed to its web processes on every change."""

    phase: str = "unknown"
    """``loading``, ``ready``, ``restarting`` (no worker up), ``failed`` (setup raised) or ``stopped``;
    ``unknown`` in a web process while it is not connected to the supervisor."""
    error: SetupFailure | None = None
    workers: Workers = ()
    supervisor: int = 0

    @cached_property
    def setup_error(self) -> BaseException | None:
        """The exception ``setup()`` raised, rebuilt once (a ``RuntimeError`` naming it if it does not unpickle)."""
        if self.error is None:
            return None
        name, message, pickled = self.error
        if pickled is not None:
            try:
                found = pickle.loads(pickled)
            except Exception:  # noqa: BLE001 - fall back to the name and message
                found = None
            if isinstance(found, BaseException):
                return found
        return RuntimeError(f"{name}: {message}")


def error_info(exc: BaseException) -> SetupFailure:
    """``exc`` as :data:`SetupFailure`."""
    try:
        pickled: bytes | None = pickle.dumps(exc, protocol=5)
    except Exception:  # noqa: BLE001 - the type name and message still go
        pickled = None
    return type(exc).__name__, str(exc), pickled
