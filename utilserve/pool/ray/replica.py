"""The Ray Serve side of ``pool="ray"``: one replica class for every Model, and its deployment options.

A replica holds one Model instance. Ray Serve's own ``@serve.batch`` forms
the batches (``max_batch_size``, ``max_wait_ms``); ``run_batch`` runs them,
so outcomes and error statuses match the other pools exactly.

A streaming model is stepped by a ``Stepper`` on a thread of the replica,
fed by the replica's own ``Batcher``: every caller's items share its steps,
with the thread pool's queue, deadlines and continuous batching.
:meth:`Replica.stream`, called with ``stream=True``, yields one item's
outcomes as the steps make them; Ray cancelling the call (the reader went
away) closes the generator, and the Stepper drops the item at its next step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel
from ray import serve

from ...collector import settle
from ...concurrency import start_for_user_code
from ...errors import HTTPError
from ...telemetry.batches import batch as running
from ...telemetry.context import Origin
from ..base import shutting_down
from ..batcher import Batcher
from ..model import Model
from ..outcome import Outcome, run_batch
from ..stepping import Stepper, Streaming
from ..stream import END, Stream, follow_queue

logger = logging.getLogger("utilserve.pool")

Request = tuple[BaseModel, float, Origin | None]
"""A validated ``Input``, its deadline in wall-clock time (the replica may run on another host), and its origin."""


class Replica:
    """Runs ``setup()`` when Ray starts the replica, ``teardown()`` when Ray stops it."""

    def __init__(self, model_cls: type[Model], name: str) -> None:
        self._name = name
        self._model = model_cls()
        self._model.setup()
        settle()
        self._steps: Steps | None = Steps(self._model, name) if model_cls.streams() else None
        batch = self.predict_batch
        batch.set_max_batch_size(model_cls.max_batch_size)  # type: ignore[attr-defined]  # documented, not typed
        batch.set_batch_wait_timeout_s(model_cls.max_wait_ms / 1000)  # type: ignore[attr-defined]  # as above

    async def __call__(self, item: BaseModel, deadline: float, origin: Origin | None = None) -> Outcome:
        """One item in, its ``Output`` or ``HTTPError`` out (returned, not raised: it is an answer)."""
        return await self.predict_batch((item, deadline, origin))

    async def stream(self, item: BaseModel, deadline: float, origin: Origin | None = None) -> AsyncIterator[Outcome]:
        """A streaming model's outputs for one item, in order; an ``HTTPError`` is yielded last, as its answer."""
        if self._steps is None:
            raise TypeError(f"model {self._name} answers once: call the replica, not its stream method")
        try:
            stream = self._steps.open(item, deadline, origin)
        except HTTPError as error:  # full or stopping: the answer of an item that never ran
            yield error
            return
        try:
            while (output := await stream.anext()) is not END:
                yield output
        except HTTPError as error:
            yield error
        finally:
            stream.close()

    @serve.batch
    async def predict_batch(self, requests: list[Request]) -> list[Outcome]:
        """Items whose deadline passed while queued never reach the model; the rest run in a thread."""
        now = time.time()
        live = [(item, origin) for item, deadline, origin in requests if deadline > now]
        results = iter(await self._run_batch(live) if live else [])
        late = f"model {self._name}: deadline passed while queued"
        return [next(results) if deadline > now else HTTPError(504, late) for _, deadline, _ in requests]

    async def _run_batch(self, live: list[tuple[BaseModel, Origin | None]]) -> list[Outcome]:
        with running(self._name, [origin for _, origin in live]):
            return await asyncio.to_thread(run_batch, self._model, self._name, [item for item, _ in live])

    def __del__(self) -> None:
        model = getattr(self, "_model", None)
        if model is None:
            return
        steps: Steps | None = getattr(self, "_steps", None)
        if steps is not None:
            steps.stop()
        try:
            model.teardown()
        except Exception:
            logger.exception("model %s: teardown failed", self._name)


class Steps:
    """A streaming model's continuous batching in a replica: its queue, and the thread that steps its items."""

    STOP_WAIT_S = 5.0
    """How long a stopping replica lets its current step finish before ``teardown()``."""

    def __init__(self, model: Model, name: str) -> None:
        settings = type(model)
        self._name = name
        self._batcher = Batcher(name, settings.max_batch_size, settings.max_wait_ms, settings.max_queue)
        self._room_freed = threading.Event()
        stepper = Stepper(model, name, settings.max_batch_size, settings.timeout_s)
        self._thread = threading.Thread(
            target=stepper.run, args=(self._batcher, self._room_freed), name=f"utilserve-steps-{name}", daemon=True
        )
        start_for_user_code(self._thread)

    def open(self, item: BaseModel, deadline: float, origin: Origin | None) -> Stream:
        """Queue ``item`` for the steps and return the stream of its outputs; raise the 503 of a full or
        stopping queue.

        ``deadline`` is wall-clock time (the caller may be on another host);
        the ``Batcher`` counts in this host's monotonic time.
        """
        stream = Stream(on_room=self._room_freed.set)
        left = deadline - time.time()
        follow_queue(stream, self._batcher.submit(Streaming(item, stream), time.monotonic() + left, origin))
        return stream

    def stop(self) -> None:
        """Answer queued items 503 and end the loop, so that ``teardown()`` never runs under a step."""
        self._batcher.close(shutting_down(self._name))
        self._thread.join(self.STOP_WAIT_S)


ROUTER_BACKOFF = {"initial_backoff_s": 0.001, "backoff_multiplier": 2.0, "max_backoff_s": 0.01}
"""How the caller's Ray router retries while every replica is full: at most a batch's worth of 10 ms apart.

Ray's own default grows to 0.5 s, so with more requests waiting than the
replicas hold, each batch that ends leaves room that nobody takes for up
to half a second.
"""


def deployment_options(model_cls: type[Model], workers: int) -> dict[str, Any]:
    """Ray Serve options from the Model's settings, with its ``ray_options`` on top, unchanged.

    ``workers`` is the replica count unless ``ray_options`` sets an
    ``autoscaling_config``. A replica takes up to two batches at once (one
    running, the next one forming), so ``max_ongoing_requests`` never keeps
    a batch from filling; the caller's queue beyond that is ``max_queue``.
    A streaming model's item holds its place for its whole stream: one
    batch stepping, the next one queued in the replica.
    """
    extra = dict(model_cls.ray_options)
    name = model_cls.__name__
    if "name" in extra:
        raise ValueError(f"{name}.ray_options must not set 'name': the deployment is named after the model")
    options: dict[str, Any] = {
        "max_ongoing_requests": 2 * model_cls.max_batch_size,
        "max_queued_requests": model_cls.max_queue,
        "request_router_config": dict(ROUTER_BACKOFF),
    }
    if "autoscaling_config" not in extra:
        options["num_replicas"] = workers
    options.update(extra)
    ongoing = options["max_ongoing_requests"]
    if not isinstance(ongoing, int) or ongoing < model_cls.max_batch_size:
        raise ValueError(
            f"{name}.ray_options max_ongoing_requests={ongoing!r} must be an int >= max_batch_size "
            f"({model_cls.max_batch_size}), or batches can never fill"
        )
    return options


def application(model_cls: type[Model], name: str, options: dict[str, Any]) -> serve.Application:
    """The Ray Serve application of one model: a single deployment named after it."""
    return serve.deployment(name=name)(Replica).options(**options).bind(model_cls, name)
