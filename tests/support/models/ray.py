"""The thread pool's served models on Ray Serve replicas (``pool="ray"``), light enough that four fit one CPU.

The replicas run in Ray's worker processes, which take their environment
(``MODEL_LOG``, ``PYTHONPATH``) from the ``ray start`` that started the cluster.
"""

from __future__ import annotations

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
