"""The streaming toy model of examples/stream.py on Ray Serve, for ``bench.stream``.

    python -m bench.apps.stream_ray --port P

``POST /generate`` with ``{"prompt": ..., "tokens": N}`` answers a
``StreamingResponse`` of N events ``data: {"index": i, "text": ...}``.
Batching is ``@serve.batch`` on an async generator (32 items, 5 ms wait):
each step of the batch runs its 5 ms in a thread (``asyncio.to_thread``; a
``time.sleep`` on the replica's event loop holds every event of a batch back
until the batch ends) and yields one output per item; an item that is done yields ``StopIteration``. A batch
runs until its last item is done, and ``max_concurrent_batches=1`` makes new
items wait for the next batch. A fresh local Ray, from ``ray_app`` as ``pool_ray``.
"""

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import StreamingResponse

from bench.apps import ray_app

STEP_COST_S = float(os.environ.get("STREAM_STEP_MS", "5")) / 1000


@serve.deployment(
    num_replicas=1, max_ongoing_requests=256, ray_actor_options={"num_cpus": 0}, logging_config=ray_app.LOGGING
)
class Generator:
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def generate(self, requests: list[dict[str, Any]]) -> AsyncIterator[list[Any]]:
        states = [[str(r["prompt"]).split() or ["..."], 0, int(r.get("tokens", 16))] for r in requests]
        while any(given < tokens for _, given, tokens in states):
            await asyncio.to_thread(time.sleep, STEP_COST_S)  # off the loop, which forwards the last step meanwhile
            step: list[Any] = []
            for state in states:
                words, given, tokens = state
                if given >= tokens:
                    step.append(StopIteration)
                    continue
                step.append({"index": given, "text": words[given % len(words)]})
                state[1] = given + 1
            yield step

    async def __call__(self, request: Request) -> StreamingResponse:
        body = await request.json()

        async def events() -> AsyncIterator[str]:
            async for output in self.generate(body):
                yield f"data: {json.dumps(output, separators=(',', ':'))}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


if __name__ == "__main__":
    ray_app.main(Generator.bind(), "stream", "/generate")  # type: ignore[attr-defined]  # bind() is added by @serve.deployment
