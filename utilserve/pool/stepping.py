"""Continuous batching: a streaming model's items join and leave its batch between steps.

A streaming model gives ``start(item) -> state``, ``step(states) -> outputs``
and ``done(state) -> bool``. A :class:`Stepper` holds the active items of
one model worker and runs the loop around them:

- Queued items join at the next step boundary, up to ``max_batch_size``
  active at once (:meth:`Stepper.admit`, with the items the ``Batcher``
  hands out: the queue, its 503s, deadlines and cancellation are the same as
  for one-shot models).
- One step advances every active item by at most one output (``None`` in an
  item's slot: nothing this step). An item leaves after the step where
  ``done(state)`` turns true, at once when its reader went away, and with
  its own error when its ``start``, its slot of ``step`` or its ``done``
  fails; a raised ``step`` fails every item of that step.
- **A slow reader.** An item whose reader's buffer is full is skipped by the
  steps until the reader takes an output: it keeps its place in the batch
  (its state may hold memory a restart would have to rebuild) and the other
  items go on at full speed. One that does not read for the model's
  ``timeout_s`` is dropped as gone, so a stalled client cannot hold a place
  for ever.

Where the outputs go is a :class:`Sink`: a ``Stream`` in the thread pool,
the connection to a web process in a process-pool worker.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from time import monotonic
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel

from ..errors import HTTPError
from ..telemetry.batches import batch as running
from ..telemetry.context import Origin
from .batcher import Batcher, Item
from .model import Model
from .outcome import run_step, to_http_error

logger = logging.getLogger("utilserve.pool")

PAUSED_POLL_S = 0.05
"""While every stream is paused by a slow reader, how often a worker looks for newly queued items."""


class Sink(Protocol):
    """Where one item's outputs go, as the worker sees it."""

    def put(self, output: Any) -> None: ...

    def end(self, error: HTTPError | None = None) -> None: ...

    @property
    def has_room(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    @property
    def last_read(self) -> float: ...


class Streaming(NamedTuple):
    """The payload of a streaming item in the ``Batcher``: its input and where its outputs go."""

    input: BaseModel
    sink: Sink


@dataclass(eq=False, slots=True)
class _Active:
    item: Item
    sink: Sink
    state: Any


class Stepper:
    """The active items of one worker of a streaming model, and the step that advances them."""

    def __init__(self, model: Model, name: str, max_active: int, stall_s: float) -> None:
        self._model = model
        self._name = name
        self._max_active = max_active
        self._stall_s = stall_s
        self._active: list[_Active] = []
        self._joined: list[Origin | None] = []
        """The origins of the items admitted since the last step, which its log line names."""

    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def room(self) -> int:
        """How many queued items may join at the next step."""
        return self._max_active - len(self._active)

    def admit(self, items: list[Item]) -> None:
        """Start the items the ``Batcher`` handed out; each one whose ``start`` fails leaves with its error."""
        for item in items:
            payload: Streaming = item.payload
            try:
                entry = _Active(item, payload.sink, self._model.start(payload.input))
            except Exception as exc:  # noqa: BLE001 - a model failure becomes the item's HTTP error
                self._leave(_Active(item, payload.sink, None), to_http_error(self._model, self._name, exc))
                continue
            self._active.append(entry)
            self._joined.append(item.origin)
            self._leave_if_done(entry)

    def run(self, batcher: Batcher, room_freed: threading.Event) -> None:
        """The worker's loop: admit queued items between steps, until ``batcher`` closes and every stream ended.

        ``room_freed`` is set when a reader takes from a full buffer: with every item paused, the loop waits for it
        (or for newly queued items, looked for every ``PAUSED_POLL_S``).
        """
        try:
            while True:
                if self.active:
                    self.admit(batcher.take_now(self.room))
                elif (batch := batcher.next_batch()) is not None:
                    self.admit(batch)
                else:
                    return
                if not self.step():
                    room_freed.wait(PAUSED_POLL_S)
                    room_freed.clear()
        except BaseException:
            self._end_all(HTTPError(500, f"model {self._name}: worker died"))
            raise

    def _end_all(self, error: HTTPError) -> None:
        """End every active stream with ``error``: its worker cannot step it any more."""
        for entry in list(self._active):
            self._leave(entry, error.copy())

    def step(self) -> bool:
        """One step of every active item whose reader has room; False when none could run."""
        self._drop_gone()
        runnable = [entry for entry in self._active if entry.sink.has_room]
        if not runnable:
            return False
        joined, self._joined = self._joined, []
        with running(self._name, [entry.item.origin for entry in runnable], joined):
            outcomes = run_step(self._model, self._name, [entry.state for entry in runnable])
        for entry, outcome in zip(runnable, outcomes, strict=True):
            if isinstance(outcome, HTTPError):
                self._leave(entry, outcome)
                continue
            finished, error = self._done(entry)  # before its reader can see the output and act on it
            if outcome is not None:
                entry.sink.put(outcome)
            if finished:
                self._leave(entry, error)
        return True

    def due_in(self) -> float | None:
        """Seconds until a step has work: 0 while an item may step or must leave, else until the first paused
        reader counts as stalled; ``None`` with no item active. For a worker that waits on its sockets, where
        a reader's room arrives, instead of in :meth:`run`."""
        if not self._active:
            return None
        now = monotonic()
        due = self._stall_s
        for entry in self._active:
            if entry.sink.closed or entry.sink.has_room:
                return 0.0
            due = min(due, entry.sink.last_read + self._stall_s - now)
        return max(0.0, due)

    def _drop_gone(self) -> None:
        now = monotonic()
        for entry in list(self._active):
            if entry.sink.closed:
                self._leave(entry)
            elif not entry.sink.has_room and now - entry.sink.last_read > self._stall_s:
                logger.warning("model %s: dropped a stream not read for %g s", self._name, self._stall_s)
                self._leave(entry, stalled(self._name))

    def _leave_if_done(self, entry: _Active) -> None:
        finished, error = self._done(entry)
        if finished:
            self._leave(entry, error)

    def _done(self, entry: _Active) -> tuple[bool, HTTPError | None]:
        """Whether the item leaves after this step, and with what error (a ``done`` that raised)."""
        try:
            return bool(self._model.done(entry.state)), None
        except Exception as exc:  # noqa: BLE001 - a model failure becomes the item's HTTP error
            return True, to_http_error(self._model, self._name, exc)

    def _leave(self, entry: _Active, error: HTTPError | None = None) -> None:
        if entry in self._active:
            self._active.remove(entry)
        entry.sink.end(error)
        entry.item.future.set_result(None)


def stalled(name: str) -> HTTPError:
    """The 504 of a stream whose reader took nothing for the model's ``timeout_s``."""
    return HTTPError(504, f"model {name}: the stream's reader stalled")
