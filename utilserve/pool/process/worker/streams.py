"""A streaming model's worker: the server's loop runs a model's steps instead of its batches.

Items queue in the same ``Batcher`` as one-shot items do (same 503s,
deadlines and cancellation); a :class:`~utilserve.pool.stepping.Stepper`
holds the active ones, and each item's outputs go to its web process through
a :class:`~.connection.WireSink`. The threads still wait on the sockets, not
on the queue: whichever finds steps due while the model is free runs them,
taking queued items in at each step boundary, until no active item can step
(each finished, or paused for want of credit); it then goes back to the
sockets, where a credit, a cancel or a new item makes steps due again.
Each step's outputs leave with one write per connection.
"""

from __future__ import annotations

import socket
from concurrent.futures import Future
from functools import partial
from time import monotonic
from typing import Any

from ....errors import HTTPError
from ...batcher import Item
from ...model import Model
from ...stepping import Stepper, Streaming
from ...stream import follow_queue
from .. import messages
from ..codec import Buffer, error_tuple
from ..messages import WireOrigin, from_wire
from ..spec import ModelSpec
from .connection import Connection, WireSink, answers_per_connection
from .server import Server


class StreamingServer(Server):
    """:class:`~.server.Server` for a model that streams: steps run where batches would."""

    def __init__(
        self, spec: ModelSpec, model: Model, control: socket.socket, listener: socket.socket, spin_s: float
    ) -> None:
        super().__init__(spec, model, control, listener, spin_s)
        self._stepper = Stepper(model, spec.name, spec.max_batch_size, type(model).timeout_s)
        self._joining: list[Item] = []

    def _serve(self) -> None:
        while True:
            with self._ready.turn():
                due = self._poll(self._steps_due)
            if due is None:
                return
            self._run_steps()

    def _steps_due(self) -> tuple[bool | None, float | None]:
        """With the state lock held: whether steps are due (taking the items that join them), and when they will be.

        With none active, the first items gather by the batcher's rules, as
        a batch would; once items stream, queued ones join at the next step.
        """
        if not self._stepper.active:
            batch, wait = self.batcher.take_due()
            if batch is None:
                return None, None
            self._joining = batch
            return bool(batch), wait
        self._joining = self.batcher.take_now(self._stepper.room)
        wait = self._stepper.due_in()
        return bool(self._joining) or wait == 0, wait

    def _run_steps(self) -> None:
        """Step until no active item can step and none joins, then free the model."""
        joining = self._joining
        while True:
            with answers_per_connection():
                self._stepper.admit(joining)
                stepped = self._stepper.step()
            with answers_per_connection(), self._state_lock:
                joining = self.batcher.take_now(self._stepper.room)
                if not joining and not (stepped and self._stepper.active):
                    self._running = False
                    break
        if self._ready.takes_turns:
            self._wake()  # the thread whose turn it is looks at the steps for this one

    def _submit(
        self, connection: Connection, rid: int, timeout_s: float, origin: WireOrigin, payload: list[Buffer]
    ) -> None:
        """A one-shot item for a model that streams: refused (``ModelHandle`` says so before it gets here)."""
        error = HTTPError(500, f"model {self.spec.name} streams: call stream() or astream()")
        connection.send((messages.RESULT, rid, error_tuple(error)))

    def _open(
        self,
        connection: Connection,
        rid: int,
        timeout_s: float,
        credit: int,
        origin: WireOrigin,
        payload: list[Buffer],
    ) -> None:
        """Decode and queue a streaming item, whose outputs go to ``connection`` as far as ``credit`` allows."""
        item = self._decode(payload)
        if isinstance(item, HTTPError):
            connection.send((messages.ENDED, rid, error_tuple(item)))
            return
        sink = WireSink(self.spec.name, connection, rid, credit)
        try:
            future = self.batcher.submit(Streaming(item, sink), monotonic() + timeout_s, from_wire(origin))
        except HTTPError as error:
            sink.end(error)
            return
        connection.pending[rid] = future
        follow_queue(sink, future)
        future.add_done_callback(partial(_settled, connection, rid, sink))


def _settled(connection: Connection, rid: int, sink: WireSink, future: Future[Any]) -> None:
    """The item left the queue or the steps: forget it; one cancelled while queued has no end to send."""
    connection.pending.pop(rid, None)
    if future.cancelled():
        sink.end()
