"""The Ray Serve side of ``pool="ray"``: one replica class for every Model, and its deployment options.

A replica holds one Model instance. Ray Serve's own ``@serve.batch`` forms
the batches (``max_batch_size``, ``max_wait_ms``); ``run_batch`` runs them,
so outcomes and error statuses match the other pools exactly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pydantic import BaseModel
from ray import serve

from ...errors import HTTPError
from ..model import Model
from ..outcome import Outcome, run_batch

logger = logging.getLogger("utilserve.pool")

Request = tuple[BaseModel, float]
"""A validated ``Input`` and its deadline in wall-clock time: the replica may run on another host."""


class Replica:
    """Runs ``setup()`` when Ray starts the replica, ``teardown()`` when Ray stops it."""

    def __init__(self, model_cls: type[Model], name: str) -> None:
        self._name = name
        self._model = model_cls()
        self._model.setup()
        batch = self.predict_batch
        batch.set_max_batch_size(model_cls.max_batch_size)  # type: ignore[attr-defined]  # documented, not typed
        batch.set_batch_wait_timeout_s(model_cls.max_wait_ms / 1000)  # type: ignore[attr-defined]  # as above

    async def __call__(self, item: BaseModel, deadline: float) -> Outcome:
        """One item in, its ``Output`` or ``HTTPError`` out (returned, not raised: it is an answer)."""
        return await self.predict_batch((item, deadline))

    @serve.batch
    async def predict_batch(self, requests: list[Request]) -> list[Outcome]:
        """Items whose deadline passed while queued never reach the model; the rest run in a thread."""
        now = time.time()
        live = [item for item, deadline in requests if deadline > now]
        results = iter(await asyncio.to_thread(run_batch, self._model, self._name, live) if live else [])
        late = f"model {self._name}: deadline passed while queued"
        return [next(results) if deadline > now else HTTPError(504, late) for _, deadline in requests]

    def __del__(self) -> None:
        model = getattr(self, "_model", None)
        if model is None:
            return
        try:
            model.teardown()
        except Exception:
            logger.exception("model %s: teardown failed", self._name)


def deployment_options(model_cls: type[Model], workers: int) -> dict[str, Any]:
    """Ray Serve options from the Model's settings, with its ``ray_options`` on top, unchanged.

    ``workers`` is the replica count unless ``ray_options`` sets an
    ``autoscaling_config``. A replica takes up to two batches at once (one
    running, the next one forming), so ``max_ongoing_requests`` never keeps
    a batch from filling; the caller's queue beyond that is ``max_queue``.
    """
    extra = dict(model_cls.ray_options)
    name = model_cls.__name__
    if "name" in extra:
        raise ValueError(f"{name}.ray_options must not set 'name': the deployment is named after the model")
    options: dict[str, Any] = {
        "max_ongoing_requests": 2 * model_cls.max_batch_size,
        "max_queued_requests": model_cls.max_queue,
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
