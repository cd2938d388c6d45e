"""Models served by Ray Serve replicas (pool="ray"); each records its replica's pid in $MODEL_LOG.

The replicas run in Ray's worker processes, which take their environment
(MODEL_LOG, PYTHONPATH) from the ``ray start`` that started the cluster.
"""

import os
import time

from tests.support.models.log import Doubled, Number, record
from utilserve import API, Model, Service, api

LIGHT = {"ray_actor_options": {"num_cpus": 0.25}}
"""Four replicas fit a one-CPU share of the test cluster: resources pass straight to Ray."""


class Batching(Model):
    """The toy model: 10 ms per batch, whatever its size."""

    Input, Output = Number, Doubled
    max_batch_size = 8
    max_wait_ms = 20
    ray_options = LIGHT

    def setup(self) -> None:
        record(model="batching", event="setup")

    def predict(self, batch: list[Number]) -> list[Doubled]:
        record(model="batching", size=len(batch))
        time.sleep(0.010)
        return [Doubled(y=item.x * 2) for item in batch]


LONG = 1000
"""Items from this number up take 2 s: long enough to kill the replica surely in the middle."""


class Slow(Model):
    """One item at a time, 50 ms each (2 s from ``LONG`` up); a queue of 8 per web worker."""

    Input, Output = Number, Doubled
    max_batch_size = 1
    max_queue = 8
    ray_options = LIGHT

    def predict(self, batch: list[Number]) -> list[Doubled]:
        record(model="slow", seen=[item.x for item in batch])
        time.sleep(2.0 if batch[0].x >= LONG else 0.050)
        return [Doubled(y=item.x * 2) for item in batch]


class TooBig(Exception):
    pass


class Picky(Model):
    """Fails negative items one by one, and a whole batch holding 999."""

    Input, Output = Number, Doubled
    max_batch_size = 16
    max_wait_ms = 50
    errors = {ValueError: 400, TooBig: (409, "999 is too big")}
    ray_options = LIGHT

    def predict(self, batch: list[Number]) -> list[Doubled | Exception]:
        if any(item.x == 999 for item in batch):
            raise TooBig()
        return [ValueError(f"{item.x} is negative") if item.x < 0 else Doubled(y=item.x * 2) for item in batch]


class RootAPI(API):
    @api.get
    def whoami(self) -> dict:
        """Which web worker answered, and whether its models are ready there."""
        return {"pid": os.getpid(), "ready": service.ready}

    @api.get
    def slow(self, x: int, timeout: float = 30) -> dict:
        """A sync endpoint blocking on the model with its own deadline."""
        return {"y": slow.predict({"x": x}, timeout=timeout).y}


service = Service(__name__, name="ray-models", api=RootAPI, route="/api", production=True)
batching = service.model(Batching, route="/batching", workers=2, pool="ray")
slow = service.model(Slow, route="/slow", pool="ray")
picky = service.model(Picky, route="/picky", pool="ray")
app = service.application()
