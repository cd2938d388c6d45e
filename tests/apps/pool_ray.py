"""The thread pool's served models on Ray Serve replicas (pool="ray"); each records its replica's pid in $MODEL_LOG."""

import os

from utilserve import API, Service, api

from ..support.models.ray import Batching, Picky, Slow


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
