"""The thread pool's served models on Ray Serve replicas (pool="ray"); each records its replica's pid in $MODEL_LOG."""

import os

from utilserve import API, EventStream, Service, api

from ..support.models.ray import Batching, Counting, Picky, Slow


class RootAPI(API):
    @api.get
    def whoami(self) -> dict:
        """Which web worker answered, and whether its models are ready there."""
        return {"pid": os.getpid(), "ready": service.ready}

    @api.get
    def slow(self, x: int, timeout: float = 30) -> dict:
        """A sync endpoint blocking on the model with its own deadline."""
        return {"y": slow.predict({"x": x}, timeout=timeout).y}

    @api.get
    def count(self, tag: str, n: int = 3, until: str = "", fail_at: int = -1, step_ms: int = 0) -> EventStream:
        """Counting's outputs as events through the blocking ``handle.stream``; an item's error is an error event."""
        item = {"tag": tag, "n": n, "until": until, "fail_at": fail_at, "step_ms": step_ms}
        return EventStream(counting.stream(item))

    @api.get
    async def acount(self, tag: str, n: int = 3, until: str = "", fail_at: int = -1, step_ms: int = 0) -> EventStream:
        """The same through ``handle.astream``."""
        item = {"tag": tag, "n": n, "until": until, "fail_at": fail_at, "step_ms": step_ms}
        return EventStream(counting.astream(item))


service = Service(__name__, name="ray-models", api=RootAPI, route="/api", production=True)
batching = service.model(Batching, route="/batching", workers=2, pool="ray")
slow = service.model(Slow, route="/slow", pool="ray")
picky = service.model(Picky, route="/picky", pool="ray")
counting = service.model(Counting, pool="ray")
app = service.application()
