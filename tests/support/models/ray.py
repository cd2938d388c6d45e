"""The thread pool's served models on Ray Serve replicas (``pool="ray"``), light enough that four fit one CPU.

The replicas run in Ray's worker processes, which take their environment
(``MODEL_LOG``, ``PYTHONPATH``) from the ``ray start`` that started the cluster.
"""

from __future__ import annotations

import time

from . import streaming, thread
from .log import record

LIGHT = {"ray_actor_options": {"num_cpus": 0.25}}
"""Four replicas fit a one-CPU share of the test cluster: resources pass straight to Ray."""


class Batching(thread.Batching):
    """Records its setup too: a test counts the replicas by it."""

    ray_options = LIGHT

    def setup(self) -> None:
        record(model="batching", event="setup")


class Slow(thread.Slow):
    ray_options = LIGHT


class Picky(thread.Picky):
    ray_options = LIGHT


class Counting(streaming.Counting):
    """The streaming model: its steps run in the replica, its outputs come back over Ray's streaming calls."""

    ray_options = LIGHT


MODEL_HOST = "model_host"
"""The custom resource of a cluster's model nodes: the web hosts join with none, so no replica lands there."""


class Placed(thread.Batching):
    """Runs only where ``model_host`` is; records each batch's items, so a test sees whose requests shared it."""

    ray_options = {"ray_actor_options": {"num_cpus": 0.25, "resources": {MODEL_HOST: 0.25}}}
    max_batch_size = 16
    timeout_s = 30

    def predict(self, batch: list[thread.Number]) -> list[thread.Doubled]:
        record(model="placed", xs=[item.x for item in batch])
        time.sleep(0.010)
        return [thread.Doubled(y=item.x * 2) for item in batch]
